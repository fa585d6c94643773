//! `mcp-proxy keys --server <url>`: the `keys` commands through a running
//! server's management API instead of on its store, as separate processes;
//! and the client's refusals of what a hostile server sends.

mod common;

use std::time::Duration;

use common::process::{BINARY, ServerProcess, status_of};
use common::{TempDir, http};
use http::StatusCode;

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
    let url = format!("http://{}", test_support::serve(app).await);
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

/// Plain HTTP to an address that is not a loopback one (here `0.0.0.0`,
/// which reaches this machine's listener all the same) is refused before
/// the managing key is sent: it would cross a network in cleartext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_client_sends_no_key_over_plain_http_to_another_host() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&seen);
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { "{}" }
    });
    let addr = test_support::serve(app).await;
    let output = tokio::process::Command::new(BINARY)
        .args([
            "keys",
            "list",
            "--server",
            &format!("http://0.0.0.0:{}", addr.port()),
        ])
        .env("MCP_PROXY_KEY", "bmc_managing")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the key was sent: {stderr}"
    );
    assert!(
        !output.status.success() && stderr.contains("SSH tunnel"),
        "{stderr}"
    );
}
