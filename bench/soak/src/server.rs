//! The proxy as a child process (started on 127.0.0.1, its logs tallied,
//! stopped with SIGTERM), and its `keys` commands, run as an operator would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::keys::{Key, is_key};

/// Each `keys` command is killed after this.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The line on stderr that says the server is up, before its URL. The
/// binary has been called both ways.
const BANNERS: [&str; 2] = ["mcp_proxy listening on ", "mcp-proxy listening on "];

/// The proxy server as a child process, killed when dropped (also on a
/// panic).
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) pid: u32,
    pub(crate) url: String,
    /// The key it printed on its first start.
    pub(crate) bootstrap: String,
}

impl ServerProcess {
    /// `BIN serve --listen 127.0.0.1:0 --db DB`, once it says where it
    /// listens; its later stderr lines go to `logs`.
    pub(crate) async fn start(
        bin: &Path,
        db: &str,
        log: &str,
        logs: Arc<Mutex<LogTally>>,
    ) -> Result<Self, String> {
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id().ok_or("the server exited at once")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut err_lines = BufReader::new(stderr).lines();
        let mut out_lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = err_lines.next_line().await {
                banner.push_str(&line);
                banner.push('\n');
                if let Some(url) = listening_on(&line) {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("the server did not start:\n{banner}"))?;
        // The bootstrap key is printed on stdout before the banner.
        let bootstrap = tokio::time::timeout(Duration::from_secs(5), out_lines.next_line())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .ok_or("no bootstrap key on the server's stdout")?;
        if !is_key(&bootstrap) {
            return Err("the server's stdout holds something else than a key".into());
        }
        // Drain both pipes to the end, so the server never blocks on them.
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                logs.lock().unwrap_or_else(|e| e.into_inner()).add(&line);
            }
        });
        tokio::spawn(async move {
            let mut extra = 0;
            while let Ok(Some(_)) = out_lines.next_line().await {
                extra += 1;
            }
            if extra > 0 {
                eprintln!("the server printed {extra} more lines on stdout");
            }
        });
        Ok(Self {
            child,
            pid,
            url,
            bootstrap,
        })
    }

    /// SIGTERM, then waits up to 15 s; how it ended.
    pub(crate) async fn terminate(mut self) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited ({status})");
        }
        let started = Instant::now();
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .is_ok_and(|s| s.success());
        if !signalled {
            return "could not be sent SIGTERM; killed".into();
        }
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(status)) => format!(
                "stopped on SIGTERM in {} ms ({status})",
                started.elapsed().as_millis()
            ),
            _ => "did not stop within 15 s of SIGTERM; killed".into(),
        }
    }
}

/// The URL in the server's start-up banner.
fn listening_on(line: &str) -> Option<&str> {
    BANNERS.iter().find_map(|banner| line.strip_prefix(banner))
}

/// The server's warnings and errors, counted by message.
#[derive(Debug, Default)]
pub(crate) struct LogTally {
    pub(crate) lines: u64,
    pub(crate) by_message: BTreeMap<String, u64>,
}

impl LogTally {
    fn add(&mut self, line: &str) {
        self.lines += 1;
        // "<time>  WARN target: message fields..." → "WARN target: message"
        let text = line
            .split_once(" WARN ")
            .map(|(_, rest)| format!("WARN {rest}"))
            .or_else(|| {
                line.split_once(" ERROR ")
                    .map(|(_, rest)| format!("ERROR {rest}"))
            })
            .unwrap_or_else(|| line.to_owned());
        let text = strip_fields(&text);
        if self.by_message.len() < 50 || self.by_message.contains_key(&text) {
            *self.by_message.entry(text).or_default() += 1;
        }
    }
}

/// A log line without its `key=value` fields (key prefixes, ids).
fn strip_fields(text: &str) -> String {
    let words: Vec<&str> = text
        .split(' ')
        .take_while(|w| !w.contains('=') || w.starts_with('='))
        .collect();
    let line = words.join(" ");
    line.chars().take(160).collect()
}

/// Runs the `keys` commands of the binary, each a process of its own.
#[derive(Debug, Clone)]
pub(crate) struct Operator {
    pub(crate) bin: PathBuf,
    pub(crate) db: String,
}

impl Operator {
    /// `BIN keys ARGS... --db DB`: its stdout and stderr, or why it failed.
    pub(crate) async fn run(&self, args: &[&str]) -> Result<(String, String), String> {
        let output = tokio::time::timeout(
            COMMAND_TIMEOUT,
            Command::new(&self.bin)
                .arg("keys")
                .args(args)
                .args(["--db", &self.db])
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| format!("keys {args:?} did not finish in {COMMAND_TIMEOUT:?}"))?
        .map_err(|e| format!("keys {args:?}: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(format!(
                "keys {args:?} failed ({}): {stderr}",
                output.status
            ));
        }
        Ok((stdout, stderr))
    }

    /// `keys create NAME [extra...]`: the key, its id parsed from stderr.
    pub(crate) async fn create(&self, name: &str, extra: &[&str]) -> Result<Key, String> {
        let mut args = vec!["create", name];
        args.extend_from_slice(extra);
        let (stdout, stderr) = self.run(&args).await?;
        let secret = stdout.trim_end_matches('\n');
        if !is_key(secret) || secret.contains('\n') {
            return Err(format!("keys create {name}: stdout is not one key alone"));
        }
        let id = created_id(&stderr)
            .ok_or_else(|| format!("keys create {name}: no id in {stderr:?}"))?;
        Ok(Key::new(name.to_owned(), id.to_owned(), secret.to_owned()))
    }

    /// `keys revoke ID --reason soak`, noting when it started and returned.
    pub(crate) async fn revoke(&self, key: &Key) -> Result<Duration, String> {
        let started = Instant::now();
        let _ = key.revoke_started.set(Utc::now());
        let outcome = self.run(&["revoke", &key.id, "--reason", "soak"]).await;
        let _ = key.revoke_returned.set(Utc::now());
        outcome.map(|_| started.elapsed())
    }
}

/// The id in what `keys create` says on stderr (`..., id ID)`).
fn created_id(stderr: &str) -> Option<&str> {
    stderr
        .split_once(", id ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_counted_by_message_without_their_fields() {
        let mut logs = LogTally::default();
        logs.add("2026-01-01T00:00:00Z  WARN mcp_proxy::proxy: upstream slow key=bmc_K7x ms=900");
        logs.add("2026-01-01T00:00:01Z  WARN mcp_proxy::proxy: upstream slow key=bmc_Q2p ms=12");
        logs.add("2026-01-01T00:00:02Z ERROR tower_api_keys: store down error=timeout");
        assert_eq!(logs.lines, 3);
        assert_eq!(logs.by_message["WARN mcp_proxy::proxy: upstream slow"], 2);
        assert_eq!(logs.by_message["ERROR tower_api_keys: store down"], 1);
    }

    #[test]
    fn the_banner_gives_the_url_under_either_name() {
        assert_eq!(
            listening_on("mcp_proxy listening on http://127.0.0.1:4321"),
            Some("http://127.0.0.1:4321")
        );
        assert_eq!(
            listening_on("mcp-proxy listening on http://127.0.0.1:4321"),
            Some("http://127.0.0.1:4321")
        );
        assert_eq!(listening_on("starting"), None);
    }

    #[test]
    fn the_id_of_a_created_key_is_read_from_stderr() {
        assert_eq!(
            created_id(
                "created key \"laptop\" for - (bmc_K7xR2pQm, id 0190-ab), scopes *, never expires\n"
            ),
            Some("0190-ab")
        );
        assert_eq!(created_id("created key laptop\n"), None);
    }
}
