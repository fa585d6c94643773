//! `keys --server URL ...`: the `keys` commands through a running server's
//! key management API (`/api/v2/keys`), with the managing key taken from
//! `MCP_PROXY_KEY` and sent only in the `Authorization` header. The keys
//! managed are the managing key's owner's.

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower_api_keys::management;
use tower_api_keys::record::KeyId;

use super::render::shown;
use super::{Created, Key, KeyAdmin, Result};
use crate::cli::{CreateArgs, KeysCommand, MANAGING_KEY_VAR};
use crate::server::MANAGEMENT_PATH;

/// Keys asked for per page when listing.
const PAGE: usize = 100;
/// The largest answer read from the server.
const MAX_ANSWER: usize = 1 << 20;

/// A client of one server's management API.
pub(crate) struct Remote {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Remote {
    /// A client of the server at `server` (`http://HOST:PORT`), with the
    /// managing key from `MCP_PROXY_KEY`.
    pub(crate) fn new(server: &str) -> Result<Self> {
        let url = reqwest::Url::parse(server)
            .map_err(|e| format!("--server {server:?} is not a URL: {e}"))?;
        if url.scheme() != "http" {
            return Err(format!(
                "--server takes an http:// URL (this example's client has no TLS); put a TLS terminator's plain side or the server's own address, not {:?}",
                url.scheme()
            )
            .into());
        }
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
            return Err(
                "--server takes no credentials or query; the key comes from MCP_PROXY_KEY".into(),
            );
        }
        let key = std::env::var(MANAGING_KEY_VAR).map_err(|_| {
            format!("--server needs a managing key (one with the scope keys:manage) in the {MANAGING_KEY_VAR} environment variable")
        })?;
        let key = key.trim().to_owned();
        if key.is_empty() {
            return Err(format!("{MANAGING_KEY_VAR} is empty").into());
        }
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        // Checked before anything is sent: plain HTTP would carry the
        // managing key across a network in cleartext.
        if !loopback {
            return Err(format!(
                "--server {} is not a loopback address, and plain HTTP would carry the managing key in cleartext; run this on the server's machine or through an SSH tunnel (ssh -L 8080:127.0.0.1:8080 HOST, then --server http://127.0.0.1:8080)",
                shown(url.host_str().unwrap_or_default())
            )
            .into());
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            // Redirects and proxies would carry the key elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        let base = format!(
            "{}{MANAGEMENT_PATH}/keys",
            url.as_str().trim_end_matches('/')
        );
        Ok(Self { http, base, key })
    }

    /// One call: the body on success, else the server's explanation.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let mut response = request.send().await.map_err(|e| {
            format!(
                "the server did not answer: {}",
                shown(&e.without_url().to_string())
            )
        })?;
        let status = response.status();
        let too_large = || format!("the server's answer is larger than {MAX_ANSWER} bytes");
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER as u64)
        {
            return Err(too_large().into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(too_large().into());
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body);
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| {
                format!(
                    "the server answered {status} with an unexpected body: {}",
                    shown(&e.to_string())
                )
                .into()
            });
        }
        Err(explain(status, &text).into())
    }

    /// Every key of the owner, newest first.
    async fn all(&self) -> Result<Vec<management::Key>> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let path = match &cursor {
                Some(cursor) => format!("?limit={PAGE}&cursor={cursor}"),
                None => format!("?limit={PAGE}"),
            };
            let page: management::KeyPage = self.call(Method::GET, &path, None).await?;
            keys.extend(page.keys);
            match page.next_cursor {
                None => return Ok(keys),
                // A cursor is 32 hex digits, and a page comes once.
                Some(next) if next.len() == 32 && next.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    if !seen.insert(next.clone()) {
                        return Err(
                            "the server sent the same page twice; the list would be wrong".into(),
                        );
                    }
                    cursor = Some(next);
                }
                Some(_) => {
                    return Err("the server sent a page cursor this client does not follow".into());
                }
            }
        }
    }
}

impl KeyAdmin for Remote {
    fn check(&self, command: &KeysCommand) -> Result<()> {
        let refusal = match command {
            KeysCommand::Create(args)
                if args.owner.is_some() || args.rate_limit.is_some() || args.metadata.is_some() =>
            {
                "with --server a key belongs to the managing key's owner, and --rate-limit and --metadata are set on the store only (without --server)"
            }
            KeysCommand::List(args) if args.owner.is_some() => {
                "with --server the keys listed are the managing key's owner's; drop --owner"
            }
            KeysCommand::Revoke(args) if args.reason.is_some() => {
                "--reason is recorded on the store only (without --server)"
            }
            _ => return Ok(()),
        };
        Err(refusal.into())
    }

    async fn create(&self, args: CreateArgs) -> Result<Created> {
        let mut body = json!({"name": args.name });
        if let Some(at) = args.expiry() {
            body["expires_at"] = json!(at);
        }
        if !args.scopes.is_empty() {
            body["scopes"] = json!(args.scopes);
        }
        created(self.call(Method::POST, "", Some(body)).await?)
    }

    /// The managing key's owner's keys (`check` refused another owner).
    async fn list(&self, _owner: Option<String>) -> Result<Vec<Key>> {
        Ok(self.all().await?.into_iter().map(Key::from_body).collect())
    }

    async fn by_id(&self, id: KeyId) -> Result<Key> {
        let body = self.call(Method::GET, &format!("/{id}"), None).await?;
        Ok(Key::from_body(body))
    }

    async fn by_prefix(&self, prefix: &str) -> Result<Vec<Key>> {
        Ok(self
            .all()
            .await?
            .into_iter()
            .filter(|key| key.display_prefix.starts_with(prefix))
            .map(Key::from_body)
            .collect())
    }

    async fn rename(&self, key: &Key, name: &str) -> Result<Key> {
        let path = format!("/{}", key.body.id);
        let body = json!({"name": name });
        let renamed = self.call(Method::PATCH, &path, Some(body)).await?;
        Ok(Key::from_body(renamed))
    }

    /// Revoked without a reason (`check` refused one: the API takes none).
    async fn revoke(&self, key: &Key, _reason: Option<&str>) -> Result<Key> {
        let path = format!("/{}/revoke", key.body.id);
        let revoked = self.call(Method::POST, &path, None).await?;
        Ok(Key::from_body(revoked))
    }

    async fn roll(&self, key: &Key, overlap: chrono::Duration) -> Result<Created> {
        let path = format!("/{}/roll", key.body.id);
        let body = json!({"overlap": overlap.num_seconds().max(0) });
        created(self.call(Method::POST, &path, Some(body)).await?)
    }

    async fn reread(&self, _key: &Key) -> Result<Option<Key>> {
        Ok(None)
    }
}

/// A new key of the server's answer, its secret checked.
fn created(body: management::CreatedKey) -> Result<Created> {
    check_secret(&body)?;
    Ok(Created { body, owner: None })
}

/// What a refusal says: the problem's detail or the challenge's
/// description, escaped for the terminal.
fn explain(status: StatusCode, body: &str) -> String {
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let said = body["detail"]
        .as_str()
        .or_else(|| body["error_description"].as_str())
        .unwrap_or("no explanation");
    let hint = match status {
        StatusCode::UNAUTHORIZED => format!(" (is {MANAGING_KEY_VAR} a valid key of this server?)"),
        StatusCode::FORBIDDEN if body["error"] == "insufficient_scope" => {
            " (the managing key needs the scope keys:manage)".to_owned()
        }
        _ => String::new(),
    };
    format!("the server refused: {status}: {}{hint}", shown(said))
}

/// Refuses a "secret" that is not a key: a hostile server's text must not
/// reach the terminal or the script reading stdout.
fn check_secret(created: &management::CreatedKey) -> Result<()> {
    let secret = &created.secret;
    let key_like = (8..=256).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if key_like {
        Ok(())
    } else {
        Err("the server's answer holds no key (its secret is not made of key characters)".into())
    }
}
