//! What the workspace's integration tests share, so that each package's
//! `tests/` holds only what needs that package's types: names no other test
//! uses, temporary directories, the services the tests need (PostgreSQL,
//! Redis) with a loud skip where they are not configured, a router served on
//! a real loopback socket, captured log lines, a `redis-server` of a test's
//! own, (feature `browser`) a headless Chromium driven over WebDriver and
//! (feature `oauth`) an OpenID Certified authorization server on Node.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use axum::Router;

#[cfg(feature = "browser")]
pub mod browser;
#[cfg(feature = "oauth")]
pub mod issuer;
#[cfg(feature = "oauth")]
pub mod oauth;
pub mod pg;
pub mod redis;

// --------------------------------------------------------------------- names

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A name no other test of any process uses.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{tag}_{}_{}_{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `body`, then `cleanup` even when `body` panicked, then re-raises the
/// panic: tests leave nothing behind, pass or fail.
pub async fn run_then<B, C>(body: B, cleanup: C)
where
    B: Future<Output = ()> + Send + 'static,
    C: Future<Output = ()>,
{
    let outcome = tokio::spawn(body).await;
    cleanup.await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the test body did not finish: {error}"),
        }
    }
}

// ------------------------------------------------------------------ services

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

// ------------------------------------------------------------- directories

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory under the system's temporary directory.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique("tak-test"));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `sqlite://<dir>/<name>`.
    pub fn sqlite_url(&self, name: &str) -> String {
        format!("sqlite://{}", self.0.join(name).display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------- HTTP

async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    (listener, addr)
}

/// Serves `app` on 127.0.0.1 at a free port until the test ends.
pub async fn serve(app: Router) -> SocketAddr {
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server runs");
    });
    addr
}

/// Serves `app` like [`serve`], with the peer address available to
/// extractors (`ConnectInfo`).
pub async fn serve_with_peer_addresses(app: Router) -> SocketAddr {
    let (listener, addr) = bind().await;
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

/// Serves `app` like [`serve`] until `stop` completes, then shuts down
/// gracefully.
pub async fn serve_until<S>(app: Router, stop: S) -> SocketAddr
where
    S: Future<Output = ()> + Send + 'static,
{
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop)
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

/// `GET url` with `key` as the bearer token, on a [`client`]; panics when
/// the server does not answer.
pub async fn get_with_key(url: &str, key: &str) -> reqwest::Response {
    client()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .expect("the server answers")
}

// ---------------------------------------------------------------------- logs

/// Collects what a `tracing_subscriber::fmt` subscriber writes, to read the
/// log lines back.
#[derive(Clone, Debug, Default)]
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
