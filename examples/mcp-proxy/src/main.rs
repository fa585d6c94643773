//! `mcp-proxy`: the MCP proxy server and its `keys` commands (see the
//! library part, [`mcp_proxy`], for what each does).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use mcp_proxy::{cli, keys, server};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let serving = !matches!(cli.command, Some(cli::Command::Keys(_)));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| if serving { "info" } else { "warn" }.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let outcome = match cli.command {
        None => server::run(&cli.db, cli::ServeArgs::default()).await,
        Some(cli::Command::Serve(args)) => server::run(&cli.db, args).await,
        Some(cli::Command::Keys(command)) => keys::run(&cli.db, command).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
