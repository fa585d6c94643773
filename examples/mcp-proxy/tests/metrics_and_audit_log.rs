//! The binary's figures and its key events, with the server and the
//! `keys` commands run as separate processes: `--metrics-listen` serves
//! Prometheus text on a listener of its own, `--audit-log` gets a JSON line
//! per key event and never a secret.

mod common;

use std::time::Duration;

use common::process::{ServerProcess, run_example, status_of};
use common::{TempDir, http};
use http::StatusCode;

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

/// The audit log names every key's owner, id and prefix and the reasons
/// of revocations: like the key store's file, it is made readable and
/// writable by its owner alone (whatever the umask), and an existing one
/// that other users can read or write is used and warned about.
#[cfg(unix)]
#[tokio::test]
async fn the_audit_log_is_made_for_its_owner_alone_and_a_looser_one_is_warned_about() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new();
    let db = format!("sqlite:{}", dir.path().join("api-keys.db").display());
    let audit = dir.path().join("audit.jsonl");
    let audit_arg = audit.to_str().unwrap();
    let run = run_example(&db, &["keys", "create", "ci", "--audit-log", audit_arg]).await;
    assert!(run.success, "{}", run.stderr);
    let mode = std::fs::metadata(&audit).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    assert!(!run.stderr.contains("audit log"), "{}", run.stderr);

    let loose = dir.path().join("shared.jsonl");
    std::fs::write(&loose, "").unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o664)).unwrap();
    let loose_arg = loose.to_str().unwrap();
    let run = run_example(&db, &["keys", "create", "cd", "--audit-log", loose_arg]).await;
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stderr.contains("shared.jsonl") && run.stderr.contains("chmod 600"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&loose).unwrap().lines().count(), 1);
}

/// Every text form a key's SHA-256 takes: hex either case, base64 both
/// alphabets, padded or not.
fn hash_forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        hex.to_uppercase(),
        hex,
        STANDARD.encode(digest),
        URL_SAFE_NO_PAD.encode(digest),
    ]
}

/// With a distinctive owner and key name, every path that counts or
/// writes (admitted, refused for its rate limit, unknown, in a URL and
/// revoked for it, reported by GitHub and revoked), the library and the
/// proxy logging at trace level: no metric label names the owner, the
/// key's name or prefix, and no log line, scrape or audit line holds a
/// secret or any form of its hash. The owner is in the audit log and the
/// key events' log lines by design, so that they say whose key it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_label_or_line_holds_a_secret_or_a_hash_and_no_label_an_owner() {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;
    const OWNER: &str = "owner-Zq7xVb3Lw";
    const NAME: &str = "name-Kp2wQ9Tr";
    let dir = TempDir::new();
    let db = format!("sqlite:{}", dir.path().join("api-keys.db").display());
    let audit = dir.path().join("audit.jsonl");
    let audit_arg = audit.to_str().unwrap();
    let github = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let pem = github
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let keys_file = dir.path().join("github-keys.json");
    std::fs::write(
        &keys_file,
        serde_json::json!({"public_keys": [{"key_identifier": "k1", "key": pem}]}).to_string(),
    )
    .unwrap();
    let mut secrets = Vec::new();
    for _ in 0..3 {
        let created = run_example(
            &db,
            &[
                "keys",
                "create",
                NAME,
                "--owner",
                OWNER,
                "--rate-limit",
                "3/m",
                "--audit-log",
                audit_arg,
            ],
        )
        .await;
        secrets.push(created.key());
    }
    let mut server = ServerProcess::start_logging(
        &db,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--audit-log",
            audit_arg,
            "--revoke-exposed-keys",
            "--owner-rate-limit",
            "100/m",
            "--secret-scanning-keys",
            keys_file.to_str().unwrap(),
        ],
        "trace,hyper=info,hyper_util=info,h2=info,reqwest=info,sqlx=info,rmcp=info",
    )
    .await;
    let metrics_url = server
        .stderr_line("  metrics        ", Duration::from_secs(5))
        .await
        .unwrap();
    let http = http();
    let url = server.url.clone();
    let statuses: Vec<StatusCode> = {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(status_of(&http, &url, &secrets[0]).await);
        }
        statuses
    };
    assert_eq!(statuses[..3], [StatusCode::OK; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
    let unknown = "bmc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        status_of(&http, &url, unknown).await,
        StatusCode::UNAUTHORIZED
    );
    let in_url = http
        .get(format!("{url}/api/v2/projects?api_key={}", secrets[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(in_url.status(), StatusCode::BAD_REQUEST);
    let body = serde_json::json!([{"token": secrets[2], "type": "t", "url": "https://github.com/a/b", "source": "content"}])
        .to_string();
    let signature: p256::ecdsa::Signature = github.sign(body.as_bytes());
    let report = http
        .post(format!("{url}/github/secret-scanning"))
        .header("Github-Public-Key-Identifier", "k1")
        .header(
            "Github-Public-Key-Signature",
            base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), StatusCode::OK);
    for secret in &secrets[1..3] {
        assert_eq!(
            status_of(&http, &url, secret).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let scrape = http
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scraped(
            &scrape,
            r#"tower_api_keys_decisions_total{outcome="rate_limited"}"#
        )
        .is_some(),
        "{scrape}"
    );
    server.terminate().await;
    let log = server.stderr();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "not logging at trace: {log}"
    );
    let audit_log = std::fs::read_to_string(&audit).unwrap();
    assert!(
        audit_log.contains("reported_leaked") && audit_log.contains("exposed_in_url"),
        "{audit_log}"
    );

    for (what, text) in [
        ("the scrape", &scrape),
        ("the log", &log),
        ("the audit log", &audit_log),
    ] {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret in {what}");
            assert!(!text.contains(&secret[4..]), "a secret's body in {what}");
            for form in hash_forms(secret) {
                assert!(!text.contains(&form), "a hash in {what}: {form}");
            }
        }
    }
    // Whose keys they were, where that is the point.
    assert!(log.contains(OWNER) && audit_log.contains(OWNER));
    for label in [OWNER, NAME, &secrets[0][..12]] {
        assert!(!scrape.contains(label), "{label} in the scrape");
    }
}
