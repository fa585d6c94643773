//! The flagship example of `tower-api-keys`: a Streamable HTTP MCP server
//! behind API keys.
//!
//! ```text
//! MCP client ──Authorization: Bearer bmc_...──► mcp-proxy /mcp ──x-api-key-*──► MCP server
//! ```
//!
//! Run with:
//!
//! ```sh
//! cargo run -p mcp-proxy                               # 127.0.0.1:8080, ./api-keys.db, demo MCP server
//! cargo run -p mcp-proxy -- keys create laptop         # prints a new key
//! cargo run -p mcp-proxy -- keys list
//! cargo run -p mcp-proxy -- keys revoke bmc_K7xR2pQm   # by id or display prefix
//! cargo run -p mcp-proxy -- serve --upstream http://127.0.0.1:9000/mcp --db postgres://...
//! ```
//!
//! With an empty store, `serve` creates a key named `bootstrap` and prints
//! it once; then:
//!
//! ```sh
//! curl -H "Authorization: Bearer bmc_..." http://127.0.0.1:8080/api/v2/projects
//! ```
//!
//! The binary (`src/main.rs`) only parses the arguments and dispatches; the
//! modules here are the proxy, and what its tests drive in-process:
//! [`cli`] (arguments), [`server`] (routes, start-up, shutdown),
//! [`listener`] (connections: header-read timeout, connection cap),
//! [`metrics`] (`--metrics-listen`), [`audit`] (`--audit-log`),
//! [`proxy`] (the streaming proxy), [`session`] (sessions bound to keys),
//! [`origin`] (the `Origin` check), [`metadata`] (RFC 9728),
//! [`settings`] (the Settings → API Keys page), [`keys`] (the `keys`
//! commands, on the store or through `--server`), [`store`] (`--db`),
//! [`upstream`] (the demo MCP server), [`shown`] (what may reach a terminal
//! as it is).
//!
//! The guide (routes, options, guarantees, connecting MCP clients) is the
//! package's `README.md`.
#![forbid(unsafe_code)]

pub mod audit;
pub mod cli;
pub mod keys;
pub mod listener;
pub mod metadata;
pub mod metrics;
pub mod origin;
pub mod proxy;
pub mod server;
pub mod session;
pub mod settings;
pub mod shown;
pub mod store;
pub mod upstream;
