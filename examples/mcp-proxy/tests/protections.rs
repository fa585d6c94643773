//! The optional protections of `serve`: keys in URLs revoked at once, a
//! default rate limit, and key metadata passed to the upstream.

mod common;

use common::{Options, Running, http, initialize_body, mcp_post};
use http::StatusCode;
use mcp_proxy::server;
use tower_api_keys::NewKey;

/// `serve`'s protections on (keys in URLs revoked, three requests a minute
/// by default): a key's metadata reaches the upstream as JSON, the fourth
/// request of the minute gets 429, and a key sent in a URL is refused with
/// 400 and revoked at once.
#[tokio::test]
async fn serve_protections_revoke_keys_in_urls_limit_rates_and_metadata_reaches_upstream() {
    let running = Running::with(Options {
        protections: server::Protections {
            revoke_exposed_keys: true,
            rate_limit: Some(tower_api_keys::limit::RateLimit::per_minute(3)),
            ..server::Protections::default()
        },
        ..Options::default()
    })
    .await;
    let http = http();
    let (key, record) = running
        .key_with(NewKey::new("acct_1", "meta").metadata(serde_json::json!({"plan": "pro"})))
        .await;

    // Metadata goes upstream as JSON (controls, non-ASCII and '%' escaped).
    let init = mcp_post(&http, &running.mcp(), &key, initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    drop(init);
    let seen = running.upstream.all();
    let metadata = seen[0].headers["x-api-key-metadata"].to_str().unwrap();
    assert_eq!(metadata, r#"{"plan":"pro"}"#);

    // The allowance: three requests a minute, the fourth is refused.
    for _ in 0..2 {
        let r = http
            .get(format!("{}/api/v2/projects", running.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let limited = http
        .get(format!("{}/api/v2/projects", running.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited.headers().contains_key("ratelimit-policy"));

    // A key in a URL is refused and revoked at once.
    let (other, other_record) = running.key("other").await;
    let exposed = http
        .get(format!(
            "{}/api/v2/projects?access_token={other}",
            running.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(exposed.status(), StatusCode::BAD_REQUEST);
    let after = http
        .get(format!("{}/api/v2/projects", running.url))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let stored = running
        .keys
        .get(&"acct_1".into(), &other_record.id)
        .await
        .unwrap();
    assert_eq!(stored.revoked_reason.as_deref(), Some("exposed in URL"));
    assert_eq!(record.rate_limit, None, "the default allowance applied");
}
