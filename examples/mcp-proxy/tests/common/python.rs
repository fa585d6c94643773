//! The Python MCP SDK's clients of `tests/python/`, run as the tests'
//! real MCP clients: `oauth_client.py` (the SDK's own OAuth flow) and
//! `key_client.py` (a key header, nothing else).

use std::path::Path;
use std::sync::Once;

use serde_json::Value;

/// `python3` with the `mcp` package, or a loud skip (a failure with
/// `REQUIRE_OAUTH=1`).
pub fn available() -> bool {
    static BANNER: Once = Once::new();
    let ok = std::process::Command::new("python3")
        .args(["-c", "import mcp, httpx2"])
        .output()
        .is_ok_and(|out| out.status.success());
    if ok {
        return true;
    }
    assert!(
        std::env::var("REQUIRE_OAUTH").as_deref() != Ok("1"),
        "REQUIRE_OAUTH=1 but python3 cannot import mcp: pip install -r examples/mcp-proxy/tests/python/requirements.txt"
    );
    BANNER.call_once(|| {
        eprintln!(
            "\n==================================================================\n\
             SKIPPED: python3 with the mcp package is missing; the OAuth client tests did not run\n\
             (pip install -r examples/mcp-proxy/tests/python/requirements.txt)\n\
             ==================================================================\n"
        );
    });
    false
}

/// Runs one of the Python clients; its one JSON line, or its error.
fn run_blocking(script: &str, args: &[&str], key: Option<&str>) -> Result<Value, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let mut command = std::process::Command::new("python3");
    command.current_dir(&dir).arg(script).args(args);
    if let Some(key) = key {
        command.env("MCP_API_KEY", key);
    }
    let out = command.output().map_err(|error| error.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{script} failed: {stderr}"));
    }
    serde_json::from_str(stdout.trim())
        .map_err(|error| format!("{script}: {error}: {stdout} {stderr}"))
}

/// Runs `script` with `args` (and `MCP_API_KEY` set to `key`) off the
/// runtime's threads; its one JSON line, or why it failed.
pub async fn run(script: &str, args: &[&str], key: Option<&str>) -> Result<Value, String> {
    let script = script.to_owned();
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    let key = key.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_blocking(&script, &args, key.as_deref())
    })
    .await
    .map_err(|error| error.to_string())?
}
