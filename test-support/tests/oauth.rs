//! The authorization server of `test_support::oauth` against real Node and
//! real HTTP: the access token a user gets is the RFC 9068 JWT the resource
//! servers are to verify, and a restart rotates its signing key.

#![cfg(feature = "oauth")]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use test_support::oauth::AuthorizationServer;

const RESOURCE: &str = "http://127.0.0.1:8080/mcp";
const OTHER: &str = "http://127.0.0.1:8081/mcp";

/// The JWT's header and payload (the signature is the resource server's
/// to check).
fn decode(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS in compact form: {jwt}");
    let part = |i: usize| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[i]).expect("base64url")).expect("JSON")
    };
    (part(0), part(1))
}

/// The `kid`s of the issuer's `jwks_uri` document.
async fn published_kids(server: &AuthorizationServer) -> Vec<String> {
    let jwks_uri = server.metadata().await["jwks_uri"]
        .as_str()
        .expect("a jwks_uri")
        .to_owned();
    let jwks: Value = test_support::client()
        .get(jwks_uri)
        .send()
        .await
        .expect("the JWKS")
        .json()
        .await
        .expect("JSON");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].as_str().expect("a kid").to_owned())
        .collect()
}

#[tokio::test]
async fn a_user_token_is_an_rfc_9068_jwt_for_the_resource() {
    let Some(mut server) =
        AuthorizationServer::start(&[RESOURCE, OTHER], "keys:read keys:write mcp").await
    else {
        return;
    };
    assert!(
        server.issuer().starts_with("http://127.0.0.1:"),
        "{}",
        server.issuer()
    );
    assert_eq!(server.metadata().await["issuer"], server.issuer());

    let token = server.user_token("alice", RESOURCE, "keys:read mcp").await;
    let (header, payload) = decode(&token);
    assert_eq!(header["alg"], "ES256", "{header}");
    assert_eq!(header["typ"], "at+jwt", "{header}");
    let kid = header["kid"].as_str().expect("a kid").to_owned();
    assert!(
        published_kids(&server).await.contains(&kid),
        "{kid} is published"
    );
    assert_eq!(payload["iss"], server.issuer(), "{payload}");
    assert_eq!(payload["aud"], RESOURCE, "{payload}");
    assert_eq!(payload["sub"], "alice", "{payload}");
    let scopes: Vec<&str> = payload["scope"]
        .as_str()
        .expect("a scope")
        .split(' ')
        .collect();
    assert!(
        scopes.contains(&"keys:read") && scopes.contains(&"mcp"),
        "{payload}"
    );
    assert!(
        !scopes.contains(&"keys:write"),
        "only the scopes asked for: {payload}"
    );
    assert!(
        payload["exp"].as_i64() > payload["iat"].as_i64(),
        "{payload}"
    );
    assert!(payload["client_id"].is_string(), "{payload}");

    // The other resource gets tokens of its own audience.
    let (_, other) = decode(&server.user_token("bob", OTHER, "mcp").await);
    assert_eq!(other["aud"], OTHER, "{other}");
    assert_eq!(other["sub"], "bob", "{other}");

    // A browser page registers as a public client of its own.
    let client_id = server
        .register_public_client("http://127.0.0.1:8080/settings/callback")
        .await;
    assert!(!client_id.is_empty());

    // Same issuer after a restart, a new signing key.
    let issuer = server.issuer().to_owned();
    server.restart_with_new_keys().await;
    assert_eq!(server.issuer(), issuer);
    let (header, _) = decode(&server.user_token("alice", RESOURCE, "mcp").await);
    let rotated = header["kid"].as_str().expect("a kid");
    assert_ne!(rotated, kid, "a new key after the restart");
    assert_eq!(published_kids(&server).await, [rotated.to_owned()]);
}

#[tokio::test]
async fn an_unknown_resource_is_refused() {
    let Some(server) = AuthorizationServer::start(&[RESOURCE], "mcp").await else {
        return;
    };
    // The server outlives the task that panics, so it is dropped as a
    // passing test's.
    let server = std::sync::Arc::new(server);
    let asking = server.clone();
    let outcome = tokio::spawn(async move {
        asking
            .user_token("alice", "http://127.0.0.1:9999/elsewhere", "mcp")
            .await
    })
    .await;
    let panic = outcome.expect_err("no token for a resource the server does not know");
    let message = panic
        .into_panic()
        .downcast::<String>()
        .map(|s| *s)
        .unwrap_or_default();
    assert!(message.contains("invalid_target"), "{message}");
}
