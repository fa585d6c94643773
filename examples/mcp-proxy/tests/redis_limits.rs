//! Two `mcp-proxy serve` processes on one key store and one Redis enforce
//! one allowance: a key's own limit, and an owner's limit shared by its
//! keys, driven concurrently far past them through both processes.

mod common;

use common::process::{ServerProcess, run_example};
use common::{TempDir, http};
use futures_util::future::join_all;
use test_support::redis::redis_url;
use test_support::unique;

/// `mcp-proxy keys create <args>`; the key printed on stdout.
async fn create(db: &str, args: &[&str]) -> String {
    let mut command = vec!["keys", "create"];
    command.extend_from_slice(args);
    run_example(db, &command).await.key()
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
    let a = ServerProcess::start_with(&db, &args).await;
    let b = ServerProcess::start_with(&db, &args).await;
    let servers = [a.url.clone(), b.url.clone()];

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
