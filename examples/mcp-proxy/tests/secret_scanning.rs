//! `--secret-scanning-keys`: the proxy takes GitHub's secret-scanning
//! reports on `POST /github/secret-scanning`, verified against the public
//! keys in a file; a reported key is refused at once on `/mcp` and the API,
//! and a report with a forged signature changes nothing.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Options, Running, TempDir, http};
use http::StatusCode;
use mcp_proxy::server::SECRET_SCANNING_PATH;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use tower_api_keys::secret_scanning::PublicKeySource;

fn sign(key: &SigningKey, body: &[u8]) -> String {
    let signature: Signature = key.sign(body);
    STANDARD.encode(signature.to_der().as_bytes())
}

#[tokio::test]
async fn a_signed_report_revokes_the_key_and_a_forged_one_does_not() {
    let github = SigningKey::random(&mut rand_core::OsRng);
    let dir = TempDir::new();
    let keys_file = dir.path().join("github-keys.json");
    let pem = github
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    std::fs::write(
        &keys_file,
        serde_json::json!({"public_keys": [{"key_identifier": "k1", "key": pem, "is_current": true }] })
            .to_string(),
    )
    .unwrap();
    let proxy = Running::with(Options {
        secret_scanning: Some(PublicKeySource::parse(keys_file.to_str().unwrap())),
        ..Options::default()
    })
    .await;
    let (key, record) = proxy.key("laptop").await;
    let http = http();
    let projects = format!("{}/api/v2/projects", proxy.url);
    let status = async || {
        http.get(&projects)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(status().await, StatusCode::OK);

    let body = serde_json::json!([{
        "token": key, "type": "mcp_proxy_key",
        "url": "https://gist.github.com/someone/abc", "source": "gist"
    }])
    .to_string();
    let report = |signature: String| {
        http.post(format!("{}{SECRET_SCANNING_PATH}", proxy.url))
            .header("content-type", "application/json")
            .header("Github-Public-Key-Identifier", "k1")
            .header("Github-Public-Key-Signature", signature)
            .body(body.clone())
            .send()
    };
    // Forged: signed by another key.
    let forger = SigningKey::random(&mut rand_core::OsRng);
    let forged = report(sign(&forger, body.as_bytes())).await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(status().await, StatusCode::OK);

    let answered = report(sign(&github, body.as_bytes())).await.unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    let verdicts: serde_json::Value = answered.json().await.unwrap();
    assert_eq!(verdicts[0]["label"], "true_positive", "{verdicts}");
    assert_eq!(verdicts[0]["token_type"], "mcp_proxy_key");
    assert_eq!(status().await, StatusCode::UNAUTHORIZED);
    let stored = proxy
        .keys
        .store()
        .find_by_id(&record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.revoked_reason.as_deref(),
        Some("reported by GitHub secret scanning at https://gist.github.com/someone/abc")
    );
}

#[tokio::test]
async fn without_the_flag_there_is_no_endpoint() {
    let proxy = Running::start().await;
    let response = http()
        .post(format!("{}{SECRET_SCANNING_PATH}", proxy.url))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
