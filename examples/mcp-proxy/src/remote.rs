//! `keys --server URL ...`: the `keys` commands through a running server's
//! key management API (`/api/v2/keys`), with the managing key taken from
//! `MCP_PROXY_KEY` and sent only in the `Authorization` header. The keys
//! managed are the managing key's owner's. Secrets go to stdout alone;
//! everything else to stderr.

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower_api_keys::management::{CreatedKeyBody, KeyBody, KeyPageBody};

use crate::cli::{
    CreateArgs, KeysCommand, ListArgs, MANAGING_KEY_VAR, RenameArgs, RevokeArgs, RollArgs,
};
use crate::keys::{Result, print_json, render, shown, soonest_expiring, the_one, when};
use crate::server::MANAGEMENT_PATH;

/// Keys asked for per page when listing.
const PAGE: usize = 100;
/// The largest answer read from the server.
const MAX_ANSWER: usize = 1 << 20;

/// A client of one server's management API.
struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// Runs one `keys` subcommand through the server at `server`.
pub async fn run(server: &str, json: bool, command: KeysCommand) -> Result<()> {
    let client = Client::new(server)?;
    match command {
        KeysCommand::Create(args) => create(&client, args, json).await,
        KeysCommand::List(args) => list(&client, args, json).await,
        KeysCommand::Rename(args) => rename(&client, args, json).await,
        KeysCommand::Revoke(args) => revoke(&client, args, json).await,
        KeysCommand::Roll(args) => roll(&client, args, json).await,
    }
}

impl Client {
    fn new(server: &str) -> Result<Self> {
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
        if !loopback {
            eprintln!(
                "warning: {} is not this machine, and plain HTTP carries the managing key in cleartext; prefer running this on the server's machine or through an SSH tunnel",
                shown(url.host_str().unwrap_or_default())
            );
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
    async fn all(&self) -> Result<Vec<KeyBody>> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let path = match &cursor {
                Some(cursor) => format!("?limit={PAGE}&cursor={cursor}"),
                None => format!("?limit={PAGE}"),
            };
            let page: KeyPageBody = self.call(Method::GET, &path, None).await?;
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

    /// The key named by an id, or by the start of its display prefix.
    async fn find(&self, id_or_prefix: &str) -> Result<KeyBody> {
        if id_or_prefix
            .parse::<tower_api_keys::record::KeyId>()
            .is_ok()
        {
            return self
                .call(Method::GET, &format!("/{id_or_prefix}"), None)
                .await;
        }
        let found: Vec<KeyBody> = self
            .all()
            .await?
            .into_iter()
            .filter(|k| k.display_prefix.starts_with(id_or_prefix))
            .collect();
        the_one(found, id_or_prefix, |k| (k.id, &k.display_prefix, &k.name))
    }
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

async fn create(client: &Client, args: CreateArgs, json: bool) -> Result<()> {
    if args.owner.is_some() || args.rate_limit.is_some() || args.metadata.is_some() {
        return Err(
            "with --server a key belongs to the managing key's owner, and --rate-limit and --metadata are set on the store only (without --server)"
                .into(),
        );
    }
    let mut body = json!({"name": args.name });
    let expires_at = match (args.expires_in, args.expires_at) {
        (Some(after), _) => Some(Utc::now() + after),
        (None, at) => at,
    };
    if let Some(at) = expires_at {
        body["expires_at"] = json!(at);
    }
    if !args.scopes.is_empty() {
        body["scopes"] = json!(args.scopes);
    }
    let created: CreatedKeyBody = client.call(Method::POST, "", Some(body)).await?;
    print_created(&created, json, "created")
}

fn print_created(created: &CreatedKeyBody, json: bool, what: &str) -> Result<()> {
    check_secret(created)?;
    if json {
        return print_json(created);
    }
    let key = &created.key;
    eprintln!(
        "{what} key {:?} ({}, id {}), scopes {}, {}",
        shown(&key.name),
        shown(&key.display_prefix),
        key.id,
        scopes(key),
        key.expires_at.map_or_else(
            || "never expires".to_owned(),
            |at| format!("expires {}", when(at))
        )
    );
    eprintln!("the key is shown once, on stdout:");
    println!("{}", created.secret);
    Ok(())
}

/// Refuses a "secret" that is not a key: a hostile server's text must not
/// reach the terminal or the script reading stdout.
fn check_secret(created: &CreatedKeyBody) -> Result<()> {
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

fn scopes(key: &KeyBody) -> String {
    match &key.scopes {
        None => "*".to_owned(),
        Some(scopes) => shown(&scopes.join(" ")),
    }
}

async fn list(client: &Client, args: ListArgs, json: bool) -> Result<()> {
    if args.owner.is_some() {
        return Err(
            "with --server the keys listed are the managing key's owner's; drop --owner".into(),
        );
    }
    let mut keys = client.all().await?;
    keys.reverse();
    if let Some(within) = args.expiring_within {
        keys = soonest_expiring(keys, Utc::now() + within, |k| (k.status, k.expires_at));
    }
    if json {
        return print_json(&keys);
    }
    if keys.is_empty() {
        eprintln!("no keys");
        return Ok(());
    }
    let header = [
        "ID",
        "NAME",
        "PREFIX",
        "SCOPES",
        "CREATED",
        "LAST USED",
        "EXPIRES",
        "STATUS",
    ];
    let rows = keys.iter().map(|key| {
        vec![
            key.id.to_string(),
            shown(&key.name),
            shown(&key.display_prefix),
            scopes(key),
            when(key.created_at),
            key.last_used_at.map_or_else(|| "never".to_owned(), when),
            key.expires_at.map_or_else(|| "never".to_owned(), when),
            key.status.to_string(),
        ]
    });
    print!("{}", render(&header, rows));
    Ok(())
}

async fn rename(client: &Client, args: RenameArgs, json: bool) -> Result<()> {
    let key = client.find(&args.key).await?;
    let renamed: KeyBody = client
        .call(
            Method::PATCH,
            &format!("/{}", key.id),
            Some(json!({"name": args.name })),
        )
        .await?;
    if json {
        return print_json(&renamed);
    }
    eprintln!(
        "renamed key {} (id {}) from {:?} to {:?}",
        shown(&renamed.display_prefix),
        renamed.id,
        shown(&key.name),
        shown(&renamed.name)
    );
    Ok(())
}

async fn revoke(client: &Client, args: RevokeArgs, json: bool) -> Result<()> {
    if args.reason.is_some() {
        return Err("--reason is recorded on the store only (without --server)".into());
    }
    let key = client.find(&args.key).await?;
    let revoked: KeyBody = client
        .call(Method::POST, &format!("/{}/revoke", key.id), None)
        .await?;
    if json {
        return print_json(&revoked);
    }
    let already = if key.revoked_at.is_some() {
        "was already "
    } else {
        ""
    };
    eprintln!(
        "key {:?} ({}, id {}) {already}revoked",
        shown(&revoked.name),
        shown(&revoked.display_prefix),
        revoked.id
    );
    Ok(())
}

async fn roll(client: &Client, args: RollArgs, json: bool) -> Result<()> {
    let key = client.find(&args.key).await?;
    let overlap = args.overlap.num_seconds().max(0);
    let created: CreatedKeyBody = client
        .call(
            Method::POST,
            &format!("/{}/roll", key.id),
            Some(json!({"overlap": overlap })),
        )
        .await?;
    print_created(&created, json, "rolled into the")
}
