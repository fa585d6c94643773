//! Shared by the integration tests: a real server on a loopback port and a
//! real HTTP client. Faults are injected with the crate's `ScriptedStore`.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use axum::Router;

/// The URL of a service the tests need, from the environment variable
/// `var`; `None` when it is unset, after saying so on stderr (where the
/// test harness cannot swallow it): a banner once per test binary
/// (`banner`), and a line per test that did not run.
pub fn service_url(var: &str, what: &str, example: &str, banner: &'static Once) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            banner.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n==================================================================\n\
                     SKIPPED: {var} is not set; {what} tests did not run\n\
                     (run them with {var}={example})\n\
                     ==================================================================\n"
                );
            });
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {var} is not set; this {what} test did not run"
            );
            None
        }
    }
}

/// Serves `app` on 127.0.0.1 at a free port until the test ends.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server runs");
    });
    addr
}

/// Serves `app` like [`serve`], with the peer address available to
/// extractors and to the failed-attempt throttle (`ConnectInfo`).
pub async fn serve_with_peer_addresses(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("server runs");
    });
    addr
}

/// A real HTTP client with a bounded wait, so a hang fails the test instead
/// of stalling it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Collects what a `tracing_subscriber::fmt` subscriber writes, to read the
/// log lines back.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
