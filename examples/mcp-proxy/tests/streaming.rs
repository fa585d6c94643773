//! Bodies stream: an SSE event reaches the client while the upstream is
//! still writing; a client that goes away drops the upstream response; an
//! open stream ends soon after its key is revoked.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Running, call_slow, http, in_session, mcp_post, open_session};
use futures_util::StreamExt as _;
use http::StatusCode;

/// An SSE response is streamed: the first progress notification of a slow
/// tool reaches the client while the upstream is still writing that
/// response, well before the result.
#[tokio::test]
async fn sse_events_reach_the_client_before_the_upstream_has_finished() {
    let running = Running::start().await;
    let (key, _) = running.key("laptop").await;
    let http = http();
    let session = open_session(&http, &running.mcp(), &key).await;
    let finished_before = running.upstream.finished.load(Ordering::SeqCst);

    let start = Instant::now();
    let response = in_session(
        mcp_post(&http, &running.mcp(), &key, call_slow(3, 500)),
        &session,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let (mut first_progress, mut result) = (None, None);
    let mut text = String::new();
    while result.is_none() {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the stream stalled")
            .expect("the stream ended before the result")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if first_progress.is_none() && text.contains("notifications/progress") {
            first_progress = Some(start.elapsed());
            assert_eq!(
                running.upstream.finished.load(Ordering::SeqCst),
                finished_before,
                "the upstream had finished its response before the first event arrived"
            );
        }
        if text.contains(r#""id":2"#) {
            result = Some(start.elapsed());
        }
    }
    let (first, done) = (first_progress.expect("a progress event"), result.unwrap());
    eprintln!("first progress event after {first:?}; the result after {done:?}");
    // Nominally 1.5 s apart; the margin only absorbs a loaded machine.
    assert!(
        done >= first + Duration::from_millis(500),
        "{first:?} then {done:?}"
    );
    assert!(text.contains("done after 3 steps"), "{text}");
}

/// A client that goes away mid-stream: the proxy drops the upstream
/// response, so the upstream sees its response body dropped unfinished.
#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let running = Running::start().await;
    let (key, _) = running.key("laptop").await;
    let http = http();
    let session = open_session(&http, &running.mcp(), &key).await;
    let response = in_session(
        mcp_post(&http, &running.mcp(), &key, call_slow(100, 100)),
        &session,
    )
    .send()
    .await
    .unwrap();
    let mut stream = response.bytes_stream();
    assert!(!stream.next().await.unwrap().unwrap().is_empty());
    assert_eq!(running.upstream.dropped_early.load(Ordering::SeqCst), 0);

    let gone = Instant::now();
    drop(stream);
    drop(http);
    while running.upstream.dropped_early.load(Ordering::SeqCst) == 0 {
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "the upstream response was not dropped after the client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "the upstream response was dropped {:?} after the client left",
        gone.elapsed()
    );
}

/// A stream that is open when its key is revoked ends within about a
/// second (the proxy looks the key up again every second), and the key is
/// refused from then on.
#[tokio::test]
async fn an_open_stream_ends_soon_after_its_key_is_revoked() {
    let running = Running::start().await;
    let (key, record) = running.key("laptop").await;
    let (other, _) = running.key("other").await;
    let http = http();
    let mcp = running.mcp();
    let session = open_session(&http, &mcp, &key).await;
    let other_session = open_session(&http, &mcp, &other).await;
    let listen = |key: &str, session: &str| {
        in_session(http.get(&mcp).bearer_auth(key), session)
            .header("accept", "text/event-stream")
            .send()
    };
    let stream = listen(&key, &session).await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let other_stream = listen(&other, &other_session).await.unwrap();
    let mut stream = stream.bytes_stream();
    let mut other_stream = other_stream.bytes_stream();

    running
        .keys
        .revoke(&"acct_1".into(), &record.id)
        .await
        .unwrap();
    let revoked = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream of the revoked key is still open");
    let took = revoked.elapsed();
    eprintln!("the revoked key's open stream ended {took:?} after the revocation");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    let refused = listen(&key, &session).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // Another key's stream is untouched: still open a while later.
    let still_open = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            match other_stream.next().await {
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    })
    .await;
    assert!(still_open.is_err(), "the other key's stream ended too");
}

/// A request still waiting for its upstream's headers when its key is
/// revoked is answered 401 (revoked) at once, instead of its 200 long after
/// the revocation; the upstream connection is dropped.
#[tokio::test]
async fn a_request_waiting_on_the_upstream_is_cut_when_its_key_is_revoked() {
    // An upstream that takes connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let holder = std::sync::Arc::clone(&held);
    tokio::spawn(async move {
        while let Ok((socket, _)) = silent.accept().await {
            holder.lock().unwrap().push(socket);
        }
    });
    let running = Running::with(common::Options {
        upstream: Some(format!("http://{silent_addr}/mcp")),
        ..common::Options::default()
    })
    .await;
    let (key, record) = running.key("laptop").await;
    let request = mcp_post(&http(), &running.mcp(), &key, common::initialize_body()).send();
    let waiting = tokio::spawn(request);
    // The request reaches the silent upstream and waits there.
    tokio::time::timeout(Duration::from_secs(10), async {
        while held.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the request reached the upstream");
    assert!(!waiting.is_finished());
    running
        .keys
        .revoke(&"acct_1".into(), &record.id)
        .await
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the request was cut, not left waiting on the upstream")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("invalid_token") && challenge.contains("revoked"),
        "{challenge}"
    );
}
