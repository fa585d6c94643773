//! Slow or idle connections cannot exhaust the proxy: a client that sends
//! half a request is cut off after the header-read timeout, and past the
//! connection cap new connections wait instead of using up the process's
//! file descriptors, so `/healthz` and a valid key still get answers.

mod common;

use std::time::Duration;

use common::{Running, http};
use http::StatusCode;
use mcp_proxy::listener::ConnectionLimits;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Far above what the bounds need: a hang fails instead of stalling.
const HANG: Duration = Duration::from_secs(20);

/// The default bounds, but a client gets one second to send its headers or
/// the next piece of its body.
fn one_second_limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    }
}

/// The proxy serving with `limits`, and its `host:port`.
async fn start(limits: ConnectionLimits) -> (Running, String) {
    let running = Running::with(common::Options {
        limits: Some(limits),
        ..common::Options::default()
    })
    .await;
    let addr = running.url.trim_start_matches("http://").to_owned();
    (running, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_half_open_connections_do_not_shut_out_real_clients() {
    let (running, addr) = start(ConnectionLimits {
        max_connections: 256,
        ..one_second_limits()
    })
    .await;
    let (key, _) = running.key("laptop").await;
    let mut hostile = Vec::new();
    for _ in 0..2_000 {
        let mut socket = TcpStream::connect(&addr).await.unwrap();
        // Half a request line and no end of headers, then silence.
        let _ = socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: x").await;
        hostile.push(socket);
    }
    let http = http();
    let answered = tokio::time::timeout(HANG, async {
        let health = http
            .get(format!("{}/healthz", running.url))
            .send()
            .await
            .unwrap();
        let projects = http
            .get(format!("{}/api/v2/projects", running.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        (health.status(), projects.status())
    })
    .await
    .expect("real clients are answered while the hostile connections are held");
    assert_eq!(answered, (StatusCode::OK, StatusCode::OK));
    // The hostile connections that were accepted were closed by the server
    // once their headers took too long (read returns end of stream).
    let mut closed = 0;
    for socket in hostile.iter_mut().take(64) {
        let mut buffer = [0_u8; 256];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buffer)).await
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 64, "the server cut off half-sent requests");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let (_running, addr) = start(one_second_limits()).await;
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = vec![0_u8; 4096];
    let n = socket.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    // Nothing more is sent: the server closes the connection.
    let end = tokio::time::timeout(HANG, socket.read(&mut buffer))
        .await
        .expect("the idle connection was closed");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
}

/// A client that announces a body and stops sending it is cut off after
/// the same bound, on the management API and on `/mcp` alike, instead of
/// holding its connection (and a slot of the cap) for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_coming_is_cut_off() {
    let (running, addr) = start(one_second_limits()).await;
    let (key, _) = running.key("laptop").await;
    for path in ["/api/v2/keys", "/mcp"] {
        let mut socket = TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Content-Length: 100\r\n\r\n{{"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(HANG, socket.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{path}: the connection is still held"))
            .ok();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{path}: cut off or refused as the client's fault, not served: {answer}"
        );
    }
}
