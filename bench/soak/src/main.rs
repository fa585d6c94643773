//! A bounded loopback soak of the MCP proxy.
//!
//! Starts the `mcp-proxy` binary on a fresh SQLite file, makes keys with its
//! own `keys` commands (separate processes, like an operator), then runs
//! `--concurrency` clients for `--duration-secs` against it with a mix of
//! valid, unknown, malformed, expiring and revoked keys, revoking and
//! creating keys while it runs. Every answer is checked against what the
//! driver knew when it sent the request. Prints a summary and exits non-zero
//! on any request wrongly accepted, any 5xx, or a server that died.
//!
//! Run with (or `bench/soak.sh`):
//!
//! ```sh
//! cargo build --release -p mcp-proxy -p soak
//! target/release/soak --duration-secs 180 --concurrency 128 \
//!     --proxy-bin target/release/mcp-proxy
//! ```
//!
//! Everything goes to 127.0.0.1; every loop stops by itself.
//!
//! The pieces: [`args`] (the command line), [`server`] (the proxy process
//! and its `keys` commands), [`keys`] (what the driver knows of each key),
//! [`population`] (the keys made before the run), [`mix`] (the requests of
//! the mix), [`traffic`] (the client loops and how each answer is judged),
//! [`stats`] (the tallies and latencies), [`memory`] (the server's memory
//! and CPU), [`run`] (the run from start to end) and [`report`] (the
//! summary and the verdict).

#![forbid(unsafe_code)]

mod args;
mod keys;
mod memory;
mod mix;
mod population;
mod report;
mod run;
mod server;
mod stats;
mod traffic;

use std::process::ExitCode;

use clap::Parser as _;

/// Exit status: 0 on a pass, 1 on a failed check, 2 when the soak could not
/// run at all.
#[tokio::main]
async fn main() -> ExitCode {
    let args = args::Args::parse();
    match run::soak(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("soak: {error}");
            ExitCode::from(2)
        }
    }
}
