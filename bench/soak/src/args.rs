//! The command line.

use std::path::PathBuf;

use clap::Parser;

/// The name of the proxy binary looked for next to this one.
const PROXY_BIN: &str = "mcp-proxy";

/// A bounded loopback soak of the MCP proxy.
#[derive(Debug, Parser)]
#[command(name = "soak")]
pub(crate) struct Args {
    /// How long the clients run.
    #[arg(long, default_value_t = 180)]
    pub(crate) duration_secs: u64,
    /// Clients sending requests at once.
    #[arg(long, default_value_t = 128)]
    pub(crate) concurrency: usize,
    /// The `mcp-proxy` binary (default: next to this one). It is copied to a
    /// temporary directory first, so a rebuild cannot swap it mid-run.
    #[arg(long, value_name = "PATH")]
    pub(crate) proxy_bin: Option<PathBuf>,
    /// Soak a server already running at this URL (such as
    /// http://127.0.0.1:8080) instead of starting one; needs `--db`.
    #[arg(long, requires = "db")]
    pub(crate) url: Option<String>,
    /// With `--url`: the server's key store, for the `keys` commands.
    #[arg(long)]
    pub(crate) db: Option<String>,
    /// With `--url`: the server's process id, to sample its memory.
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
    /// Share of the run, in percent, before memory is taken as warmed up.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..100))]
    pub(crate) warmup_percent: u32,
    /// Share of requests, in percent, sent to /mcp (an `initialize`).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) mcp_percent: u32,
    /// Share of opened MCP sessions, in percent, left open without a DELETE.
    /// Each stays in the demo upstream until its 5-minute idle timeout, so
    /// any share above 0 makes memory grow for the whole of a shorter run.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) abandon_percent: u32,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 2)]
    pub(crate) sample_secs: u64,
    /// Stop after this many requests even if time remains.
    #[arg(long, default_value_t = 100_000_000)]
    pub(crate) max_requests: u64,
    /// Seed of the request mix (random when omitted; printed either way).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// `RUST_LOG` of the server it starts.
    #[arg(long, default_value = "warn")]
    pub(crate) server_log: String,
}

impl Args {
    /// `--proxy-bin`, or the `mcp-proxy` binary in the directory of this
    /// executable (`target/release/mcp-proxy` next to `target/release/soak`).
    pub(crate) fn proxy_bin(&self) -> Result<PathBuf, String> {
        match &self.proxy_bin {
            Some(path) => Ok(path.clone()),
            None => Ok(std::env::current_exe()
                .map_err(|e| e.to_string())?
                .with_file_name(PROXY_BIN)),
        }
    }

    /// `--seed`, or a random one.
    pub(crate) fn seed(&self) -> u64 {
        self.seed.unwrap_or_else(|| fastrand::u64(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_those_the_docs_give() {
        let args = Args::try_parse_from(["soak"]).unwrap();
        assert_eq!(args.duration_secs, 180);
        assert_eq!(args.concurrency, 128);
        assert_eq!(args.warmup_percent, 20);
        assert_eq!(args.mcp_percent, 20);
        assert_eq!(args.abandon_percent, 0);
        assert_eq!(args.sample_secs, 2);
        assert_eq!(args.max_requests, 100_000_000);
        assert_eq!(args.server_log, "warn");
        assert!(args.seed.is_none() && args.url.is_none());
    }

    #[test]
    fn the_proxy_defaults_to_the_binary_next_to_this_one() {
        let args = Args::try_parse_from(["soak"]).unwrap();
        let exe = std::env::current_exe().unwrap();
        let bin = args.proxy_bin().unwrap();
        assert_eq!(bin.parent(), exe.parent());
        assert_eq!(bin.file_name().unwrap(), "mcp-proxy");

        let args = Args::try_parse_from(["soak", "--proxy-bin", "/x/mcp_proxy"]).unwrap();
        assert_eq!(args.proxy_bin().unwrap(), PathBuf::from("/x/mcp_proxy"));
    }

    #[test]
    fn url_needs_db_and_percentages_are_bounded() {
        assert!(Args::try_parse_from(["soak", "--url", "http://127.0.0.1:1"]).is_err());
        assert!(
            Args::try_parse_from(["soak", "--url", "http://127.0.0.1:1", "--db", "sqlite:x"])
                .is_ok()
        );
        assert!(Args::try_parse_from(["soak", "--warmup-percent", "0"]).is_err());
        assert!(Args::try_parse_from(["soak", "--warmup-percent", "100"]).is_err());
        assert!(Args::try_parse_from(["soak", "--mcp-percent", "101"]).is_err());
        assert!(Args::try_parse_from(["soak", "--abandon-percent", "100"]).is_ok());
    }
}
