//! Redis for the shared rate-limit tests: the server of `TEST_REDIS_URL`,
//! or one started by a test on a port of its own so that it can be counted,
//! paused and killed.

use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `TEST_REDIS_URL`, or `None` with a loud banner on stderr when it is unset.
pub fn redis_url() -> Option<String> {
    static BANNER: Once = Once::new();
    crate::service_url(
        "TEST_REDIS_URL",
        "Redis rate-limit",
        "redis://127.0.0.1:6379",
        &BANNER,
    )
}

/// A key prefix no other test (or earlier run) uses.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!(
        "test:{test}:{}:{nanos}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A `redis-server` of the test's own on a free loopback port, without
/// persistence; killed when dropped.
#[derive(Debug)]
pub struct OwnRedis {
    /// The loopback port it listens on.
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("local address")
        .port()
}

impl OwnRedis {
    /// Starts one, `None` (skipped loudly) without `TEST_REDIS_URL`. Where
    /// it is set, `redis-server` must be installed.
    pub async fn start() -> Option<Self> {
        redis_url()?;
        let mut redis = Self {
            port: free_port(),
            child: None,
        };
        redis.restart().await;
        Some(redis)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port, empty.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed where TEST_REDIS_URL is set");
        self.child = Some(child);
        for _ in 0..200 {
            if let Ok(mut connection) = self.connection().await
                && ::redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) the server: connections stay
    /// open, answers do not come.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal}");
    }

    /// A connection of its own to this server.
    pub async fn connection(&self) -> ::redis::RedisResult<::redis::aio::MultiplexedConnection> {
        connect(&self.url()).await
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped server must be resumed to die promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}

/// A connection to the server at `url`.
pub async fn connect(url: &str) -> ::redis::RedisResult<::redis::aio::MultiplexedConnection> {
    ::redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
}

/// Calls per command (`evalsha` → 5) from `INFO commandstats`.
pub async fn command_calls(url: &str) -> std::collections::BTreeMap<String, u64> {
    let mut connection = connect(url).await.expect("connect to Redis");
    let info: String = ::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .expect("INFO commandstats");
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Clears the command counts.
pub async fn reset_stats(url: &str) {
    let mut connection = connect(url).await.expect("connect to Redis");
    ::redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(&mut connection)
        .await
        .expect("CONFIG RESETSTAT");
}
