//! Who gets in: 401 with the challenge (the resource metadata is public),
//! 400 for a key in the query string, 403 for a foreign `Origin` before any
//! key is read, `--mcp-scope`, and the routes that need a key and the one
//! that does not. Refused requests never reach the upstream.

mod common;

use common::{ACCEPT_BOTH, Options, Running, connect, http, initialize_body, mcp_post, whoami};
use http::StatusCode;
use tower_api_keys::NewKey;
use tower_api_keys::record::Scopes;

/// No key: 401 with the challenge naming the resource metadata, which is
/// served without a key. An unknown key fails the rmcp client's handshake.
/// The upstream sees none of it.
#[tokio::test]
async fn no_key_gets_401_with_the_challenge_and_the_metadata_is_public() {
    let running = Running::start().await;
    let http = http();
    let response = http
        .post(running.mcp())
        .header("accept", ACCEPT_BOTH)
        .header("content-type", "application/json")
        .body(initialize_body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let metadata_url = format!("{}/.well-known/oauth-protected-resource", running.url);
    assert_eq!(
        response.headers()["www-authenticate"],
        format!(r#"Bearer realm="mcp-test", resource_metadata="{metadata_url}""#).as_str()
    );

    for url in [metadata_url.clone(), format!("{metadata_url}/mcp")] {
        let metadata = http.get(&url).send().await.unwrap();
        assert_eq!(metadata.status(), StatusCode::OK, "{url}");
        let document: serde_json::Value = metadata.json().await.unwrap();
        assert_eq!(document["resource"], running.mcp());
        assert_eq!(
            document["bearer_methods_supported"],
            serde_json::json!(["header"])
        );
        assert!(
            document.get("authorization_servers").is_none(),
            "{document}"
        );
    }

    let unknown = running.keys.format().generate().unwrap();
    let Err(error) = connect(&running.mcp(), unknown.expose_secret()).await else {
        panic!("an unknown key cannot initialize");
    };
    eprintln!("the rmcp client with an unknown key: {error}");
    assert_eq!(running.upstream.count(), 0, "{:?}", running.upstream.all());
}

/// A key in the query string is refused with 400 (even a valid one, even
/// with a valid header too) and never reaches the upstream.
#[tokio::test]
async fn a_key_in_the_query_string_gets_400_and_never_reaches_the_upstream() {
    let running = Running::start().await;
    let (key, _) = running.key("laptop").await;
    let http = http();
    for (query, header) in [("access_token", false), ("api_key", true)] {
        let mut request = http
            .post(format!("{}?{query}={key}", running.mcp()))
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .body(initialize_body().to_string());
        if header {
            request = request.bearer_auth(&key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="invalid_request""#),
            "{challenge}"
        );
    }
    assert_eq!(running.upstream.count(), 0);
}

/// A foreign `Origin` gets 403 before anything else, with or without a key;
/// loopback origins pass by default; `--allowed-origin` replaces them.
#[tokio::test]
async fn a_foreign_origin_gets_403_before_authentication() {
    let running = Running::start().await;
    let (key, _) = running.key("browser").await;
    let http = http();
    let mcp = running.mcp();
    let no_key = http
        .post(&mcp)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), StatusCode::FORBIDDEN);
    for origin in [
        "http://evil.example",
        "http://127.0.0.1.evil.example:8080",
        "null",
    ] {
        let response = mcp_post(&http, &mcp, &key, initialize_body())
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{origin}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "forbidden_origin");
    }
    assert_eq!(running.upstream.count(), 0);
    let local = mcp_post(&http, &mcp, &key, initialize_body())
        .header("origin", "http://localhost:6274")
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), StatusCode::OK);

    let custom = Running::with(Options {
        allowed_origins: vec!["https://app.example.com".into()],
        ..Options::default()
    })
    .await;
    let (key, _) = custom.key("browser").await;
    for (origin, status) in [
        ("https://app.example.com", StatusCode::OK),
        (custom.url.as_str(), StatusCode::OK),
        ("http://localhost:6274", StatusCode::FORBIDDEN),
    ] {
        let response = mcp_post(&http, &custom.mcp(), &key, initialize_body())
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{origin}");
    }
}

/// With `--mcp-scope`, `/mcp` needs that scope (403 `insufficient_scope`
/// otherwise) while `/api/v2/projects` does not; full-access keys pass.
#[tokio::test]
async fn mcp_scope_is_required_when_configured() {
    let running = Running::with(Options {
        mcp_scope: Some("mcp".into()),
        ..Options::default()
    })
    .await;
    let (limited, _) = running
        .key_with(NewKey::new("acct_1", "reports").scopes(Scopes::only(["projects:read"])))
        .await;
    let (scoped, _) = running
        .key_with(NewKey::new("acct_1", "agent").scopes(Scopes::only(["mcp"])))
        .await;
    let (full, _) = running.key("admin").await;
    let http = http();
    let refused = mcp_post(&http, &running.mcp(), &limited, initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="mcp""#), "{challenge}");
    let projects = http
        .get(format!("{}/api/v2/projects", running.url))
        .bearer_auth(&limited)
        .send()
        .await
        .unwrap();
    assert_eq!(projects.status(), StatusCode::OK);
    assert_eq!(running.upstream.count(), 0);

    let client = connect(&running.mcp(), &scoped).await.unwrap();
    assert_eq!(whoami(&client).await.scopes, "mcp");
    client.cancel().await.unwrap();
    let client = connect(&running.mcp(), &full).await.unwrap();
    assert_eq!(whoami(&client).await.key_name, "admin");
    client.cancel().await.unwrap();

    let document: serde_json::Value = http
        .get(format!(
            "{}/.well-known/oauth-protected-resource",
            running.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["scopes_supported"], serde_json::json!(["mcp"]));
}

/// `/api/v2/projects` needs a key and lists the key owner's projects;
/// `/healthz` needs none.
#[tokio::test]
async fn projects_need_a_key_and_healthz_does_not() {
    let running = Running::start().await;
    let (key, _) = running.key("laptop").await;
    let http = http();
    let projects = format!("{}/api/v2/projects", running.url);
    assert_eq!(
        http.get(&projects).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let response = http.get(&projects).bearer_auth(&key).send().await.unwrap();
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "one owner's data"
    );
    let listed: serde_json::Value = response.json().await.unwrap();
    assert_eq!(listed[0]["owner"], "acct_1");
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let health = http
        .get(format!("{}/healthz", running.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// An MCP client that falls back to OAuth after its key is refused looks
/// for an authorization server at the proxy's origin, then registers
/// there. The proxy is no OAuth server: discovery answers 404 and
/// registration 400, each with an OAuth-shaped error whose description (what
/// such clients show) names the refused key and how to fix it, instead of a
/// bare "registration rejected (HTTP 404)".
#[tokio::test]
async fn oauth_fallback_endpoints_explain_the_refused_key() {
    let running = Running::start().await;
    let http = http();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let r = http
            .get(format!("{}{path}", running.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        let description = body["error_description"].as_str().unwrap();
        assert!(
            description.contains("unknown, expired or revoked"),
            "{description}"
        );
        assert!(
            description.contains("Authorization: Bearer"),
            "{description}"
        );
        assert!(body.get("issuer").is_none() && body.get("registration_endpoint").is_none());
    }
    let r = http
        .post(format!("{}/register", running.url))
        .json(&serde_json::json!({"client_name": "mcp-remote", "redirect_uris": ["http://127.0.0.1:3334/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("takes API keys, not OAuth")
    );
    assert!(
        body.get("client_id").is_none(),
        "no client is registered: {body}"
    );
}
