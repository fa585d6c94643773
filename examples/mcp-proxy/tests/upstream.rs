//! What the upstream receives and what comes back from it: never the key,
//! the proxy's identity headers, the MCP headers as sent; the upstream's
//! status codes kept; 502 when it cannot be reached.

mod common;

use common::{
    ACCEPT_BOTH, Options, PROTOCOL, Running, http, in_session, initialize_body, mcp_post,
};
use http::{Method, StatusCode};

/// What the upstream receives: never `Authorization`, nor any header that
/// repeats the key; the proxy's identity headers, not the client's; its own `Host`; no hop-by-hop header; the MCP
/// headers as sent. The client gets the upstream's status codes.
#[tokio::test]
async fn the_upstream_never_receives_the_authorization_header() {
    let running = Running::start().await;
    let (key, record) = running.key("alice").await;
    let http = http();
    let mcp = running.mcp();
    let spoof = |builder: reqwest::RequestBuilder| {
        builder
            .header("x-api-key", &key)
            .header("x-forwarded-credentials", format!("token={key}"))
            .header("x-api-key-id", "00000000-0000-0000-0000-000000000000")
            .header("x-api-key-name", "admin")
            .header("x-api-key-admin", "yes")
            .header("connection", "x-hop")
            .header("x-hop", "1")
            .header("proxy-authorization", "Basic cHJveHk6c2VjcmV0")
            .header("host", "mcp.example.test")
    };
    let init = spoof(mcp_post(&http, &mcp, &key, initialize_body()))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    drop(init.text().await);
    let ack = in_session(
        mcp_post(
            &http,
            &mcp,
            &key,
            serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ),
        &session,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        ack.status(),
        StatusCode::ACCEPTED,
        "the upstream's 202 is kept"
    );
    let call = serde_json::json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {} }
    });
    let called = spoof(in_session(mcp_post(&http, &mcp, &key, call), &session))
        .header("mcp-method", "tools/call")
        .header("mcp-name", "whoami")
        .header("mcp-param-region", "eu")
        .send()
        .await
        .unwrap();
    assert_eq!(called.status(), StatusCode::OK);
    let text = called.text().await.unwrap();
    assert!(text.contains(&record.id.to_string()), "{text}");
    let get = spoof(in_session(http.get(&mcp).bearer_auth(&key), &session))
        .header("accept", "text/event-stream")
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    drop(get);
    let deleted = spoof(in_session(http.delete(&mcp).bearer_auth(&key), &session))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());

    let seen = running.upstream.all();
    let methods: Vec<&Method> = seen.iter().map(|s| &s.method).collect();
    assert_eq!(
        methods,
        [
            &Method::POST,
            &Method::POST,
            &Method::POST,
            &Method::GET,
            &Method::DELETE
        ]
    );
    running.upstream.assert_no_authorization();
    let upstream_host = running.upstream_addr.to_string();
    for s in &seen {
        let h = &s.headers;
        assert_eq!(h["host"], upstream_host.as_str());
        assert_eq!(h["x-api-key-id"], record.id.to_string().as_str());
        assert_eq!(h["x-api-key-name"], "alice");
        assert_eq!(h["x-api-key-owner"], "acct_1");
        assert_eq!(h["x-api-key-scopes"], "*");
        assert_eq!(h["x-api-key-prefix"], record.display_prefix.as_str());
        assert_eq!(h.get_all("x-api-key-id").iter().count(), 1);
        for gone in [
            "x-api-key-admin",
            "x-hop",
            "connection",
            "proxy-authorization",
        ] {
            assert!(!h.contains_key(gone), "{gone} reached the upstream: {h:?}");
        }
    }
    let call = &seen[2].headers;
    assert_eq!(call["mcp-session-id"], session.as_str());
    assert_eq!(call["mcp-protocol-version"], PROTOCOL);
    assert_eq!(call["mcp-method"], "tools/call");
    assert_eq!(call["mcp-name"], "whoami");
    assert_eq!(call["mcp-param-region"], "eu");
    assert_eq!(call["accept"], ACCEPT_BOTH);
    assert_eq!(call["content-type"], "application/json");
    assert_eq!(seen[3].headers["last-event-id"], "0");
}

/// The upstream's refusals reach the client with their status: 406 for a
/// missing `text/event-stream` in `Accept`, 415 for a body that is not JSON.
#[tokio::test]
async fn the_upstream_status_codes_are_kept() {
    let running = Running::start().await;
    let (key, _) = running.key("laptop").await;
    let http = http();
    let post = |accept: &str, content_type: &str| {
        http.post(running.mcp())
            .bearer_auth(&key)
            .header("accept", accept)
            .header("content-type", content_type)
            .body(initialize_body().to_string())
            .send()
    };
    let only_json = post("application/json", "application/json").await.unwrap();
    assert_eq!(only_json.status(), StatusCode::NOT_ACCEPTABLE);
    let text = post(ACCEPT_BOTH, "text/plain").await.unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(running.upstream.count(), 2);
}

/// An upstream that cannot be reached gives 502 with a JSON body that says
/// which upstream and why.
#[tokio::test]
async fn an_unreachable_upstream_gives_502_with_a_clear_body() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let running = Running::with(Options {
        upstream: Some(format!("http://{closed}/mcp")),
        ..Options::default()
    })
    .await;
    let (key, _) = running.key("laptop").await;
    let response = mcp_post(&http(), &running.mcp(), &key, initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    eprintln!("502 body: {body}");
    assert_eq!(body["error"], "upstream_unavailable");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("could not be reached"),
        "{description}"
    );
    // Nothing of the internal address or the operating system's error.
    let text = body.to_string();
    for secret in [
        closed.to_string(),
        closed.port().to_string(),
        "onnect".into(),
        "refused".into(),
    ] {
        assert!(!text.contains(&secret), "{secret} in {text}");
    }
}

/// Whatever the client's `Connection` header names, no copy of the key and
/// no identity header of the client's (under any spelling a CGI-style
/// server reads as the same) reaches the upstream.
#[tokio::test]
async fn copies_of_the_key_and_spoofed_identities_never_reach_the_upstream() {
    let running = Running::start().await;
    let (key, record) = running.key("alice").await;
    let response = mcp_post(&http(), &running.mcp(), &key, initialize_body())
        .header("connection", "authorization, x-hop")
        .header("cookie", format!("session=1; k={key}"))
        .header("x-copy", key.as_str())
        .header("x_api_key_owner", "admin")
        .header("x.api.key.name", "admin")
        .header("x_api-key.scopes", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(response.text().await);
    let seen = running.upstream.all();
    assert_eq!(seen.len(), 1);
    let headers = &seen[0].headers;
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !value.contains(key.as_str()),
            "the key reached the upstream in {name}"
        );
        let spelled = name.as_str().replace(['_', '.'], "-");
        assert!(
            !spelled.starts_with("x-api-key") || name.as_str().starts_with("x-api-key-"),
            "{name} reached the upstream"
        );
    }
    assert_eq!(headers["x-api-key-owner"], "acct_1");
    assert_eq!(headers["x-api-key-name"], "alice");
    assert_eq!(headers["x-api-key-id"], record.id.to_string().as_str());
    assert!(!headers.contains_key("cookie") && !headers.contains_key("x-copy"));
}
