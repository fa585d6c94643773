//! The binary itself, run as separate processes: `serve` on an empty store
//! prints a bootstrap key; `keys create|list|roll|revoke`, run against the
//! store a running server uses (SQLite, and PostgreSQL), take effect on it
//! within a second; SIGTERM stops it promptly.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PgSchema, SchemaStore as _, TempDir, connect, http, whoami};
use http::StatusCode;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tower_api_keys::store::{ListKeys, sqlx};
use tower_api_keys::{ApiKeys, Scopes, SqliteStore};

/// The `mcp-proxy` binary, built by cargo for this test.
const BINARY: &str = env!("CARGO_BIN_EXE_mcp-proxy");

/// One run of the example binary to its end.
#[derive(Debug)]
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
    took: Duration,
    ended: Instant,
}

async fn run_example(db: &str, args: &[&str]) -> Run {
    let start = Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(BINARY)
            .args(args)
            .args(["--db", db])
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the example finished")
    .unwrap();
    let ended = Instant::now();
    Run {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        took: ended - start,
        ended,
    }
}

impl Run {
    /// The key printed alone on stdout.
    fn key(&self) -> String {
        assert!(self.success, "failed: {}", self.stderr);
        let key = self.stdout.trim_end_matches('\n');
        assert!(
            !key.contains('\n'),
            "more than the key on stdout: {:?}",
            self.stdout
        );
        assert!(
            key.starts_with("bmc_") && key.len() == 47,
            "not a key: {key:?}"
        );
        key.to_owned()
    }
}

/// `mcp-proxy serve` as a child process.
struct ServerProcess {
    child: tokio::process::Child,
    url: String,
    stdout: tokio::process::ChildStdout,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    async fn start(db: &str) -> Self {
        Self::start_with(db, &[]).await
    }

    /// `serve` with more arguments.
    async fn start_with(db: &str, args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(BINARY)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                stderr.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(url) = line.strip_prefix("mcp_proxy listening on ") {
                    return url.to_owned();
                }
            }
            panic!("the server exited: {}", stderr.lock().unwrap());
        })
        .await
        .expect("the server started");
        let log = Arc::clone(&stderr);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let stdout = child.stdout.take().unwrap();
        Self {
            child,
            url,
            stdout,
            stderr,
        }
    }

    /// Sends SIGTERM and waits for the exit; returns how long it took.
    async fn terminate(&mut self) -> Duration {
        let pid = self.child.id().expect("running").to_string();
        let start = Instant::now();
        let kill = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(kill.success());
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("the server stopped after SIGTERM")
            .unwrap();
        assert!(
            status.success(),
            "{status}: {}",
            self.stderr.lock().unwrap()
        );
        start.elapsed()
    }

    /// The rest of the first line of stderr starting with `prefix`, waiting
    /// for it up to `within`.
    async fn stderr_line(&self, prefix: &str, within: Duration) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .lines()
                .find_map(|line| line.strip_prefix(prefix))
            {
                return Some(line.trim().to_owned());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// The bootstrap key printed on stdout of a server started on an empty
    /// store.
    async fn bootstrap_key(&mut self) -> String {
        let mut line = String::new();
        let mut reader = BufReader::new(&mut self.stdout);
        tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
            .await
            .expect("a bootstrap key on stdout")
            .unwrap();
        line.trim_end().to_owned()
    }

    /// Everything the server printed on stdout (after it exited).
    async fn stdout_to_end(&mut self) -> String {
        let mut text = String::new();
        self.stdout.read_to_string(&mut text).await.unwrap();
        text
    }
}

async fn status_of(http: &reqwest::Client, url: &str, key: &str) -> StatusCode {
    http.get(format!("{url}/api/v2/projects"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
}

/// Asks every 10 ms until `url` answers `want` for `key`; how long since
/// `since` that took, failing past `within`.
async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    want: StatusCode,
    since: Instant,
    within: Duration,
) -> Duration {
    loop {
        let status = status_of(http, url, key).await;
        let took = since.elapsed();
        if status == want {
            return took;
        }
        assert!(
            took < within,
            "still {status} {took:?} later, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The newcomer's path, all through the example binary: `serve` on an empty
/// store prints a bootstrap key that works with curl-like requests and the
/// rmcp client; `keys create` and `keys revoke`, run as separate processes
/// against the same SQLite file, take effect on the running server within
/// a second; SIGTERM stops it promptly although an SSE stream is open; a
/// restart on the same store prints no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_binary_serves_and_obeys_keys_commands_from_other_processes() {
    let dir = TempDir::new();
    let db = format!("sqlite:{}", dir.path().join("api-keys.db").display());
    let mut server = ServerProcess::start(&db).await;
    let bootstrap = {
        let mut line = String::new();
        let mut reader = BufReader::new(&mut server.stdout);
        tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
            .await
            .expect("a bootstrap key on stdout")
            .unwrap();
        line.trim_end().to_owned()
    };
    assert!(
        bootstrap.starts_with("bmc_") && bootstrap.len() == 47,
        "{bootstrap:?}"
    );
    let http = http();
    let url = server.url.clone();
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(status_of(&http, &url, &bootstrap).await, StatusCode::OK);

    // The rmcp client through the built-in demo upstream.
    let client = connect(&format!("{url}/mcp"), &bootstrap).await.unwrap();
    let who = whoami(&client).await;
    assert_eq!(who.key_name, "bootstrap");
    assert_eq!(who.owner, "default");

    let created = run_example(&db, &["keys", "create", "ci", "--scope", "projects:read"]).await;
    let ci = created.key();
    let took = wait_for(
        &http,
        &url,
        &ci,
        StatusCode::OK,
        created.ended,
        Duration::from_secs(1),
    )
    .await;
    eprintln!(
        "keys create ran in {:?}; its key worked {took:?} after the command ended",
        created.took
    );
    for _ in 0..3 {
        assert_eq!(status_of(&http, &url, &ci).await, StatusCode::OK); // cached now
    }

    let prefix = &ci[..12];
    let revoked = run_example(&db, &["keys", "revoke", prefix, "--reason", "test"]).await;
    assert!(revoked.success, "{}", revoked.stderr);
    let took = wait_for(
        &http,
        &url,
        &ci,
        StatusCode::UNAUTHORIZED,
        revoked.ended,
        Duration::from_secs(1),
    )
    .await;
    eprintln!(
        "keys revoke ran in {:?}; the server refused the key {took:?} after the command ended",
        revoked.took
    );
    assert_eq!(status_of(&http, &url, &bootstrap).await, StatusCode::OK);
    let listed = run_example(&db, &["keys", "list"]).await;
    assert!(listed.stdout.contains("revoked: test"), "{}", listed.stdout);

    // The rmcp client's session keeps an SSE stream open; SIGTERM must not
    // wait for it to end.
    let took = server.terminate().await;
    eprintln!("the server stopped {took:?} after SIGTERM with an SSE stream open");
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(client);
    assert_eq!(
        server.stdout_to_end().await,
        "",
        "the bootstrap key was printed once only"
    );

    let mut again = ServerProcess::start(&db).await;
    assert_eq!(
        status_of(&http, &again.url, &bootstrap).await,
        StatusCode::OK
    );
    again.terminate().await;
    assert_eq!(again.stdout_to_end().await, "", "no second bootstrap key");
}

/// `keys create|list|roll|revoke` through the binary: the key alone on
/// stdout, scopes, expiry, owners, roll with its overlap, a revocation
/// reason in the list, and clear errors for ambiguous or unknown keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_commands_create_list_roll_and_revoke() {
    let dir = TempDir::new();
    let db = format!("sqlite:{}", dir.path().join("api-keys.db").display());
    let deploy = run_example(
        &db,
        &[
            "keys",
            "create",
            "deploy",
            "--owner",
            "acme",
            "--scope",
            "projects:read",
            "--scope",
            "mcp",
            "--expires-in",
            "30d",
        ],
    )
    .await;
    let deploy_key = deploy.key();
    assert!(
        deploy.stderr.contains("created key \"deploy\""),
        "{}",
        deploy.stderr
    );
    let laptop = run_example(
        &db,
        &[
            "keys",
            "create",
            "laptop",
            "--expires-at",
            "2099-01-31T00:00:00Z",
        ],
    )
    .await;
    laptop.key();
    let both = run_example(
        &db,
        &[
            "keys",
            "create",
            "x",
            "--expires-in",
            "1d",
            "--expires-at",
            "2099-01-31T00:00:00Z",
        ],
    )
    .await;
    assert!(!both.success && both.stdout.is_empty(), "{}", both.stderr);

    let listed = run_example(&db, &["keys", "list"]).await;
    assert!(listed.success, "{}", listed.stderr);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", listed.stdout);
    for column in [
        "ID",
        "OWNER",
        "NAME",
        "PREFIX",
        "SCOPES",
        "CREATED",
        "LAST USED",
        "STATUS",
    ] {
        assert!(lines[0].contains(column), "{}", lines[0]);
    }
    assert!(
        lines[1].contains("deploy") && lines[1].contains("mcp projects:read"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("acme") && lines[1].ends_with("active"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("laptop") && lines[2].contains("2099-01-31 00:00:00Z"),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains("default") && lines[2].contains(" * "),
        "{}",
        lines[2]
    );
    let acme = run_example(&db, &["keys", "list", "--owner", "acme"]).await;
    assert_eq!(acme.stdout.lines().count(), 2, "{}", acme.stdout);

    let rolled = run_example(&db, &["keys", "roll", &deploy_key[..12], "--overlap", "1h"]).await;
    let new_key = rolled.key();
    assert_ne!(new_key, deploy_key);
    let store = SqliteStore::connect(&db).await.unwrap();
    let keys = ApiKeys::builder(store).build().unwrap();
    let old = keys
        .store()
        .list(&ListKeys::new().display_prefix(&deploy_key[..12]).limit(2))
        .await
        .unwrap()
        .records;
    let new = keys
        .store()
        .list(&ListKeys::new().display_prefix(&new_key[..12]).limit(2))
        .await
        .unwrap()
        .records;
    let (old, new) = (&old[0], &new[0]);
    let until = old.expires_at.unwrap() - chrono::Utc::now();
    assert!(
        until > chrono::Duration::minutes(58) && until <= chrono::Duration::hours(1),
        "{until}"
    );
    assert_eq!(new.name, "deploy");
    assert_eq!(new.scopes, Scopes::only(["mcp", "projects:read"]));

    let id = old.id.to_string();
    let revoked = run_example(
        &db,
        &["keys", "revoke", &id, "--reason", "leaked in CI logs"],
    )
    .await;
    assert!(revoked.success, "{}", revoked.stderr);
    assert!(revoked.stdout.is_empty());
    let listed = run_example(&db, &["keys", "list", "--owner", "acme"]).await;
    assert!(
        listed.stdout.contains("revoked: leaked in CI logs"),
        "{}",
        listed.stdout
    );

    let ambiguous = run_example(&db, &["keys", "revoke", "bmc_"]).await;
    assert!(!ambiguous.success);
    assert!(
        ambiguous.stderr.contains("matches several keys"),
        "{}",
        ambiguous.stderr
    );
    let unknown = run_example(&db, &["keys", "revoke", "bmc_nope"]).await;
    assert!(!unknown.success);
    assert!(
        unknown.stderr.contains("no key has the id or prefix"),
        "{}",
        unknown.stderr
    );
    let roll_revoked = run_example(&db, &["keys", "roll", &id]).await;
    assert!(!roll_revoked.success);
    assert!(
        roll_revoked.stderr.contains("revoked"),
        "{}",
        roll_revoked.stderr
    );
    keys.shutdown().await;
}

/// `--db postgres://...` works for the `keys` commands (in a schema of the
/// test's own, through the URL's `search_path`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_commands_work_on_postgres() {
    PgSchema::run(|schema| async move {
        drop(schema.store().await); // creates the schema and its tables
        let separator = if schema.url.contains('?') { '&' } else { '?' };
        let db = format!(
            "{}{separator}options=-c%20search_path%3D{}",
            schema.url, schema.name
        );
        let created = run_example(&db, &["keys", "create", "pg-key", "--owner", "acme"]).await;
        created.key();
        let listed = run_example(&db, &["keys", "list", "--owner", "acme"]).await;
        assert!(listed.success, "{}", listed.stderr);
        assert!(listed.stdout.contains("pg-key"), "{}", listed.stdout);
        let revoked = run_example(&db, &["keys", "revoke", &created.key()[..12]]).await;
        assert!(revoked.success, "{}", revoked.stderr);
    })
    .await;
}

/// `keys create` refuses an owner that would forge rows of `keys list`
/// (the library does), and `keys list` prints the control and bidirectional
/// characters of rows written before that check escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_commands_neither_take_nor_print_text_that_forges_rows() {
    let dir = TempDir::new();
    let path = dir.path().join("api-keys.db");
    let db = format!("sqlite:{}", path.display());
    let forged = "evil\u{1b}[2J\nFAKE-ROW";
    let refused = run_example(&db, &["keys", "create", "laptop", "--owner", forged]).await;
    assert!(!refused.success, "{refused:?}");
    assert!(refused.stderr.contains("owner"), "{}", refused.stderr);
    assert!(
        refused.stdout.is_empty(),
        "no key was printed: {:?}",
        refused.stdout
    );

    // A row from before the check: written behind the library's back.
    let created = run_example(&db, &["keys", "create", "old", "--owner", "acme"]).await;
    assert!(created.success, "{created:?}");
    let store = SqliteStore::connect(&db).await.unwrap();
    sqlx::query("UPDATE api_keys SET owner = ?1, name = ?2")
        .bind(forged)
        .bind("invoice\u{202E}fdp.exe")
        .execute(store.pool())
        .await
        .unwrap();
    let listed = run_example(&db, &["keys", "list"]).await;
    assert!(listed.success, "{listed:?}");
    assert!(!listed.stdout.contains('\u{1b}'), "{:?}", listed.stdout);
    assert!(!listed.stdout.contains('\u{202E}'), "{:?}", listed.stdout);
    assert!(!listed.stdout.contains("\nFAKE-ROW"), "{:?}", listed.stdout);
    assert!(listed.stdout.contains("\\u{1b}"), "{:?}", listed.stdout);
    assert!(listed.stdout.contains("\\u{202e}"), "{:?}", listed.stdout);
}

/// One counter's value in a Prometheus text scrape.
fn scraped(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// `--metrics-listen` serves the library's figures in Prometheus text on a
/// listener of its own (the API's address does not serve them, and without
/// the flag nothing listens); `--audit-log` gets one JSON line per key
/// event from the server and from `keys` commands, and never a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener_and_key_events_in_the_audit_log() {
    let dir = TempDir::new();
    let db = format!("sqlite:{}", dir.path().join("api-keys.db").display());
    let audit = dir.path().join("audit.jsonl");
    let audit_arg = audit.to_str().unwrap();
    let mut server = ServerProcess::start_with(
        &db,
        &["--metrics-listen", "127.0.0.1:0", "--audit-log", audit_arg],
    )
    .await;
    let bootstrap = server.bootstrap_key().await;
    let metrics_url = server
        .stderr_line("  metrics        ", Duration::from_secs(5))
        .await
        .expect("the metrics address in the banner");
    let http = http();
    let url = server.url.clone();
    for _ in 0..3 {
        assert_eq!(status_of(&http, &url, &bootstrap).await, StatusCode::OK);
    }
    let unknown = "bmc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        status_of(&http, &url, unknown).await,
        StatusCode::UNAUTHORIZED
    );

    let scrape = http.get(&metrics_url).send().await.unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    let text = scrape.text().await.unwrap();
    assert_eq!(
        scraped(
            &text,
            r#"tower_api_keys_decisions_total{outcome="admitted"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        scraped(
            &text,
            r#"tower_api_keys_decisions_total{outcome="unknown_key"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        scraped(&text, "tower_api_keys_store_lookups_total"),
        Some(2.0),
        "{text}"
    );
    assert!(
        text.contains("tower_api_keys_store_lookup_seconds"),
        "{text}"
    );
    assert!(!text.contains(&bootstrap) && !text.contains(&bootstrap[..12]));
    // Not on the API's address.
    let public = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);

    // A key created and revoked by other processes sharing the log.
    let created = run_example(&db, &["keys", "create", "ci", "--audit-log", audit_arg]).await;
    let ci = created.key();
    let revoked = run_example(
        &db,
        &[
            "keys",
            "revoke",
            &ci[..12],
            "--reason",
            "rotated",
            "--audit-log",
            audit_arg,
        ],
    )
    .await;
    assert!(revoked.success, "{}", revoked.stderr);
    server.terminate().await;

    let log = std::fs::read_to_string(&audit).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    // The first use is announced when the server writes last-used times,
    // which may be after the other processes' events.
    let of = |name: &str, prefix: &str| {
        events
            .iter()
            .filter(|e| e["event"] == name && e["key_prefix"] == prefix)
            .count()
    };
    assert_eq!(events.len(), 4, "{log}");
    assert_eq!(of("created", &bootstrap[..12]), 1, "{log}");
    assert_eq!(of("first_use", &bootstrap[..12]), 1, "{log}");
    assert_eq!(of("created", &ci[..12]), 1, "{log}");
    assert_eq!(of("revoked", &ci[..12]), 1, "{log}");
    assert!(log.contains(r#""reason":"rotated""#), "{log}");
    for secret in [&bootstrap, &ci] {
        assert!(!log.contains(secret.as_str()), "a secret in the audit log");
    }

    // Without the flag, no metrics listener is announced.
    let mut quiet = ServerProcess::start(&db).await;
    // Served after the whole banner was written: a second is ample to read it.
    assert_eq!(
        status_of(&http, &quiet.url, &bootstrap).await,
        StatusCode::OK
    );
    assert!(
        quiet
            .stderr_line("  origins", Duration::from_secs(5))
            .await
            .is_some()
    );
    assert_eq!(
        quiet.stderr_line("  metrics", Duration::from_secs(1)).await,
        None
    );
    quiet.terminate().await;
}

/// `keys list --expiring-within 7d`: only the active keys that expire in
/// the next seven days, soonest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_list_expiring_within_shows_the_keys_about_to_expire() {
    let dir = TempDir::new();
    let db = format!("sqlite:{}", dir.path().join("api-keys.db").display());
    for (name, expiry) in [
        ("in-six-days", Some("6d")),
        ("tomorrow", Some("1d")),
        ("next-month", Some("30d")),
        ("never", None),
        ("revoked-soon", Some("2d")),
    ] {
        let mut args = vec!["keys", "create", name];
        if let Some(expiry) = expiry {
            args.extend(["--expires-in", expiry]);
        }
        run_example(&db, &args).await.key();
    }
    let revoked = run_example(&db, &["keys", "list"]).await;
    let revoked_id = revoked
        .stdout
        .lines()
        .find(|line| line.contains("revoked-soon"))
        .and_then(|line| line.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(
        run_example(&db, &["keys", "revoke", &revoked_id])
            .await
            .success
    );

    let listed = run_example(&db, &["keys", "list", "--expiring-within", "7d"]).await;
    assert!(listed.success, "{}", listed.stderr);
    let names: Vec<&str> = listed
        .stdout
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(names, ["tomorrow", "in-six-days"], "{}", listed.stdout);
    let none = run_example(&db, &["keys", "list", "--expiring-within", "12h"]).await;
    assert!(none.success);
    assert_eq!(none.stdout, "");
    assert!(none.stderr.contains("no keys"), "{}", none.stderr);
}

/// `keys --server`, as separate processes against a running server: the
/// managing key from `MCP_PROXY_KEY` (never an argument), every command
/// with `--json`, a revoked key refused by the server at once, and clear
/// errors without the key or with a key that may not manage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_commands_work_through_a_running_server() {
    let dir = TempDir::new();
    let db = format!("sqlite:{}", dir.path().join("api-keys.db").display());
    let mut server = ServerProcess::start(&db).await;
    let bootstrap = server.bootstrap_key().await;
    let remote = |args: &[&str], key: Option<&str>| {
        let mut command = tokio::process::Command::new(BINARY);
        command
            .arg("keys")
            .args(args)
            .args(["--server", &server.url])
            .env("NO_COLOR", "1")
            .env_remove("MCP_PROXY_KEY")
            // A proxy that is not there: the key must not go through it.
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("http_proxy", "http://127.0.0.1:9")
            .env("ALL_PROXY", "http://127.0.0.1:9")
            .kill_on_drop(true);
        if let Some(key) = key {
            command.env("MCP_PROXY_KEY", key);
        }
        async move {
            let output = tokio::time::timeout(Duration::from_secs(30), command.output())
                .await
                .expect("the example finished")
                .unwrap();
            (
                output.status.success(),
                String::from_utf8(output.stdout).unwrap(),
                String::from_utf8(output.stderr).unwrap(),
            )
        }
    };
    let parse = |stdout: &str| -> serde_json::Value { serde_json::from_str(stdout).unwrap() };

    let (ok, stdout, stderr) = remote(
        &[
            "create",
            "work-laptop",
            "--scope",
            "mcp",
            "--expires-in",
            "30d",
            "--json",
        ],
        Some(&bootstrap),
    )
    .await;
    assert!(ok, "{stderr}");
    let created = parse(&stdout);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["key"]["scopes"], serde_json::json!(["mcp"]));
    let http = http();
    assert_eq!(status_of(&http, &server.url, &secret).await, StatusCode::OK);

    // Without --json: the secret alone on stdout, never on stderr.
    let (ok, stdout, stderr) = remote(&["create", "ci"], Some(&bootstrap)).await;
    assert!(ok, "{stderr}");
    let ci = stdout.trim_end().to_owned();
    assert!(ci.starts_with("bmc_") && !ci.contains('\n'));
    assert!(!stderr.contains(&ci) && !stderr.contains(&bootstrap));

    let (ok, stdout, _) = remote(&["list", "--json"], Some(&bootstrap)).await;
    assert!(ok);
    let names: Vec<String> = parse(&stdout)
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["bootstrap", "work-laptop", "ci"], "oldest first");
    let (ok, table, _) = remote(&["list"], Some(&bootstrap)).await;
    assert!(ok && table.contains("work-laptop") && table.contains("STATUS"));
    assert!(!table.contains(&secret));

    let prefix = &created["key"]["display_prefix"].as_str().unwrap()[..10];
    let (ok, stdout, stderr) = remote(
        &["rename", prefix, "Work Laptop", "--json"],
        Some(&bootstrap),
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(parse(&stdout)["name"], "Work Laptop");

    let (ok, stdout, stderr) = remote(
        &["roll", &id, "--overlap", "0s", "--json"],
        Some(&bootstrap),
    )
    .await;
    assert!(ok, "{stderr}");
    let rolled = parse(&stdout);
    let rolled_secret = rolled["secret"].as_str().unwrap().to_owned();
    assert_eq!(rolled["key"]["name"], "Work Laptop");
    assert_eq!(
        status_of(&http, &server.url, &secret).await,
        StatusCode::UNAUTHORIZED
    );

    let rolled_id = rolled["key"]["id"].as_str().unwrap();
    let (ok, stdout, stderr) = remote(&["revoke", rolled_id, "--json"], Some(&bootstrap)).await;
    assert!(ok, "{stderr}");
    assert_eq!(parse(&stdout)["status"], "revoked");
    assert_eq!(
        status_of(&http, &server.url, &rolled_secret).await,
        StatusCode::UNAUTHORIZED,
        "refused at once by the server that revoked it"
    );

    // Refusals say what is wrong, and never echo a key.
    let (ok, _, stderr) = remote(&["list"], None).await;
    assert!(!ok && stderr.contains("MCP_PROXY_KEY"), "{stderr}");
    let (ok, _, stderr) = remote(&["list"], Some(&rolled_secret)).await;
    assert!(!ok && stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains(&rolled_secret));
    let (ok, stdout, _) = remote(
        &["create", "mcp-only", "--scope", "mcp", "--json"],
        Some(&bootstrap),
    )
    .await;
    assert!(ok);
    let weak = parse(&stdout)["secret"].as_str().unwrap().to_owned();
    let (ok, _, stderr) = remote(&["list"], Some(&weak)).await;
    assert!(!ok && stderr.contains("keys:manage"), "{stderr}");
    let (ok, _, stderr) = remote(
        &["create", "x", "--owner", "someone-else"],
        Some(&bootstrap),
    )
    .await;
    assert!(!ok && stderr.contains("owner"), "{stderr}");
    server.terminate().await;
}

/// `keys --server` against a hostile server: terminal escapes posing as a
/// secret, a cursor that never ends, an endless answer. Each is refused
/// with an error, and nothing raw reaches the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_client_refuses_what_a_hostile_server_sends() {
    use axum::routing::get;
    let record = serde_json::json!({
        "id": "01a23414-45ea-71a6-bff6-f28a16e8d94b", "name": "x\u{1b}]0;TITLE\u{7}\u{9b}2J\u{202e}",
        "display_prefix": "bmc_AAAAAAAA", "created_at": "2026-12-01T00:00:00Z", "expires_at": null,
        "last_used_at": null, "revoked_at": null, "status": "active", "scopes": null
    });
    let created =
        serde_json::json!({"key": record.clone(), "secret": "bmc_x\u{1b}[2J\r\nINJECTED"});
    let page = serde_json::json!({"keys": [record], "next_cursor": "0".repeat(32)});
    let app = axum::Router::new()
        .route(
            "/api/v2/keys",
            get(move || async move { axum::Json(page) })
                .post(move || async move { (http::StatusCode::CREATED, axum::Json(created)) }),
        )
        .route("/api/v2/keys/{id}", get(|| async { "x".repeat(3 << 20) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let run = |args: Vec<&'static str>| {
        let url = url.clone();
        async move {
            let output = tokio::process::Command::new(BINARY)
                .arg("keys")
                .args(&args)
                .args(["--server", &url])
                .env("MCP_PROXY_KEY", "bmc_managing")
                .kill_on_drop(true)
                .output()
                .await
                .unwrap();
            let stdout = String::from_utf8(output.stdout).unwrap();
            let stderr = String::from_utf8(output.stderr).unwrap();
            for text in [&stdout, &stderr] {
                assert!(
                    !text.contains(['\u{1b}', '\u{9b}', '\u{202e}', '\u{7}']),
                    "raw control text from the server reached the terminal: {text:?}"
                );
            }
            (output.status.success(), stdout, stderr)
        }
    };
    let (ok, stdout, stderr) = run(vec!["create", "x"]).await;
    assert!(
        !ok && stdout.is_empty() && stderr.contains("holds no key"),
        "{stderr}"
    );
    let (ok, _, stderr) = tokio::time::timeout(Duration::from_secs(20), run(vec!["list"]))
        .await
        .expect("the client stops paging");
    assert!(!ok && stderr.contains("same page twice"), "{stderr}");
    let (ok, _, stderr) = run(vec!["revoke", "01a23414-45ea-71a6-bff6-f28a16e8d94b"]).await;
    assert!(!ok && stderr.contains("larger than"), "{stderr}");
}
