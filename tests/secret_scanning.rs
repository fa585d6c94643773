//! GitHub's secret-scanning endpoint over real HTTP: a P-256 key pair made
//! here, a local server publishing its public key in GitHub's JSON shape,
//! reports signed the way GitHub signs them. A valid report revokes the key
//! (and the layer then refuses it); hostile requests change nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{Router, routing::get};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use serde_json::{Value, json};
use tower_api_keys::event::{Actor, KeyEvent, KeyEventKind, SystemCause};
use tower_api_keys::record::KeyRecord;
use tower_api_keys::secret_scanning::{PublicKeySource, REVOKED_REASON, SecretScanning};
use tower_api_keys::{ApiKeys, MemoryStore, NewKey};

const KEY_ID: &str = "bd5ba2b7f8a1c5e20b4f5e2c3f7f3d3e1e0f0c9b8a7d6c5b4a3f2e1d0c9b8a7a";

fn signing_key() -> SigningKey {
    SigningKey::random(&mut rand_core::OsRng)
}

fn pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap()
}

/// GitHub's document of public keys.
fn document(keys: &[(&str, &SigningKey)]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(id, key)| json!({"key_identifier": id, "key": pem(key), "is_current": true }))
        .collect();
    json!({"public_keys": keys }).to_string()
}

/// base64 of the DER signature over SHA-256 of `body`, as GitHub sends it.
fn sign(key: &SigningKey, body: &[u8]) -> String {
    let signature: Signature = key.sign(body);
    STANDARD.encode(signature.to_der().as_bytes())
}

/// The application: `/` behind the layer, the endpoint beside it, and a
/// server publishing the public keys (counting its fetches).
struct Setup {
    keys: ApiKeys,
    app: String,
    github: SigningKey,
    fetches: Arc<AtomicUsize>,
    events: Arc<Mutex<Vec<KeyEvent>>>,
    key: String,
    record: KeyRecord,
}

async fn setup() -> Setup {
    let github = signing_key();
    let published = document(&[(KEY_ID, &github)]);
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let meta = Router::new().route(
        "/meta/public_keys/secret_scanning",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let published = published.clone();
            async move { ([("content-type", "application/json")], published) }
        }),
    );
    let meta_url = format!(
        "http://{}/meta/public_keys/secret_scanning",
        test_support::serve(meta).await
    );
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let keys = ApiKeys::builder(MemoryStore::new())
        .on_key_event(move |event| sink.lock().unwrap().push(event.clone()))
        .build()
        .unwrap();
    let created = keys.create(NewKey::new("acct_1", "ci")).await.unwrap();
    let scanning =
        SecretScanning::new(keys.clone(), PublicKeySource::parse(&meta_url)).max_body_len(4096);
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(keys.layer())
        .route("/github/secret-scanning", scanning.handler());
    let app = format!("http://{}", test_support::serve(app).await);
    Setup {
        keys,
        app,
        github,
        fetches,
        events,
        key: created.secret.expose_secret().to_owned(),
        record: created.record,
    }
}

impl Setup {
    /// POSTs `body` with the given headers; the status and the body.
    async fn post(
        &self,
        body: &[u8],
        key_id: Option<&str>,
        signature: Option<&str>,
    ) -> (u16, String) {
        let mut request = test_support::client()
            .post(format!("{}/github/secret-scanning", self.app))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(id) = key_id {
            request = request.header("Github-Public-Key-Identifier", id);
        }
        if let Some(signature) = signature {
            request = request.header("Github-Public-Key-Signature", signature);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// POSTs `body` signed by GitHub's key.
    async fn report(&self, body: &[u8]) -> (u16, String) {
        self.post(body, Some(KEY_ID), Some(&sign(&self.github, body)))
            .await
    }

    async fn status_with_key(&self) -> u16 {
        test_support::client()
            .get(format!("{}/", self.app))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn stored(&self) -> KeyRecord {
        self.keys
            .store()
            .find_by_id(&self.record.id)
            .await
            .unwrap()
            .unwrap()
    }

    fn event_names(&self) -> Vec<&'static str> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.kind.name())
            .collect()
    }

    /// Nothing happened to the key: it works, is not revoked, and no event
    /// besides its creation was emitted.
    async fn assert_untouched(&self, what: &str) {
        assert_eq!(self.status_with_key().await, 200, "{what}");
        assert!(self.stored().await.revoked_at.is_none(), "{what}");
        assert_eq!(self.event_names(), ["created"], "{what}");
    }
}

fn report_of(token: &str) -> Vec<u8> {
    json!([{
        "token": token,
        "type": "bmc_api_key",
        "url": "https://github.com/octo/leaky/blob/main/.env",
        "source": "content"
    }])
    .to_string()
    .into_bytes()
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_valid_report_revokes_the_key_and_the_layer_then_refuses_it() {
    let s = setup().await;
    assert_eq!(s.status_with_key().await, 200);

    let body = report_of(&s.key);
    let (status, answer) = s.report(&body).await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer,
        json!([{"token_hash": sha256_hex(&s.key), "token_type": "bmc_api_key", "label": "true_positive" }])
    );
    assert!(
        !answer.to_string().contains(&s.key),
        "the raw token is sent back"
    );

    assert_eq!(s.status_with_key().await, 401);
    let stored = s.stored().await;
    assert!(stored.revoked_at.is_some());
    assert_eq!(
        stored.revoked_reason.as_deref(),
        Some(&*format!(
            "{REVOKED_REASON} at https://github.com/octo/leaky/blob/main/.env"
        ))
    );
    let kinds: Vec<KeyEventKind> = s
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(matches!(
        &kinds[1],
        KeyEventKind::Revoked {reason: Some(reason), actor: Actor::System(SystemCause::GithubSecretScanning) }
            if reason.starts_with(REVOKED_REASON)
    ));
    assert_eq!(
        kinds[2],
        KeyEventKind::ReportedLeaked {
            reporter: SystemCause::GithubSecretScanning,
            url: Some("https://github.com/octo/leaky/blob/main/.env".to_owned()),
            source: Some("content".to_owned()),
        }
    );

    // The same report again: the same answer, nothing more happens.
    let revoked_at = stored.revoked_at;
    let (status, again) = s.report(&body).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), answer);
    assert_eq!(s.stored().await.revoked_at, revoked_at);
    assert_eq!(s.event_names(), ["created", "revoked", "reported_leaked"]);
    // One fetch of the public keys served both reports.
    assert_eq!(s.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn hostile_requests_are_refused_and_change_nothing() {
    let s = setup().await;
    let body = report_of(&s.key);
    let good = sign(&s.github, &body);

    // Unsigned: no headers, or one of the two.
    assert_eq!(s.post(&body, None, None).await.0, 401);
    assert_eq!(s.post(&body, Some(KEY_ID), None).await.0, 401);
    assert_eq!(s.post(&body, None, Some(&good)).await.0, 401);
    // Signed by another key under GitHub's identifier.
    let forger = signing_key();
    assert_eq!(
        s.post(&body, Some(KEY_ID), Some(&sign(&forger, &body)))
            .await
            .0,
        401
    );
    // Not a signature at all.
    assert_eq!(
        s.post(&body, Some(KEY_ID), Some("bm90IGEgc2lnbmF0dXJl"))
            .await
            .0,
        401
    );
    assert_eq!(s.post(&body, Some(KEY_ID), Some("%%%")).await.0, 401);
    // An identifier GitHub never published.
    assert_eq!(s.post(&body, Some("unknown-id"), Some(&good)).await.0, 401);
    // The signed body replayed with one byte changed (the URL's, then the
    // token's).
    let mut changed = body.clone();
    let at = changed.len() - 20;
    changed[at] ^= 0x01;
    assert_eq!(s.post(&changed, Some(KEY_ID), Some(&good)).await.0, 401);
    let mut changed = body.clone();
    let at = 12;
    changed[at] ^= 0x01;
    assert_eq!(s.post(&changed, Some(KEY_ID), Some(&good)).await.0, 401);
    // Well signed but malformed: not JSON, not a list, a report without a
    // token.
    for malformed in [
        &b"not json"[..],
        br#"{"token": "x"}"#,
        br#"[{"type": "bmc_api_key"}]"#,
    ] {
        let (status, _) = s.report(malformed).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(malformed));
    }
    // Oversized, even when well signed.
    let mut big = report_of(&s.key);
    big.truncate(big.len() - 1);
    big.extend(std::iter::repeat_n(b' ', 5000));
    big.push(b']');
    assert_eq!(s.report(&big).await.0, 413);

    s.assert_untouched("after hostile requests").await;
}

#[tokio::test]
async fn unknown_and_malformed_tokens_are_false_positives() {
    let s = setup().await;
    let unknown = s.keys.format().generate().unwrap();
    let other_format = tower_api_keys::key::KeyFormat::new("ghp")
        .unwrap()
        .generate()
        .unwrap();
    let body = json!([
        {"token": unknown.expose_secret(), "type": "bmc_api_key", "url": "https://github.com/a/b", "source": "content" },
        {"token": other_format.expose_secret(), "type": "bmc_api_key", "url": "https://github.com/a/b", "source": "content" },
        {"token": "bmc_short", "type": "bmc_api_key" },
    ])
    .to_string();
    let (status, answer) = s.report(body.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    let answer: Vec<Value> = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer.len(), 3);
    for (verdict, token) in answer.iter().zip([
        unknown.expose_secret(),
        other_format.expose_secret(),
        "bmc_short",
    ]) {
        assert_eq!(verdict["label"], "false_positive");
        assert_eq!(verdict["token_hash"], sha256_hex(token));
    }
    s.assert_untouched("after unknown tokens").await;
}

#[tokio::test]
async fn an_unknown_identifier_fetches_the_keys_again_at_most_once_per_interval() {
    let s = setup().await;
    let body = report_of("bmc_unknown");
    let good = sign(&s.github, &body);
    assert_eq!(s.post(&body, Some("rotated-1"), Some(&good)).await.0, 401);
    assert_eq!(s.fetches.load(Ordering::SeqCst), 1);
    // Within the minute: refused from what is cached, without a fetch.
    assert_eq!(s.post(&body, Some("rotated-2"), Some(&good)).await.0, 401);
    assert_eq!(s.post(&body, Some(KEY_ID), Some(&good)).await.0, 200);
    assert_eq!(s.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn keys_from_a_file_verify_reports_and_a_rotated_key_is_picked_up() {
    let s = setup().await;
    let dir = std::env::temp_dir().join(format!("secret-scanning-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys.json");
    let old = signing_key();
    std::fs::write(&file, document(&[("old", &old)])).unwrap();
    let scanning = SecretScanning::new(
        s.keys.clone(),
        PublicKeySource::parse(file.to_str().unwrap()),
    )
    .min_refresh_interval(Duration::ZERO);
    let body = report_of(&s.key);
    assert_eq!(
        scanning
            .process("old", &sign(&s.github, &body), &body)
            .await
            .unwrap_err()
            .status(),
        401
    );
    // GitHub rotates: the new identifier is read from the file on first sight.
    std::fs::write(&file, document(&[("old", &old), ("new", &s.github)])).unwrap();
    let verdicts = scanning
        .process("new", &sign(&s.github, &body), &body)
        .await
        .unwrap();
    assert_eq!(verdicts.len(), 1);
    assert_eq!(s.status_with_key().await, 401);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A report of one token found at `url`.
fn report_at(token: &str, url: &str) -> Vec<u8> {
    json!([{"token": token, "type": "bmc_api_key", "url": url, "source": "content"}])
        .to_string()
        .into_bytes()
}

/// GitHub sends the URL where it found the key, and the revocation reason
/// names it; a reason is held to 200 visible characters. A URL past that
/// (a deep path at a commit), or one holding characters a reason refuses,
/// must still get the key revoked, not a 503 that a retry repeats for ever.
#[tokio::test]
async fn a_leak_found_at_a_long_or_unshowable_url_is_still_revoked() {
    let s = setup().await;
    let long = format!(
        "https://github.com/octo-org/a-repository-with-a-long-name/blob/{}/{}/.env",
        "0123456789abcdef0123456789abcdef01234567",
        "config/environments/production/services".repeat(3)
    );
    for url in [
        long,
        "https://github.com/octo/leaky/blob/main/\u{202E}vne.txt".to_owned(),
        format!(
            "https://github.com/octo/leaky/blob/main/a{}",
            "\u{0301}".repeat(6)
        ),
    ] {
        let created = s
            .keys
            .create(NewKey::new("acct_1", "leaked"))
            .await
            .unwrap();
        let key = created.secret.expose_secret();
        let (status, answer) = s.report(&report_at(key, &url)).await;
        assert_eq!(status, 200, "{url}: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer[0]["label"], "true_positive", "{url}");
        let stored = s
            .keys
            .store()
            .find_by_id(&created.record.id)
            .await
            .unwrap()
            .unwrap();
        assert!(stored.revoked_at.is_some(), "{url}: not revoked");
        let reason = stored.revoked_reason.unwrap();
        assert!(reason.starts_with(REVOKED_REASON), "{reason}");
        assert!(reason.chars().count() <= 200, "{reason}");
        assert!(!reason.contains('\u{202E}'), "{reason}");
    }
    // Nothing the events carry is shown other than it reads.
    let events = s.events.lock().unwrap();
    for event in events.iter() {
        if let KeyEventKind::ReportedLeaked { url: Some(url), .. } = &event.kind {
            assert!(!url.contains('\u{202E}'), "{url}");
        }
    }
}

/// Each token of a verified report costs a store lookup, and a signed
/// report can be replayed as often as anyone likes: the number of tokens
/// in one report is bounded (2,000 by default, more than the default body
/// limit holds of GitHub's real matches), past which the report is a 413
/// before any lookup.
#[tokio::test]
async fn a_report_of_more_tokens_than_the_cap_is_refused_before_any_lookup() {
    use tower_api_keys::test_util::{CountingStore, StoreMethod};
    let store = Arc::new(CountingStore::new(MemoryStore::new()));
    let keys = ApiKeys::builder(Arc::clone(&store)).build().unwrap();
    let github = signing_key();
    let scanning = SecretScanning::new(
        keys.clone(),
        PublicKeySource::Json(document(&[(KEY_ID, &github)])),
    );
    let app = Router::new().route("/github/secret-scanning", scanning.clone().handler());
    let url = format!(
        "http://{}/github/secret-scanning",
        test_support::serve(app).await
    );
    let post = |tokens: usize| {
        let body = serde_json::to_vec(&vec![json!({"token": "x", "type": "t"}); tokens]).unwrap();
        let signature = sign(&github, &body);
        let url = url.clone();
        async move {
            let response = test_support::client()
                .post(url)
                .header("Github-Public-Key-Identifier", KEY_ID)
                .header("Github-Public-Key-Signature", signature)
                .body(body)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, answer) = post(2_001).await;
    assert_eq!(status, 413, "{}", &answer[..answer.len().min(200)]);
    assert!(answer.contains("2000"), "{answer}");
    assert_eq!(store.calls().get(StoreMethod::FindByHash), 0);
    let (status, answer) = post(2_000).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&answer).unwrap().len(),
        2_000
    );
    assert_eq!(store.calls().get(StoreMethod::FindByHash), 2_000);

    // The cap is the application's to set.
    let body = serde_json::to_vec(&vec![json!({"token": "x", "type": "t"}); 11]).unwrap();
    let error = scanning
        .max_tokens(10)
        .process(KEY_ID, &sign(&github, &body), &body)
        .await
        .unwrap_err();
    assert_eq!(error.status(), 413);
    assert_eq!(error.to_string(), "the report names more than 10 tokens");
}

/// Serves GitHub's document of `github`'s key, or a 500 while `down`;
/// counts the fetches.
async fn flaky_key_server(
    github: &SigningKey,
    down: Arc<std::sync::atomic::AtomicBool>,
) -> (String, Arc<AtomicUsize>) {
    let published = document(&[(KEY_ID, github)]);
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let meta = Router::new().route(
        "/keys",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let published = published.clone();
            let down = down.load(Ordering::SeqCst);
            async move {
                if down {
                    (http::StatusCode::INTERNAL_SERVER_ERROR, String::new())
                } else {
                    (http::StatusCode::OK, published)
                }
            }
        }),
    );
    let url = format!("http://{}/keys", test_support::serve(meta).await);
    (url, fetches)
}

/// While GitHub's keys cannot be read, a report is a 503 (try again), as
/// the first one is, and not a 401 "unknown key" (a forgery) for the rest
/// of the refetch interval; the keys are asked for again only after it.
#[tokio::test]
async fn a_report_while_the_keys_cannot_be_read_is_a_503_until_they_can() {
    let s = setup().await;
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (url, fetches) = flaky_key_server(&s.github, Arc::clone(&down)).await;
    let scanning = SecretScanning::new(s.keys.clone(), PublicKeySource::parse(&url))
        .min_refresh_interval(Duration::from_millis(500));
    let body = report_of(&s.key);
    let signature = sign(&s.github, &body);
    for _ in 0..3 {
        let error = scanning
            .process(KEY_ID, &signature, &body)
            .await
            .unwrap_err();
        assert_eq!(error.status(), 503, "{error}");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let verdicts = scanning.process(KEY_ID, &signature, &body).await.unwrap();
    assert_eq!(verdicts.len(), 1);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert_eq!(s.status_with_key().await, 401);
}

/// A key URL that answers an endless document: 128 MiB of JSON whitespace
/// in chunks, then a connection held open. Counts the bytes it could send.
async fn endless_key_server() -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut request = [0; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
                for _ in 0..2048 {
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    counted.fetch_add(64 * 1024, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    (format!("http://{addr}/keys"), sent)
}

/// The key document is read within its 256 KiB bound as it arrives, not
/// whole and then measured; and a redirect is not followed (the URL is the
/// one configured, as for the OAuth issuer's keys).
#[tokio::test]
async fn the_key_document_is_read_within_its_bound_and_no_redirect_is_followed() {
    let s = setup().await;
    let body = report_of(&s.key);
    let signature = sign(&s.github, &body);

    let (url, sent) = endless_key_server().await;
    let scanning = SecretScanning::new(s.keys.clone(), PublicKeySource::parse(&url));
    let started = std::time::Instant::now();
    let error = scanning
        .process(KEY_ID, &signature, &body)
        .await
        .unwrap_err();
    assert_eq!(error.status(), 503, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "read until the timeout: {:?}",
        started.elapsed()
    );
    // What the sockets' buffers hold besides, at most.
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent < 32 << 20, "{} MiB read", sent >> 20);

    // A redirect to a server publishing a key: not followed.
    let (target, asked) = flaky_key_server(&s.github, Arc::default()).await;
    let redirect = Router::new().route(
        "/keys",
        get(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    );
    let url = format!("http://{}/keys", test_support::serve(redirect).await);
    let scanning = SecretScanning::new(s.keys.clone(), PublicKeySource::parse(&url));
    let error = scanning
        .process(KEY_ID, &signature, &body)
        .await
        .unwrap_err();
    assert_eq!(error.status(), 503, "{error}");
    assert_eq!(asked.load(Ordering::SeqCst), 0, "the redirect was followed");
    s.assert_untouched("after unusable key documents").await;
}

/// The DER of `(r, s)`: SEQUENCE of two INTEGERs, minimal.
fn der_of(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let mut bytes: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
        if bytes.first().is_none_or(|&b| b & 0x80 != 0) {
            bytes.insert(0, 0);
        }
        let mut out = vec![0x02, u8::try_from(bytes.len()).unwrap()];
        out.extend(bytes);
        out
    }
    let mut content = integer(r);
    content.extend(integer(s));
    let mut out = vec![0x30, u8::try_from(content.len()).unwrap()];
    out.extend(content);
    out
}

/// What a signature binds, tried from every side: the other form of a
/// valid signature (`s` and `n - s`, both valid for ECDSA) is accepted, as
/// it must be (GitHub's signer does not normalize `s`), and is a replay of
/// the same report, which changes nothing; other encodings of the same
/// numbers, raw `r || s`, a signature by one published key under the
/// other's identifier, and identifiers that only look alike are refused;
/// an empty body is malformed once signed; a burst of made-up identifiers
/// costs one fetch.
#[tokio::test]
async fn malleated_signatures_and_confused_key_ids_gain_nothing() {
    let s = setup().await;
    let body = report_of(&s.key);
    let signature: Signature = s.github.sign(&body);
    let (r, low_or_high) = signature.split_bytes();
    let flipped = Signature::from_scalars(r, -*signature.s()).unwrap();
    assert_ne!(flipped.split_bytes().1, low_or_high);
    let b64 = |der: &[u8]| STANDARD.encode(der);

    let (status, first) = s.report(&body).await;
    assert_eq!(status, 200);
    let (status, again) = s
        .post(&body, Some(KEY_ID), Some(&b64(flipped.to_der().as_bytes())))
        .await;
    assert_eq!(status, 200, "the other s is a valid signature");
    assert_eq!(again, first);
    assert_eq!(s.event_names(), ["created", "revoked", "reported_leaked"]);

    // The same numbers, encoded otherwise, and bytes around them.
    let der = der_of(&r, &low_or_high);
    let mut long_length = vec![0x30, 0x81];
    long_length.extend(&der[1..]);
    let mut padded = der.clone();
    padded[1] += 1;
    padded[3] += 1;
    padded.insert(4, 0);
    let mut trailing = der.clone();
    trailing.push(0);
    let mut raw = r.to_vec();
    raw.extend(low_or_high.iter());
    for (what, forged) in [
        ("a long-form length", long_length),
        ("a padded integer", padded),
        ("a trailing byte", trailing),
        ("raw r || s", raw),
        ("nothing", Vec::new()),
    ] {
        let (status, _) = s.post(&body, Some(KEY_ID), Some(&b64(&forged))).await;
        assert_eq!(status, 401, "{what}");
    }

    // Two published keys: each signs only under its own identifier.
    let other = signing_key();
    let both = document(&[(KEY_ID, &s.github), ("second", &other)]);
    let scanning = SecretScanning::new(s.keys.clone(), PublicKeySource::Json(both));
    let fresh = s.keys.create(NewKey::new("acct_1", "fresh")).await.unwrap();
    let body = report_of(fresh.secret.expose_secret());
    for (id, key) in [("second", &s.github), (KEY_ID, &other)] {
        let error = scanning
            .process(id, &sign(key, &body), &body)
            .await
            .unwrap_err();
        assert_eq!(error.status(), 401, "{id}");
    }
    for id in [" second", "second ", "SECOND", "second\0", ""] {
        let error = scanning
            .process(id, &sign(&other, &body), &body)
            .await
            .unwrap_err();
        assert_eq!(error.status(), 401, "{id:?}");
    }
    assert!(
        s.keys
            .store()
            .find_by_id(&fresh.record.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    assert_eq!(
        scanning
            .process("second", &sign(&other, &body), &body)
            .await
            .unwrap()
            .len(),
        1
    );

    // Empty bodies: unsigned 401, signed 400; an empty list is answered.
    assert_eq!(s.post(b"", Some(KEY_ID), None).await.0, 401);
    assert_eq!(s.report(b"").await.0, 400);
    assert_eq!(s.report(b"[]").await, (200, "[]".to_owned()));

    // Fifty made-up identifiers at once: no more fetches than one.
    let before = s.fetches.load(Ordering::SeqCst);
    let signature = sign(&s.github, &body);
    let statuses = futures_util::future::join_all((0..50).map(|i| {
        let id = format!("made-up-{i}");
        let (body, signature) = (&body, &signature);
        let s = &s;
        async move { s.post(body, Some(&id), Some(signature)).await.0 }
    }))
    .await;
    assert!(statuses.iter().all(|&status| status == 401), "{statuses:?}");
    assert!(s.fetches.load(Ordering::SeqCst) <= before + 1);
}
