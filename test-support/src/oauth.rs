//! An OpenID Certified authorization server for the OAuth tests:
//! oidc-provider (`test-support/oauth/provider.mjs`) on Node, issuing RFC
//! 9068 JWT access tokens signed with ES256 for the resources a test names,
//! and a client of it that signs a user in the way a person would: dynamic
//! registration, authorization code with PKCE S256, the development login
//! and consent pages over HTTP, the token request.
//!
//! Without `node` and `npm` an OAuth test says so on stderr and passes; with
//! `REQUIRE_OAUTH=1` it fails instead. The first start on a machine runs
//! `npm ci` in `test-support/oauth` (once, whichever test process gets
//! there first).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Url, redirect};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// Where the redirect of [`AuthorizationServer::user_token`] points: on
/// loopback and never served, since the code is read from the `Location`
/// header.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
/// How long a start (with `npm ci` excluded) or an `npm ci` by another
/// process may take.
const START_PATIENCE: Duration = Duration::from_secs(120);
const INSTALL_PATIENCE: Duration = Duration::from_secs(300);
/// Login, consent and the hops between them take fewer.
const MAX_STEPS: usize = 12;

/// `test-support/oauth`.
fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("oauth")
}

/// oidc-provider on 127.0.0.1, killed when dropped (and gone by itself when
/// the test process dies: it exits when its stdin closes).
#[derive(Debug)]
pub struct AuthorizationServer {
    issuer: String,
    port: u16,
    resources: Vec<String>,
    scopes: String,
    log: PathBuf,
    child: Option<Child>,
    // Held so that the provider's stdout stays open.
    _stdout: Option<ChildStdout>,
}

impl AuthorizationServer {
    /// Starts one on a free port for the protected `resources` (the first
    /// is the default; a resource not among them is refused as
    /// `invalid_target`), each accepting the space-separated `scopes`.
    /// `None`, after a banner on stderr, where Node is not installed.
    pub async fn start(resources: &[&str], scopes: &str) -> Option<Self> {
        assert!(!resources.is_empty(), "at least one resource");
        if !node_and_npm() {
            return None;
        }
        install().await;
        let mut server = Self {
            issuer: String::new(),
            port: 0,
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            scopes: scopes.to_owned(),
            log: std::env::temp_dir().join(format!("{}.log", crate::unique("oidc-provider"))),
            child: None,
            _stdout: None,
        };
        server
            .spawn()
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        Some(server)
    }

    /// `http://127.0.0.1:PORT`, as the server's metadata and tokens name it
    /// (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where the provider's stderr goes: removed on drop, kept when the
    /// test fails.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Stops the server and starts it again on the same port with a new
    /// signing key (a new `kid`): a key rotation. Registered clients, grants
    /// and sessions are forgotten with it.
    pub async fn restart_with_new_keys(&mut self) {
        self.stop().await;
        // The port was just released; another bind may win it for a moment.
        let started = Instant::now();
        loop {
            match self.spawn().await {
                Ok(()) => return,
                Err(error) if started.elapsed() < START_PATIENCE => {
                    eprintln!("oidc-provider did not restart yet: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("{error}"),
            }
        }
    }

    /// The authorization server metadata (`/.well-known/openid-configuration`).
    pub async fn metadata(&self) -> Value {
        let response = http()
            .get(format!("{}/.well-known/openid-configuration", self.issuer))
            .send()
            .await
            .expect("the authorization server answers");
        assert!(
            response.status().is_success(),
            "discovery: {}",
            response.status()
        );
        response.json().await.expect("discovery is JSON")
    }

    /// Registers a public client (no secret, `token_endpoint_auth_method`
    /// `none`, authorization code only) for a page served at `redirect_uri`;
    /// its `client_id`.
    pub async fn register_public_client(&self, redirect_uri: &str) -> String {
        self.register(json!({
            "application_type": "web",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }))
        .await
    }

    /// An access token (a JWT) for `login` at `resource` with `scope`, got
    /// as a native public client would: registered dynamically, then
    /// authorization code with PKCE S256 and `resource` through the login
    /// and consent pages, then the token request.
    pub async fn user_token(&self, login: &str, resource: &str, scope: &str) -> String {
        let metadata = self.metadata().await;
        let client_id = self
            .register(json!({
                "application_type": "native",
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }))
            .await;
        let verifier = URL_SAFE_NO_PAD.encode(random::<32>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = URL_SAFE_NO_PAD.encode(random::<16>());
        let authorization = Url::parse_with_params(
            endpoint(&metadata, "authorization_endpoint"),
            [
                ("response_type", "code"),
                ("client_id", &client_id),
                ("redirect_uri", REDIRECT_URI),
                ("scope", scope),
                ("resource", resource),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("state", &state),
            ],
        )
        .expect("an authorization URL");

        let callback = sign_in(authorization, login).await;
        let query = |name: &str| {
            callback
                .query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        if let Some(error) = query("error") {
            panic!(
                "authorization refused: {error}: {}",
                query("error_description").unwrap_or_default()
            );
        }
        assert_eq!(query("state").as_deref(), Some(state.as_str()), "state");
        assert_eq!(
            query("iss").as_deref(),
            Some(self.issuer()),
            "iss (RFC 9207)"
        );
        let code = query("code").expect("the redirect carries a code");

        let response = http()
            .post(endpoint(&metadata, "token_endpoint"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", &client_id),
                ("code_verifier", &verifier),
                ("resource", resource),
            ])
            .send()
            .await
            .expect("the token endpoint answers");
        let status = response.status();
        let body: Value = response.json().await.expect("the token response is JSON");
        assert!(status.is_success(), "the token request: {status} {body}");
        body["access_token"]
            .as_str()
            .expect("an access_token")
            .to_owned()
    }

    /// POSTs `metadata` to the registration endpoint; the `client_id`.
    async fn register(&self, metadata: Value) -> String {
        let endpoint = self.metadata().await["registration_endpoint"]
            .as_str()
            .expect("a registration_endpoint")
            .to_owned();
        let response = http()
            .post(endpoint)
            .json(&metadata)
            .send()
            .await
            .expect("the registration endpoint answers");
        let status = response.status();
        let body: Value = response.json().await.expect("the registration is JSON");
        assert!(status.is_success(), "the registration: {status} {body}");
        body["client_id"].as_str().expect("a client_id").to_owned()
    }

    /// Starts `node provider.mjs` (on `self.port` when it is set) and waits
    /// for its issuer line.
    async fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|error| format!("open {}: {error}", self.log.display()))?;
        let mut command = Command::new("node");
        command.current_dir(folder()).arg("provider.mjs");
        for resource in &self.resources {
            command.args(["--resource", resource]);
        }
        command.args(["--scopes", &self.scopes]);
        if self.port != 0 {
            command.args(["--port", &self.port.to_string()]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| format!("start node provider.mjs: {error}"))?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let read = tokio::time::timeout(START_PATIENCE, stdout.read_line(&mut line)).await;
        let timed_out = read.is_err();
        let issuer = match read {
            Ok(Ok(n)) if n > 0 => serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["issuer"].as_str().map(str::to_owned)),
            _ => None,
        };
        let Some(issuer) = issuer else {
            let _ = child.kill().await;
            return Err(format!(
                "oidc-provider did not start ({}; printed {line:?}); its log, {}:\n{}",
                if timed_out {
                    format!("no line in {START_PATIENCE:?}")
                } else {
                    "it exited".to_owned()
                },
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ));
        };
        self.port = Url::parse(&issuer)
            .ok()
            .and_then(|url| url.port())
            .expect("the issuer names its port");
        self.issuer = issuer;
        self.child = Some(child);
        self._stdout = Some(stdout.into_inner());
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        self._stdout = None;
    }
}

impl Drop for AuthorizationServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            eprintln!("oidc-provider's log: {}", self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A client of the authorization server with a bounded wait.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn endpoint<'a>(metadata: &'a Value, name: &str) -> &'a str {
    metadata[name]
        .as_str()
        .unwrap_or_else(|| panic!("the metadata has no {name}: {metadata}"))
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes
}

/// Follows `authorization` as a browser would, one redirect at a time with
/// a cookie jar, filling in the login form with `login` (and any password)
/// and sending the consent form; the URL of the redirect to
/// [`REDIRECT_URI`], which is not followed.
async fn sign_in(authorization: Url, login: &str) -> Url {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut url = authorization;
    let mut response = browser
        .get(url.clone())
        .send()
        .await
        .expect("the authorization endpoint answers");
    for _ in 0..MAX_STEPS {
        if response.status().is_redirection() {
            let location = response.headers()["location"].to_str().expect("a Location");
            url = url.join(location).expect("a Location URL");
            if url.as_str().starts_with(REDIRECT_URI) {
                return url;
            }
            response = browser
                .get(url.clone())
                .send()
                .await
                .expect("the authorization server answers");
            continue;
        }
        let status = response.status();
        let page = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{status} at {}: {page}", url.path());
        let form = post_form(&page).unwrap_or_else(|| panic!("no form at {}: {page}", url.path()));
        let mut fields = form.fields;
        if fields.iter().any(|(name, _)| name == "login") {
            for (name, value) in &mut fields {
                match name.as_str() {
                    "login" => *value = login.to_owned(),
                    "password" => *value = "any password".to_owned(),
                    _ => {}
                }
            }
        }
        url = url.join(&form.action).expect("a form action URL");
        response = browser
            .post(url.clone())
            .form(&fields)
            .send()
            .await
            .expect("the authorization server answers");
    }
    panic!("no redirect to {REDIRECT_URI} after {MAX_STEPS} steps (last at {url})");
}

/// A page's first `method="post"` form: its action and its named inputs.
struct Form {
    action: String,
    fields: Vec<(String, String)>,
}

/// Enough HTML for oidc-provider's own pages: attributes in double quotes.
fn post_form(page: &str) -> Option<Form> {
    let mut rest = page;
    while let Some(start) = rest.find("<form") {
        let tag_end = start + rest[start..].find('>')?;
        let tag = &rest[start..tag_end];
        let end = rest[tag_end..]
            .find("</form>")
            .map_or(rest.len(), |i| tag_end + i);
        let body = &rest[tag_end..end];
        if attribute(tag, "method").is_some_and(|m| m.eq_ignore_ascii_case("post")) {
            let fields = body
                .split("<input")
                .skip(1)
                .filter_map(|input| {
                    let input = &input[..input.find('>').unwrap_or(input.len())];
                    Some((
                        attribute(input, "name")?,
                        attribute(input, "value").unwrap_or_default(),
                    ))
                })
                .collect();
            return Some(Form {
                action: attribute(tag, "action").unwrap_or_default(),
                fields,
            });
        }
        rest = &rest[end..];
    }
    None
}

/// The value of `name="..."` in a tag, with the entities HTML escaping
/// produces decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let value = &tag[start..start + tag[start..].find('"')?];
    Some(
        value
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

// ------------------------------------------------------------ installation

/// Whether `node` and `npm` run; `false` after a banner on stderr, a panic
/// with `REQUIRE_OAUTH=1`.
fn node_and_npm() -> bool {
    let runs = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if runs("node") && runs("npm") {
        return true;
    }
    if std::env::var("REQUIRE_OAUTH").is_ok_and(|v| v == "1") {
        panic!(
            "REQUIRE_OAUTH=1 but node or npm is missing; the OAuth tests need Node 20 or later \
             (apt-get install nodejs npm)"
        );
    }
    static BANNER: Once = Once::new();
    BANNER.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n==================================================================\n\
             SKIPPED: node or npm is missing; OAuth tests did not run\n\
             (apt-get install nodejs npm; REQUIRE_OAUTH=1 fails instead)\n\
             ==================================================================\n"
        );
    });
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: node or npm is missing; this OAuth test did not run"
    );
    false
}

/// Runs `npm ci` in `test-support/oauth` unless an earlier one finished
/// (npm writes `node_modules/.package-lock.json` last). One test process at
/// a time: the one that creates `.install.lock` installs, the others wait
/// for the lock to go. A lock older than an install may take is stale (its
/// process died) and is taken over.
async fn install() {
    let folder = folder();
    let done = folder.join("node_modules/.package-lock.json");
    let lock = folder.join(".install.lock");
    let started = Instant::now();
    while !done.exists() {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => {
                let outcome = tokio::process::Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--prefix"])
                    .arg(&folder)
                    .stdin(Stdio::null())
                    .output()
                    .await;
                let _ = std::fs::remove_file(&lock);
                match outcome {
                    Ok(output) if output.status.success() => {}
                    Ok(output) => panic!(
                        "npm ci --prefix {} failed:\n{}{}",
                        folder.display(),
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    ),
                    Err(error) => panic!("npm ci did not run: {error}"),
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                let age = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|modified| SystemTime::now().duration_since(modified).ok());
                if age.is_some_and(|age| age > INSTALL_PATIENCE) {
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
                assert!(
                    started.elapsed() < INSTALL_PATIENCE * 2,
                    "waited too long for another process's npm ci ({})",
                    lock.display()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => panic!("create {}: {error}", lock.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_development_forms() {
        let login = r#"<form autocomplete="off" action="/interaction/abc" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
  <input required type="password" name="password" placeholder="and password" >
  <button type="submit" class="login login-submit">Sign-in</button>
</form>"#;
        let form = post_form(login).unwrap();
        assert_eq!(form.action, "/interaction/abc");
        assert_eq!(
            form.fields,
            [
                ("prompt".into(), "login".into()),
                ("login".into(), String::new()),
                ("password".into(), String::new()),
            ]
        );
        let other = r#"<form action="/x" method="get"><input name="a" value="1"></form>
<form action="/y?a=1&amp;b=2" method="post"><input type="hidden" name="prompt" value="consent"/></form>"#;
        let form = post_form(other).unwrap();
        assert_eq!(form.action, "/y?a=1&b=2");
        assert_eq!(form.fields, [("prompt".into(), "consent".into())]);
        assert!(post_form("<p>no form</p>").is_none());
    }
}
