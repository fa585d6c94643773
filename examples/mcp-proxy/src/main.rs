//! `mcp-proxy`: the MCP proxy server and its `keys` commands (see the
//! library part, [`mcp_proxy`], for what each does).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use mcp_proxy::{audit, cli, keys, server};

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
    let audit = match cli
        .audit_log
        .as_deref()
        .map(audit::AuditLog::open)
        .transpose()
    {
        Ok(audit) => audit,
        Err(error) => {
            eprintln!("error: the audit log: {error}");
            return ExitCode::FAILURE;
        }
    };
    let audit = audit.as_ref();
    let outcome = match cli.command {
        None => server::run(&cli.db, audit, cli::ServeArgs::default()).await,
        Some(cli::Command::Serve(args)) => server::run(&cli.db, audit, args).await,
        Some(cli::Command::Keys(args)) => keys::run(&cli.db, audit, args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
