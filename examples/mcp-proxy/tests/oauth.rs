//! OAuth beside keys on one running proxy, with real parts only: a real
//! authorization server (oidc-provider, OpenID Certified) issuing JWT
//! access tokens for the proxy's `/mcp`, the Python MCP SDK's own OAuth
//! client doing the whole flow from the 401 (discovery, registration,
//! authorization code with PKCE, token, tool call), and, on the same
//! server in the same test, clients configured with a key header (the
//! Python SDK and rmcp) that connect without any OAuth step.
//!
//! The settings page signs in both ways on such a server too, beside the
//! same clients (`settings_page.rs`: `sign_in_with_oauth_create_a_key_and_test_it`).
//!
//! Needs Node (for oidc-provider) and Python with the `mcp` package
//! (`pip install -r tests/python/requirements.txt`); without them the tests
//! say so loudly and pass, and with `REQUIRE_OAUTH=1` they fail instead.

mod common;

use std::time::Duration;

use common::{Options, Running, connect, python, whoami};
use mcp_proxy::server;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::issuer::{Forgery, Issuer, IssuerKey};
use test_support::oauth::AuthorizationServer;

/// The scopes the authorization server grants for the proxy: `/mcp`
/// requires `mcp`; the management API requires `keys:manage`.
const SCOPES: &str = "mcp keys:manage";

/// A proxy that takes `auth`'s tokens, on `listener`, with `/mcp` needing
/// the scope `mcp`.
async fn proxy_for(auth: &AuthorizationServer, listener: tokio::net::TcpListener) -> Running {
    Running::with(Options {
        listener: Some(listener),
        mcp_scope: Some("mcp".to_owned()),
        protections: server::Protections {
            oauth_issuer: Some(auth.issuer().to_owned()),
            ..server::Protections::default()
        },
        ..Options::default()
    })
    .await
}

/// The challenge of a 401 `invalid_token`, which `response` must be.
fn invalid_token_challenge(response: &reqwest::Response, case: &str) -> String {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{case}: {challenge}"
    );
    challenge
}

async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

#[tokio::test]
async fn oauth_clients_sign_in_and_key_clients_never_see_oauth_on_the_same_server() {
    if !python::available() {
        return;
    }
    let (listener, url) = bind().await;
    let resource = format!("{url}/mcp");
    let Some(auth) = AuthorizationServer::start(&[&resource], SCOPES).await else {
        return;
    };
    let running = proxy_for(&auth, listener).await;
    let mcp = running.mcp();

    // The metadata sends OAuth clients to the issuer; the 401 points at it.
    let document: Value = reqwest::get(format!("{url}/.well-known/oauth-protected-resource"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["resource"], resource);
    assert_eq!(document["authorization_servers"], json!([auth.issuer()]));
    assert_eq!(document["scopes_supported"], json!(["mcp"]));
    let challenge = reqwest::Client::new().post(&mcp).send().await.unwrap();
    assert_eq!(challenge.status(), StatusCode::UNAUTHORIZED);
    let header = challenge.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        header.contains(&format!(
            "resource_metadata=\"{url}/.well-known/oauth-protected-resource\""
        )),
        "{header}"
    );
    // The "this server takes keys only" answers are gone with an issuer.
    let old = reqwest::get(format!("{url}/.well-known/oauth-authorization-server"))
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::NOT_FOUND);
    assert!(
        !old.text()
            .await
            .unwrap()
            .contains("takes API keys, not OAuth")
    );

    // The Python SDK's OAuth client: the whole flow, then whoami.
    let signed_in = python::run(
        "oauth_client.py",
        &[&mcp, "alice", "--tool", "whoami"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(signed_in["authorized"], true);
    let who: Value = serde_json::from_str(signed_in["result"].as_str().unwrap()).unwrap();
    assert_eq!(who["credential"], "access_token", "{who}");
    assert_eq!(who["owner"], "alice");
    assert!(
        who["scopes"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "mcp"),
        "{who}"
    );
    assert_eq!(who["saw_authorization"], false, "the token went upstream");

    // On the same server: the Python SDK with a key header, no OAuth step
    // (the client fails if anything fetches OAuth metadata or gets a 401).
    let (key, record) = running
        .key_with(
            tower_api_keys::NewKey::new("acct_1", "python")
                .scopes(tower_api_keys::record::Scopes::only(["mcp"])),
        )
        .await;
    let by_key = python::run("key_client.py", &[&mcp, "--tool", "whoami"], Some(&key))
        .await
        .unwrap();
    let who: Value = serde_json::from_str(by_key["result"].as_str().unwrap()).unwrap();
    assert_eq!(who["credential"], "api_key");
    assert_eq!(who["key_id"], record.id.to_string());

    // And rmcp with the key as its header.
    let client = connect(&mcp, &key).await.unwrap();
    let who = whoami(&client).await;
    assert_eq!(who.key_id, record.id.to_string());
    assert_eq!(who.credential, "api_key");
    client.cancel().await.unwrap();
    running.upstream.assert_no_authorization();
}

/// A user signed in with OAuth manages their keys through the API (the
/// `create-key` flow), and the key made works on `/mcp` by itself.
#[tokio::test]
async fn a_user_signed_in_with_oauth_creates_lists_and_revokes_their_keys() {
    let (listener, url) = bind().await;
    let resource = format!("{url}/mcp");
    let Some(auth) = AuthorizationServer::start(&[&resource], SCOPES).await else {
        return;
    };
    let running = proxy_for(&auth, listener).await;
    let http = common::http();
    let api = format!("{url}{}/keys", server::MANAGEMENT_PATH);
    let token = auth.user_token("bob", &resource, "mcp keys:manage").await;

    // Each call of the API with a token: its status and JSON answer.
    let call = |request: reqwest::RequestBuilder, token: String| async move {
        let response = request.bearer_auth(token).send().await.unwrap();
        let status = response.status();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let (status, created) = call(
        http.post(&api)
            .json(&json!({"name": "laptop", "scopes": ["mcp"]})),
        token.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("a secret").to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    let made = running.keys.authenticate(&secret).await.unwrap();
    assert_eq!(made.owner().as_str(), "bob");

    // The key made from the login works on /mcp without any token.
    let client = connect(&running.mcp(), &secret).await.unwrap();
    assert_eq!(whoami(&client).await.owner, "bob");
    client.cancel().await.unwrap();

    let (_, page) = call(http.get(&api), token.clone()).await;
    assert_eq!(page["keys"].as_array().unwrap().len(), 1);
    // No escalation: a scope the token lacks.
    let (status, _) = call(
        http.post(&api)
            .json(&json!({"name": "x", "scopes": ["admin"]})),
        token.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A token without keys:manage cannot manage.
    let mcp_only = auth.user_token("bob", &resource, "mcp").await;
    assert_eq!(
        call(http.get(&api), mcp_only).await.0,
        StatusCode::FORBIDDEN
    );

    let (status, _) = call(http.post(format!("{api}/{id}/revoke")), token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(running.keys.authenticate(&secret).await.is_err());
}

/// Tokens that must not pass, from the real issuer or forged from its
/// tokens: each is a 401 `invalid_token` (a 503 when no issuer answers),
/// and nothing reaches the upstream.
#[tokio::test]
async fn bad_tokens_from_or_beside_the_real_issuer_are_refused() {
    let (listener, url) = bind().await;
    let resource = format!("{url}/mcp");
    let other = "http://127.0.0.1:9/other-mcp";
    let Some(auth) = AuthorizationServer::start(&[&resource, other], SCOPES).await else {
        return;
    };
    let running = proxy_for(&auth, listener).await;
    let http = common::http();
    let good = auth.user_token("carol", &resource, "mcp").await;
    let for_other = auth.user_token("carol", other, "mcp").await;
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    claims["sub"] = json!("admin");
    let swapped = format!("{head}.{}.{signature}", b64.encode(claims.to_string()));
    let header: Value = serde_json::from_slice(&b64.decode(head).unwrap()).unwrap();
    let none = format!(
        "{}.{payload}.",
        b64.encode(json!({"alg": "none", "kid": header["kid"]}).to_string())
    );
    let cases = [
        ("a token for another resource", for_other),
        ("a signature over another payload", swapped),
        ("alg none", none),
        ("truncated", good[..good.len() - 12].to_owned()),
    ];
    for (case, token) in cases {
        let response = common::mcp_post(&http, &running.mcp(), &token, common::initialize_body())
            .send()
            .await
            .unwrap();
        invalid_token_challenge(&response, case);
    }
    assert_eq!(
        running.upstream.count(),
        0,
        "a bad token reached the upstream"
    );
    // The good one passes.
    let response = common::mcp_post(&http, &running.mcp(), &good, common::initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // An issuer that does not answer: fail closed.
    drop(auth);
    let (listener, _) = bind().await;
    let gone = Running::with(Options {
        listener: Some(listener),
        protections: server::Protections {
            oauth_issuer: Some("http://127.0.0.1:9".to_owned()),
            ..server::Protections::default()
        },
        ..Options::default()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let response = common::mcp_post(&http, &gone.mcp(), &good, common::initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// The whole list of bad tokens, against the proxy itself: an issuer whose
/// keys the test holds signs what a real authorization server will not
/// (expired, not yet valid, for another issuer or resource, under another
/// algorithm), and each gets the RFC 6750 answer on `/mcp` without
/// reaching the upstream.
#[tokio::test]
async fn every_kind_of_bad_token_is_refused_on_mcp() {
    let (listener, url) = bind().await;
    let key = IssuerKey::new("k1");
    let issuer = Issuer::start(&format!("{url}/mcp"), &[&key]).await;
    let running = Running::with(Options {
        listener: Some(listener),
        protections: server::Protections {
            oauth_issuer: Some(issuer.url.clone()),
            ..server::Protections::default()
        },
        ..Options::default()
    })
    .await;
    let http = common::http();
    let send = |token: String| {
        common::mcp_post(&http, &running.mcp(), &token, common::initialize_body()).send()
    };
    for Forgery {
        case,
        token,
        description,
    } in issuer.forgeries(&key)
    {
        let response = send(token).await.unwrap();
        let challenge = invalid_token_challenge(&response, case);
        assert!(
            challenge.contains("resource_metadata="),
            "{case}: {challenge}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error_description"], description, "{case}");
    }
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(3000),
        "b".repeat(1000),
        "c".repeat(200)
    );
    assert_eq!(
        send(huge).await.unwrap().status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(
        running.upstream.count(),
        0,
        "a bad token reached the upstream"
    );
    let good = key.sign(&issuer.claims("user-42", "mcp"));
    assert_eq!(send(good).await.unwrap().status(), StatusCode::OK);
}
