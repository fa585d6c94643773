//! The command line: `serve` (the default) and `keys create|list|revoke|roll`.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use tower_api_keys::limit::RateLimit;

/// Where keys live unless `--db` says otherwise.
pub const DEFAULT_DB: &str = "sqlite:./api-keys.db";
/// The owner of keys created without `--owner`, and of the bootstrap key.
pub const DEFAULT_OWNER: &str = "default";

/// An MCP proxy server protected by API keys.
#[derive(Debug, Parser)]
#[command(name = "mcp_proxy", version)]
pub struct Cli {
    /// The key store: `sqlite:PATH` (created if missing) or `postgres://...`.
    #[arg(long, global = true, default_value = DEFAULT_DB, value_name = "URL")]
    pub db: String,
    /// Append every key event (created, revoked, rolled, expired, exposed in
    /// a URL, reported leaked, first use) to this file as one JSON line
    /// each; never a secret. `serve` and the `keys` commands share it. A
    /// new file is readable by its owner alone.
    #[arg(long, global = true, value_name = "PATH")]
    pub audit_log: Option<std::path::PathBuf>,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// A subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve /mcp (proxied to an MCP server), /api/v2/projects, /healthz
    /// and the resource metadata. With an empty store, creates a first key
    /// and prints it.
    Serve(ServeArgs),
    /// Create, list, rename, revoke and roll keys: on the store (`--db`),
    /// or through a running server's API (`--server`). A change takes
    /// effect on a running server within a second.
    Keys(KeysArgs),
}

/// `keys`: where the keys are managed, and what to do.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Manage the keys through the key management API of the server at
    /// this URL (http://HOST:PORT) instead of on the store. The managing
    /// key is read from the MCP_PROXY_KEY environment variable, never from
    /// the command line (which other users can see); the keys managed are
    /// its owner's.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Print JSON for scripts: one object per key, or a list of them. A
    /// new key's secret is in the object's `secret`.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The environment variable `keys --server` reads the managing key from.
pub const MANAGING_KEY_VAR: &str = "MCP_PROXY_KEY";

/// `serve`'s options.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The MCP server's endpoint, such as http://127.0.0.1:9000/mcp. Without
    /// it, a built-in demo server (tools echo, whoami, slow) is started.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// The realm of the WWW-Authenticate challenge.
    #[arg(long, default_value = "mcp-proxy", value_name = "NAME")]
    pub realm: String,
    /// The URL clients reach this server at (default: http://<listen>).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// An Origin allowed on /mcp (repeatable), as scheme://host:port or
    /// scheme://host:* for any port. Replaces the default of the loopback
    /// origins; the public URL's origin is always allowed.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// A scope keys must grant to use /mcp.
    #[arg(long, value_name = "SCOPE")]
    pub mcp_scope: Option<String>,
    /// Seconds an unused MCP session stays bound to its key (and counts
    /// against its cap of open sessions); keep it no longer than the
    /// upstream keeps sessions.
    #[arg(long, default_value_t = 120, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub session_idle_secs: u64,
    /// Most MCP sessions one key may hold open; an `initialize` past it gets
    /// 429 before it reaches the upstream.
    #[arg(long, default_value_t = 100, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_sessions_per_key: u64,
    /// Seconds a client may take to send a request's headers (and, on a
    /// kept-alive connection, to start its next request) before the
    /// connection is closed; also the longest wait for more of a request's
    /// body (408 past it).
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_secs: u64,
    /// Most connections open at once; further ones wait to be accepted, so
    /// idle or slow clients cannot use up the process's file descriptors.
    #[arg(long, default_value_t = 4096, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Revoke a key sent in a URL's query string at once, with the reason
    /// "exposed in URL" (it is refused with 400 either way).
    #[arg(long)]
    pub revoke_exposed_keys: bool,
    /// A request allowance for keys without one of their own, such as
    /// 600/m or 100/30s (429 with Retry-After and RateLimit headers past it;
    /// counted by this process, or in Redis with --redis).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate_limit: Option<RateLimit>,
    /// An allowance shared by all keys of each owner, such as 3000/m,
    /// checked after the key's own: more keys buy no more requests.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub owner_rate_limit: Option<RateLimit>,
    /// Count rate limits in Redis (redis://HOST:PORT), so that every
    /// instance using the same server enforces one allowance.
    #[arg(long, env = "REDIS_URL", value_name = "URL")]
    pub redis: Option<String>,
    /// With --redis: refuse limited requests with 503 while Redis does not
    /// answer (default: count them in this process alone, up to the
    /// allowance, with a warning each minute).
    #[arg(long, requires = "redis")]
    pub redis_fail_closed: bool,
    /// Refuse a client address with 429 for the rest of the minute after
    /// this many failed authentications in it.
    #[arg(long, value_name = "N")]
    pub max_failed_attempts: Option<u32>,
    /// Serve the key metrics in Prometheus text format on GET /metrics at
    /// this address, a listener of its own (off by default).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Accept GitHub secret-scanning reports on POST
    /// /github/secret-scanning, verified with the public keys at this URL
    /// (such as https://api.github.com/meta/public_keys/secret_scanning)
    /// or in this file; a reported key is revoked at once.
    #[arg(long, value_name = "URL-OR-FILE")]
    pub secret_scanning_keys: Option<String>,
    /// Also accept OAuth access tokens (JWTs) of this issuer on /mcp and
    /// the API, beside keys; its metadata and signing keys are fetched from
    /// it. The protected-resource metadata then names it, so clients
    /// without a key can sign in; clients that send a key never need to.
    #[arg(long, value_name = "URL")]
    pub oauth_issuer: Option<String>,
    /// The audience access tokens must be for (default: the public URL of
    /// /mcp, the resource clients name, RFC 8707).
    #[arg(long, value_name = "URI", requires = "oauth_issuer")]
    pub oauth_audience: Option<String>,
}

impl Default for ServeArgs {
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Defaults::parse_from(["serve"]).serve
    }
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints it alone on stdout (it is shown only once).
    Create(CreateArgs),
    /// List keys: id, owner, name, prefix, scopes, created, last used,
    /// expiry, status.
    List(ListArgs),
    /// Revoke a key, irreversibly.
    Revoke(RevokeArgs),
    /// Give a key a new name.
    Rename(RenameArgs),
    /// Replace a key: creates a new one (printed alone on stdout) with the
    /// same name and scopes; the old one keeps working for the overlap.
    Roll(RollArgs),
}

/// `keys create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A name for the key, such as laptop or ci-deploy.
    pub name: String,
    /// The account the key belongs to (default: `default`; with
    /// `--server`, always the managing key's owner).
    #[arg(long)]
    pub owner: Option<String>,
    /// Expire after this long: 90s, 15m, 12h, 30d or 2w.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "expires_at")]
    pub expires_in: Option<chrono::Duration>,
    /// Expire at this instant (RFC 3339, such as 2030-01-31T00:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Limit the key to this scope (repeatable). Without any, the key has
    /// full access.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// The key's own request allowance, such as 600/m (see `serve
    /// --rate-limit`).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate_limit: Option<RateLimit>,
    /// Application data handed to the MCP server with each request, as a
    /// JSON value.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub metadata: Option<serde_json::Value>,
}

impl CreateArgs {
    /// When the key is to expire: `--expires-in` from now, or `--expires-at`.
    pub fn expiry(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.expires_in {
            Some(after) => Some(chrono::Utc::now() + after),
            None => self.expires_at,
        }
    }
}

/// `keys list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this account's keys (default: every key).
    #[arg(long)]
    pub owner: Option<String>,
    /// Only active keys that expire within this long, soonest first: 1d,
    /// 7d, 2w (to warn their owners).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expiring_within: Option<chrono::Duration>,
}

/// `keys revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key's id, or the start of its display prefix (bmc_K7xR...).
    #[arg(value_name = "ID-OR-PREFIX")]
    pub key: String,
    /// Why, recorded with the revocation and shown by `keys list`.
    #[arg(long)]
    pub reason: Option<String>,
}

/// `keys rename`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The key's id, or the start of its display prefix.
    #[arg(value_name = "ID-OR-PREFIX")]
    pub key: String,
    /// The new name.
    pub name: String,
}

/// `keys roll`.
#[derive(Debug, Args)]
pub struct RollArgs {
    /// The key's id, or the start of its display prefix.
    #[arg(value_name = "ID-OR-PREFIX")]
    pub key: String,
    /// How long the old key keeps working: 90s, 15m, 12h, 30d or 2w.
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_duration)]
    pub overlap: chrono::Duration,
}

/// `90s`, `15m`, `12h`, `30d`, `2w`.
pub fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let invalid = || format!("{text:?} is not a duration such as 90s, 15m, 12h, 30d or 2w");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(seconds)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(invalid)
}

/// `600/m`, `10/s`, `5000/h`, `100/30s`: requests per period.
pub fn parse_rate(text: &str) -> Result<RateLimit, String> {
    let invalid = || format!("{text:?} is not a rate such as 600/m, 10/s or 100/30s");
    let (requests, period) = text.split_once('/').ok_or_else(invalid)?;
    let requests: u32 = requests.parse().map_err(|_| invalid())?;
    let period = if period.chars().all(|c| c.is_ascii_alphabetic()) {
        parse_duration(&format!("1{period}"))?
    } else {
        parse_duration(period)?
    };
    let period = period.to_std().map_err(|_| invalid())?;
    if requests == 0 || period.is_zero() {
        return Err(invalid());
    }
    Ok(RateLimit::new(requests, period))
}

fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))
}

fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&chrono::Utc))
        .map_err(|error| format!("{text:?} is not an RFC 3339 instant: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), chrono::Duration::days(30));
        assert_eq!(parse_duration("1h").unwrap(), chrono::Duration::hours(1));
        assert_eq!(
            parse_duration("90s").unwrap(),
            chrono::Duration::seconds(90)
        );
        for bad in ["", "h", "10", "1.5h", "-1h", "1y", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_arguments_mean_serve_with_defaults() {
        let cli = Cli::parse_from(["mcp_proxy"]);
        assert_eq!(cli.db, DEFAULT_DB);
        assert!(cli.command.is_none());
        let serve = ServeArgs::default();
        assert_eq!(serve.listen.to_string(), "127.0.0.1:8080");
        assert!(serve.upstream.is_none());
        assert!(serve.metrics_listen.is_none(), "metrics are off by default");
        assert!(serve.secret_scanning_keys.is_none());
        assert!(cli.audit_log.is_none());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
