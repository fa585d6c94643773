//! MCP sessions bound to the key that opened them, and the cap on the
//! sessions one key may hold open.

mod common;

use common::{
    Running, connect, http, in_session, initialize_body, mcp_post, open_session, tools_list, whoami,
};
use http::StatusCode;
use mcp_proxy::session;

/// A session opened with one key is refused (404, as for an unknown
/// session) to another key, for POST, GET and DELETE, without reaching the
/// upstream; so is an unknown session id, and a session after its DELETE.
#[tokio::test]
async fn a_session_opened_with_one_key_is_refused_to_another() {
    let running = Running::start().await;
    let (alice, _) = running.key("alice").await;
    let (bob, _) = running.key("bob").await;
    let http = http();
    let mcp = running.mcp();
    let session = open_session(&http, &mcp, &alice).await;
    let reached = running.upstream.count();

    let attempts = [
        in_session(mcp_post(&http, &mcp, &bob, tools_list()), &session),
        in_session(
            http.get(&mcp)
                .bearer_auth(&bob)
                .header("accept", "text/event-stream"),
            &session,
        ),
        in_session(http.delete(&mcp).bearer_auth(&bob), &session),
        in_session(mcp_post(&http, &mcp, &alice, tools_list()), "not-a-session"),
    ];
    for attempt in attempts {
        let response = attempt.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.text().await.unwrap(),
            "Not Found: Session not found"
        );
    }
    assert_eq!(
        running.upstream.count(),
        reached,
        "a refused request reached the upstream"
    );

    // The key that opened it still can, and the rmcp client of another key
    // gets a session of its own.
    let listed = in_session(mcp_post(&http, &mcp, &alice, tools_list()), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert!(listed.text().await.unwrap().contains("whoami"));
    let bobs = connect(&mcp, &bob).await.unwrap();
    assert_eq!(whoami(&bobs).await.key_name, "bob");
    bobs.cancel().await.unwrap();

    let deleted = in_session(http.delete(&mcp).bearer_auth(&alice), &session)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let reached = running.upstream.count();
    let after = in_session(mcp_post(&http, &mcp, &alice, tools_list()), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::NOT_FOUND);
    assert_eq!(running.upstream.count(), reached);
}

/// A key holds at most `SessionBindings::MAX_PER_KEY` open sessions: the
/// next `initialize` gets 429 `too_many_sessions` before reaching the
/// upstream; other keys are not affected, and closing a session makes room.
#[tokio::test]
async fn a_key_holds_a_bounded_number_of_open_sessions() {
    let running = Running::start().await;
    let http = http();
    let (alice, _) = running.key("alice").await;
    let (bob, _) = running.key("bob").await;
    let mcp = running.mcp();
    let mut sessions = Vec::new();
    for _ in 0..session::SessionBindings::MAX_PER_KEY {
        sessions.push(open_session(&http, &mcp, &alice).await);
    }
    let upstream_before = running.upstream.count();
    let refused = mcp_post(&http, &mcp, &alice, initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "60");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "too_many_sessions");
    assert_eq!(
        running.upstream.count(),
        upstream_before,
        "refused before the upstream"
    );
    // Other keys are not affected, and closing a session makes room.
    open_session(&http, &mcp, &bob).await;
    let deleted = in_session(http.delete(&mcp).bearer_auth(&alice), &sessions[0])
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    open_session(&http, &mcp, &alice).await;
}

/// However many `initialize` requests of one key race, the key ends up
/// with at most `SessionBindings::MAX_PER_KEY` sessions: each takes its
/// place before it is forwarded, so the rest get 429 before the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cap_holds_under_concurrent_initializes() {
    let running = Running::start().await;
    let (alice, _) = running.key("alice").await;
    let http = http();
    let mcp = running.mcp();
    let attempts = (0..400).map(|_| {
        let request = mcp_post(&http, &mcp, &alice, initialize_body());
        async move {
            let response = request.send().await.unwrap();
            let session = response
                .headers()
                .get("mcp-session-id")
                .map(|id| id.to_str().unwrap().to_owned());
            let status = response.status();
            drop(response.text().await);
            (status, session)
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let opened = results
        .iter()
        .filter(|(status, session)| *status == StatusCode::OK && session.is_some())
        .count();
    let refused = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        opened <= session::SessionBindings::MAX_PER_KEY,
        "{opened} sessions opened"
    );
    assert_eq!(
        opened + refused,
        results.len(),
        "every answer is a session or a 429"
    );
    assert!(opened > 0);
}

/// A session unused for the idle time stops counting against its key (a
/// client that crashed without DELETE does not hold its key's places), and
/// is then unknown: 404, as the upstream would answer.
#[tokio::test]
async fn an_idle_session_frees_its_place() {
    let running = Running::with(common::Options {
        session_idle: Some(std::time::Duration::from_secs(1)),
        max_sessions_per_key: Some(3),
        ..common::Options::default()
    })
    .await;
    let (alice, _) = running.key("alice").await;
    let http = http();
    let mcp = running.mcp();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(open_session(&http, &mcp, &alice).await);
    }
    let full = mcp_post(&http, &mcp, &alice, initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    open_session(&http, &mcp, &alice).await;
    let stale = in_session(mcp_post(&http, &mcp, &alice, tools_list()), &sessions[0])
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
}
