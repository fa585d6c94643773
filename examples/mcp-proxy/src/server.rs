//! `serve`: the routes, and the server's life from start-up to shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower_api_keys::limit::{RedisLimits, WhenUnavailable};
use tower_api_keys::oauth::OAuth;
use tower_api_keys::secret_scanning::{PublicKeySource, SecretScanning};
use tower_api_keys::store::ListKeys;
use tower_api_keys::{ApiKeys, Caller, KeyStore, NewKey};

use crate::audit::AuditLog;
use crate::cli::{DEFAULT_OWNER, ServeArgs};
use crate::listener::{self, ConnectionLimits};
use crate::origin::AllowedOrigins;
use crate::proxy::{Proxy, Target};
use crate::session::SessionBindings;
use crate::{metadata, origin, proxy, store};

/// The serve configuration: everything the routes need besides the keys.
#[derive(Debug, Clone)]
pub struct Config {
    /// The URL clients use to reach this server, without a trailing `/`.
    pub public_url: String,
    /// The MCP server requests are proxied to.
    pub upstream: Target,
    /// Origins allowed on `/mcp`.
    pub allowed_origins: AllowedOrigins,
    /// The scope `/mcp` requires, if any.
    pub mcp_scope: Option<String>,
    /// How long an unused MCP session stays bound to its key.
    pub session_idle: Duration,
    /// Most MCP sessions one key may hold open.
    pub max_sessions_per_key: usize,
    /// With GitHub's public keys from here, `POST /github/secret-scanning`
    /// takes secret-scanning reports.
    pub secret_scanning: Option<PublicKeySource>,
}

/// Where the key management API is nested: `/api/v2/keys`.
pub const MANAGEMENT_PATH: &str = "/api/v2";

/// Where GitHub's secret-scanning reports are taken.
pub const SECRET_SCANNING_PATH: &str = "/github/secret-scanning";

/// The application:
///
/// Wherever a key is accepted, so is an access token of the OAuth issuer,
/// if one is configured.
///
/// | route | key | |
/// |---|---|---|
/// | `POST`, `GET`, `DELETE /mcp` | yes (and `mcp_scope`) | proxied to the upstream; foreign `Origin` 403 first |
/// | `GET /api/v2/projects` | yes | a JSON list of projects |
/// | `/api/v2/keys...` | yes, with `keys:manage` | the key management API (see [`tower_api_keys::management`]) |
/// | `GET /api/v2/openapi.json` | no | its OpenAPI 3.1 document |
/// | `GET /settings/api-keys` | no (the page asks for a key) | the Settings → API Keys page |
/// | `GET /.well-known/oauth-protected-resource` | no | RFC 9728 metadata |
/// | `GET /.well-known/oauth-authorization-server`, `POST /register` | no | without an OAuth issuer: 404 / 400 saying this server takes API keys, not OAuth |
/// | `GET /healthz` | no | `ok` |
/// | `POST /github/secret-scanning` | GitHub's signature | with `secret_scanning`: revokes reported keys |
///
/// Cancelling `shutdown` ends the proxied streams in flight; so does a
/// revocation, for the streams of the revoked key.
pub fn router(keys: &ApiKeys, config: &Config, shutdown: CancellationToken) -> Router {
    let mcp_layer = match &config.mcp_scope {
        Some(scope) => keys.layer().require_scope(scope.clone()),
        None => keys.layer(),
    };
    let proxy = Proxy::new(
        config.upstream.clone(),
        keys.clone(),
        SessionBindings::with_limits(config.session_idle, config.max_sessions_per_key),
        shutdown,
    );
    let handler = get(proxy::forward)
        .post(proxy::forward)
        .delete(proxy::forward);
    let mcp = Router::new()
        .route("/mcp", handler)
        .with_state(proxy)
        .route_layer(mcp_layer)
        // Outermost: a foreign Origin is refused before any key is read.
        .route_layer(middleware::from_fn_with_state(
            Arc::new(config.allowed_origins.clone()),
            origin::check,
        ));
    let api = Router::new()
        .route("/api/v2/projects", get(projects))
        .route_layer(keys.layer())
        .nest(
            MANAGEMENT_PATH,
            keys.management().mounted_at(MANAGEMENT_PATH).router(),
        )
        .merge(crate::settings::router(
            &config.public_url,
            keys.oauth_issuer(),
            config.mcp_scope.as_deref(),
        ));
    let issuer = keys.oauth_issuer();
    let document = Arc::new(metadata::document(
        &config.public_url,
        config.mcp_scope.as_deref(),
        issuer,
    ));
    let mut public = Router::new()
        .route(metadata::PATH, get(metadata::serve))
        .route(metadata::PATH_FOR_MCP, get(metadata::serve))
        .with_state(document)
        .route("/healthz", get(|| async { "ok" }));
    if issuer.is_none() {
        // Where OAuth clients look next after a refused key: told why.
        // With an issuer, the metadata sends them to it instead.
        public = public
            .route(
                "/.well-known/oauth-authorization-server",
                get(metadata::no_authorization_server),
            )
            .route(
                "/.well-known/openid-configuration",
                get(metadata::no_authorization_server),
            )
            .route("/register", axum::routing::post(metadata::no_registration));
    }
    let mut app = mcp.merge(api).merge(public);
    if let Some(source) = &config.secret_scanning {
        let scanning = SecretScanning::new(keys.clone(), source.clone());
        app = app.route(SECRET_SCANNING_PATH, scanning.handler());
    }
    app
}

/// `GET /api/v2/projects`: the caller's projects (a fixed demo list), by
/// key or access token. One owner's data: not for shared caches.
async fn projects(caller: Caller) -> impl axum::response::IntoResponse {
    let owner = caller.owner().as_str();
    (
        [(http::header::CACHE_CONTROL, "no-store")],
        Json(json!([
            {"id": "prj_1", "name": "website", "owner": owner },
            {"id": "prj_2", "name": "mobile-app", "owner": owner },
        ])),
    )
}

/// The optional abuse controls of `serve`.
#[derive(Debug, Clone, Default)]
pub struct Protections {
    /// Revoke keys sent in URLs.
    pub revoke_exposed_keys: bool,
    /// The allowance of keys without their own.
    pub rate_limit: Option<tower_api_keys::limit::RateLimit>,
    /// The allowance shared by each owner's keys.
    pub owner_rate_limit: Option<tower_api_keys::limit::RateLimit>,
    /// The Redis server rate limits are counted in; this process without.
    pub redis: Option<String>,
    /// Refuse limited requests with 503 while Redis does not answer.
    pub redis_fail_closed: bool,
    /// Failed authentications allowed per client address per minute.
    pub max_failed_attempts: Option<u32>,
    /// Access tokens of this OAuth issuer accepted beside keys.
    pub oauth_issuer: Option<String>,
    /// The audience they must be for (default: `<public URL>/mcp`).
    pub oauth_audience: Option<String>,
}

impl From<&ServeArgs> for Protections {
    fn from(args: &ServeArgs) -> Self {
        Self {
            revoke_exposed_keys: args.revoke_exposed_keys,
            rate_limit: args.rate_limit,
            owner_rate_limit: args.owner_rate_limit,
            redis: args.redis.clone(),
            redis_fail_closed: args.redis_fail_closed,
            max_failed_attempts: args.max_failed_attempts,
            oauth_issuer: args.oauth_issuer.clone(),
            oauth_audience: args.oauth_audience.clone(),
        }
    }
}

impl From<&ServeArgs> for ConnectionLimits {
    fn from(args: &ServeArgs) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(args.header_read_timeout_secs),
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            ..Self::default()
        }
    }
}

/// The `ApiKeys` of a server: the realm, the metadata URL in every
/// challenge, the abuse controls asked for, and its key events appended
/// to `audit` if given.
pub fn api_keys(
    store: Arc<dyn KeyStore>,
    realm: &str,
    public_url: &str,
    protections: &Protections,
    audit: Option<&AuditLog>,
) -> Result<ApiKeys, tower_api_keys::BuildError> {
    let mut builder = ApiKeys::builder(store)
        .realm(realm)
        .resource_metadata(metadata::url(public_url))
        .revoke_keys_exposed_in_url(protections.revoke_exposed_keys);
    if let Some(limit) = protections.rate_limit {
        builder = builder.rate_limit(limit);
    }
    if let Some(limit) = protections.owner_rate_limit {
        builder = builder.owner_rate_limit(limit);
    }
    if let Some(url) = &protections.redis {
        let policy = if protections.redis_fail_closed {
            WhenUnavailable::FailClosed
        } else {
            WhenUnavailable::FailOpen
        };
        builder = builder.redis_rate_limits(RedisLimits::new(url)?.when_unavailable(policy));
    }
    if let Some(failures) = protections.max_failed_attempts {
        // Counted by the peer address of the connection.
        builder = builder.failed_attempt_limit(tower_api_keys::limit::FailedAttemptLimit::new(
            failures,
            Duration::from_secs(60),
        ));
    }
    if let Some(issuer) = &protections.oauth_issuer {
        let audience = protections
            .oauth_audience
            .clone()
            .unwrap_or_else(|| format!("{public_url}/mcp"));
        builder = builder.oauth(OAuth::new(issuer, audience));
    }
    if let Some(audit) = audit {
        builder = audit.attach(builder);
    }
    builder.build()
}

/// Runs `serve` until Ctrl-C or SIGTERM.
pub async fn run(
    db: &str,
    audit: Option<&AuditLog>,
    args: ServeArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = store::open(db).await?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let local = listener.local_addr()?;
    let public_url = match &args.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => default_public_url(local),
    };
    let shutdown = CancellationToken::new();
    // Before the keys are built: they register their figures with the
    // recorder installed then.
    let metrics = match args.metrics_listen {
        Some(addr) => Some(crate::metrics::serve(addr, shutdown.child_token()).await?),
        None => None,
    };
    let upstream = match &args.upstream {
        Some(url) => Target::parse(url)?,
        None => {
            let addr = crate::upstream::spawn(shutdown.child_token()).await?;
            Target::parse(&format!("http://{addr}/mcp"))?
        }
    };
    let config = Config {
        allowed_origins: AllowedOrigins::new(&public_url, &args.allowed_origins)?,
        public_url,
        upstream,
        mcp_scope: args.mcp_scope.clone(),
        session_idle: Duration::from_secs(args.session_idle_secs),
        max_sessions_per_key: usize::try_from(args.max_sessions_per_key).unwrap_or(usize::MAX),
        secret_scanning: args
            .secret_scanning_keys
            .as_deref()
            .map(PublicKeySource::parse),
    };
    let keys = api_keys(
        Arc::clone(&store),
        &args.realm,
        &config.public_url,
        &Protections::from(&args),
        audit,
    )?;
    bootstrap(&keys).await?;

    let url = &config.public_url;
    eprintln!("mcp_proxy listening on http://{local}");
    eprintln!("  MCP endpoint   {url}/mcp");
    eprintln!(
        "  upstream       {}{}",
        config.upstream,
        if args.upstream.is_none() {
            " (built-in demo)"
        } else {
            ""
        }
    );
    eprintln!("  key store      {}", store::describe(db));
    eprintln!("  metadata       {}", metadata::url(url));
    eprintln!("  origins        {}", config.allowed_origins.describe());
    if let Some(scope) = &config.mcp_scope {
        eprintln!("  /mcp needs     scope {scope}");
    }
    if args.revoke_exposed_keys {
        eprintln!("  keys in URLs   revoked at once");
    }
    if let Some(limit) = args.rate_limit {
        eprintln!(
            "  rate limit     {} requests per {:?} per key",
            limit.requests, limit.window
        );
    }
    if let Some(limit) = args.owner_rate_limit {
        eprintln!(
            "  owner limit    {} requests per {:?} per owner, all keys together",
            limit.requests, limit.window
        );
    }
    if let Some(url) = &args.redis {
        eprintln!(
            "  limits kept in Redis at {} ({})",
            without_credentials(url),
            if args.redis_fail_closed {
                "fail closed: 503 while it does not answer"
            } else {
                "fail open: counted here alone while it does not answer"
            }
        );
    }
    if let Some(failures) = args.max_failed_attempts {
        eprintln!("  failed tries   {failures} per minute per client address");
    }
    if let Some(addr) = metrics {
        eprintln!("  metrics        http://{addr}/metrics");
    }
    if let Some(issuer) = keys.oauth_issuer() {
        eprintln!("  OAuth          access tokens of {issuer} accepted beside keys");
    }
    if let Some(keys) = &args.secret_scanning_keys {
        eprintln!("  leak reports   {url}{SECRET_SCANNING_PATH} (GitHub's keys from {keys})");
    }

    let app = router(&keys, &config, shutdown.clone());
    let limits = ConnectionLimits::from(&args);
    let stop = CancellationToken::new();
    // Peer addresses (for the failed-attempt limit) come with each request.
    let serving = tokio::spawn(listener::serve(listener, app, limits, stop.clone()));
    shutdown_signal().await;
    eprintln!("shutting down");
    // Ends the proxied streams and the built-in upstream, so open SSE
    // streams do not hold the graceful shutdown up.
    shutdown.cancel();
    stop.cancel();
    if let Err(error) = serving.await {
        tracing::error!(%error, "the server task failed");
    }
    let stats = keys.shutdown().await;
    eprintln!("stopped; last-used batches written: {}", stats.batches);
    Ok(())
}

/// `http://<listen address>`, with an unspecified address (`0.0.0.0`)
/// replaced by loopback.
fn default_public_url(local: SocketAddr) -> String {
    let mut addr = local;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// A Redis URL without the user and password it may carry.
fn without_credentials(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}

/// With an empty store, creates a key named `bootstrap` and prints it once,
/// alone on stdout.
async fn bootstrap(keys: &ApiKeys) -> Result<(), Box<dyn std::error::Error>> {
    let any = keys.store().list(&ListKeys::new().limit(1)).await?;
    if any.records.is_empty() {
        let created = keys.create(NewKey::new(DEFAULT_OWNER, "bootstrap")).await?;
        eprintln!(
            "the key store was empty: created the key \"bootstrap\" ({}, id {}). \
             It is shown once, on the next line; copy it now.",
            created.record.display_prefix, created.record.id
        );
        println!("{}", created.secret.expose_secret());
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
