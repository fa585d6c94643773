//! The binary itself, run as separate processes: `serve` on an empty store
//! prints a bootstrap key; `keys create|list|roll|revoke`, run against the
//! store a running server uses (SQLite, and PostgreSQL), take effect on it
//! within a second; SIGTERM stops it promptly. (`--metrics-listen` and
//! `--audit-log` are in metrics_and_audit_log.rs, `keys --server` in
//! keys_server.rs.)

mod common;

use std::time::Duration;

use common::process::{ServerProcess, run_example, status_of, wait_for};
use common::{PgSchema, SchemaStore as _, TempDir, connect, http, whoami};
use http::StatusCode;
use tower_api_keys::ApiKeys;
use tower_api_keys::record::Scopes;
use tower_api_keys::store::{ListKeys, SqliteStore, sqlx};

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
    let bootstrap = server.bootstrap_key().await;
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
