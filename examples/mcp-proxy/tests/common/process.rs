//! The example binary run as separate processes: `mcp-proxy keys ...` to
//! its end, and `mcp-proxy serve` as a child that is asked over HTTP, read
//! on stderr and stopped with SIGTERM.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};

/// The `mcp-proxy` binary, built by cargo for this test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_mcp-proxy");

/// One run of the example binary to its end.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    /// How long it ran.
    pub took: Duration,
    /// When it ended.
    pub ended: Instant,
}

/// `mcp-proxy <args> --db <db>`, run to its end (within 30 s).
pub async fn run_example(db: &str, args: &[&str]) -> Run {
    let start = Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(BINARY)
            .args(args)
            .args(["--db", db])
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the example finished")
    .unwrap();
    let ended = Instant::now();
    Run {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        took: ended - start,
        ended,
    }
}

impl Run {
    /// The key printed alone on stdout.
    pub fn key(&self) -> String {
        assert!(self.success, "failed: {}", self.stderr);
        let key = self.stdout.trim_end_matches('\n');
        assert!(
            !key.contains('\n'),
            "more than the key on stdout: {:?}",
            self.stdout
        );
        assert!(
            key.starts_with("bmc_") && key.len() == 47,
            "not a key: {key:?}"
        );
        key.to_owned()
    }
}

/// `mcp-proxy serve` as a child process.
pub struct ServerProcess {
    child: tokio::process::Child,
    /// Its base URL, from the line it prints once listening.
    pub url: String,
    stdout: tokio::process::ChildStdout,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    pub async fn start(db: &str) -> Self {
        Self::start_with(db, &[]).await
    }

    /// `serve` with more arguments.
    pub async fn start_with(db: &str, args: &[&str]) -> Self {
        Self::start_logging(db, args, "warn").await
    }

    /// `serve` with more arguments, logging what `filter` (`RUST_LOG`)
    /// lets through.
    pub async fn start_logging(db: &str, args: &[&str], filter: &str) -> Self {
        let mut child = tokio::process::Command::new(BINARY)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                stderr.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(url) = line.strip_prefix("mcp_proxy listening on ") {
                    return url.to_owned();
                }
            }
            panic!("the server exited: {}", stderr.lock().unwrap());
        })
        .await
        .expect("the server started");
        let log = Arc::clone(&stderr);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let stdout = child.stdout.take().unwrap();
        Self {
            child,
            url,
            stdout,
            stderr,
        }
    }

    /// Sends SIGTERM and waits for the exit; returns how long it took.
    pub async fn terminate(&mut self) -> Duration {
        let pid = self.child.id().expect("running").to_string();
        let start = Instant::now();
        let kill = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(kill.success());
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("the server stopped after SIGTERM")
            .unwrap();
        assert!(
            status.success(),
            "{status}: {}",
            self.stderr.lock().unwrap()
        );
        start.elapsed()
    }

    /// The rest of the first line of stderr starting with `prefix`, waiting
    /// for it up to `within`.
    pub async fn stderr_line(&self, prefix: &str, within: Duration) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .lines()
                .find_map(|line| line.strip_prefix(prefix))
            {
                return Some(line.trim().to_owned());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Everything it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The bootstrap key printed on stdout of a server started on an empty
    /// store.
    pub async fn bootstrap_key(&mut self) -> String {
        let mut line = String::new();
        let mut reader = BufReader::new(&mut self.stdout);
        tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
            .await
            .expect("a bootstrap key on stdout")
            .unwrap();
        line.trim_end().to_owned()
    }

    /// Everything the server printed on stdout (after it exited).
    pub async fn stdout_to_end(&mut self) -> String {
        let mut text = String::new();
        self.stdout.read_to_string(&mut text).await.unwrap();
        text
    }
}

/// The status of `GET /api/v2/projects` with `key`.
pub async fn status_of(http: &reqwest::Client, url: &str, key: &str) -> StatusCode {
    http.get(format!("{url}/api/v2/projects"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
}

/// Asks every 10 ms until `url` answers `want` for `key`; how long since
/// `since` that took, failing past `within`.
pub async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    want: StatusCode,
    since: Instant,
    within: Duration,
) -> Duration {
    loop {
        let status = status_of(http, url, key).await;
        let took = since.elapsed();
        if status == want {
            return took;
        }
        assert!(
            took < within,
            "still {status} {took:?} later, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
