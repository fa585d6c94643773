//! Two `mcp-proxy serve` processes on one key store and one Redis enforce
//! one allowance: a key's own limit, and an owner's limit shared by its
//! keys, driven concurrently far past them through both processes.

mod common;

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use common::{TempDir, http};
use futures_util::future::join_all;
use test_support::unique;
use tokio::io::{AsyncBufReadExt as _, BufReader};

const BINARY: &str = env!("CARGO_BIN_EXE_mcp-proxy");

fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "\n==================================================================\n\
                 SKIPPED: TEST_REDIS_URL is not set; the Redis test of two mcp-proxy\n\
                 processes did not run (run it with TEST_REDIS_URL=redis://127.0.0.1:6379)\n\
                 ==================================================================\n"
            );
            None
        }
    }
}

/// `mcp-proxy keys create`; the key printed on stdout.
async fn create(db: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(BINARY)
        .args(["keys", "create"])
        .args(args)
        .args(["--db", db])
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `mcp-proxy serve` as a child process; its base URL.
async fn serve(db: &str, args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        let mut seen = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("mcp_proxy listening on ") {
                return url.to_owned();
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        panic!("the server exited: {seen}");
    })
    .await
    .expect("the server started");
    // Keep reading, so that the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

/// `rounds` requests per key spread over `servers`, all at once: the number
/// admitted and the policies named by the 429s.
async fn flood(servers: &[String], keys: &[String], rounds: usize) -> (usize, Vec<String>) {
    let http = http();
    let mut requests = Vec::new();
    for round in 0..rounds {
        for (i, key) in keys.iter().enumerate() {
            let url = format!("{}/api/v2/projects", servers[(round + i) % servers.len()]);
            let http = http.clone();
            requests.push(async move {
                let r = http.get(url).bearer_auth(key).send().await.unwrap();
                let policy = r
                    .headers()
                    .get("ratelimit-policy")
                    .map(|v| v.to_str().unwrap().to_owned());
                (r.status().as_u16(), policy)
            });
        }
    }
    let results = join_all(requests).await;
    let admitted = results.iter().filter(|(s, _)| *s == 200).count();
    let mut policies = Vec::new();
    for (status, policy) in results {
        match status {
            200 => {}
            429 => policies.push(policy.expect("a 429 names its policy")),
            other => panic!("only 200 and 429 expected, got {other}"),
        }
    }
    (admitted, policies)
}

#[tokio::test]
async fn two_processes_share_a_keys_and_an_owners_allowance_through_redis() {
    let Some(redis) = redis_url() else { return };
    let dir = TempDir::new();
    let db = format!("sqlite:{}", dir.path().join("keys.db").display());
    // Owners of this run alone, so that earlier runs' counts cannot matter.
    let (solo, team) = (unique("solo"), unique("team"));
    let limited = create(&db, &["limited", "--owner", &solo, "--rate-limit", "10/h"]).await;
    let one = create(&db, &["one", "--owner", &team]).await;
    let two = create(&db, &["two", "--owner", &team]).await;
    let args = ["--redis", redis.as_str(), "--owner-rate-limit", "15/h"];
    let (_a, a) = serve(&db, &args).await;
    let (_b, b) = serve(&db, &args).await;
    let servers = [a, b];

    // Each process alone would admit 10; together they admit 10 to 12.
    let (admitted, policies) = flood(&servers, &[limited], 60).await;
    assert!((10..=12).contains(&admitted), "admitted {admitted} of 10");
    assert!(
        policies.iter().all(|p| p == "\"key\";q=10;w=3600"),
        "{policies:?}"
    );

    // Two keys of one owner, 15 an hour between them.
    let (admitted, policies) = flood(&servers, &[one, two], 45).await;
    assert!((15..=17).contains(&admitted), "admitted {admitted} of 15");
    assert!(
        policies.iter().all(|p| p == "\"owner\";q=15;w=3600"),
        "{policies:?}"
    );
}
