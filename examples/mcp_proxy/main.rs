//! The flagship example: a Streamable HTTP MCP server behind API keys.
//!
//! ```text
//! MCP client ──Authorization: Bearer bmc_...──► mcp_proxy /mcp ──x-api-key-*──► MCP server
//! ```
//!
//! Run with:
//!
//! ```sh
//! cargo run --example mcp_proxy                               # 127.0.0.1:8080, ./api-keys.db, demo MCP server
//! cargo run --example mcp_proxy -- keys create laptop         # prints a new key
//! cargo run --example mcp_proxy -- keys list
//! cargo run --example mcp_proxy -- keys revoke bmc_K7xR2pQm   # by id or display prefix
//! cargo run --example mcp_proxy -- serve --upstream http://127.0.0.1:9000/mcp --db postgres://...
//! ```
//!
//! With an empty store, `serve` creates a key named `bootstrap` and prints
//! it once; then:
//!
//! ```sh
//! curl -H "Authorization: Bearer bmc_..." http://127.0.0.1:8080/api/v2/projects
//! ```
//!
//! Modules: [`cli`] (arguments), [`server`] (routes, start-up, shutdown),
//! [`proxy`] (the streaming proxy), [`session`] (sessions bound to keys),
//! [`origin`] (the `Origin` check), [`metadata`] (RFC 9728), [`keys`]
//! (the `keys` commands), [`store`] (`--db`), [`upstream`] (the demo MCP
//! server).

// `pub` marks what each module offers the others (and the tests).
#![allow(unreachable_pub)]

mod cli;
mod keys;
mod metadata;
mod origin;
mod proxy;
mod server;
mod session;
mod store;
mod upstream;

use std::process::ExitCode;

use clap::Parser;

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
