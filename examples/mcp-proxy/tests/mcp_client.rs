//! The rmcp client (the Rust MCP SDK) through the proxy: initialize,
//! `tools/list`, `tools/call`, and `whoami` naming the calling key.

mod common;

use common::{Running, connect, whoami};
use http::Method;
use rmcp::model::CallToolRequestParams;

/// The rmcp client with a valid key: initialize, tools/list, tools/call of
/// `echo` and `whoami`; `whoami` names the calling key, as the proxy passed
/// it (a UTF-8 name survives the header encoding).
#[tokio::test]
async fn the_rmcp_client_initializes_lists_tools_and_whoami_names_the_key() {
    let running = Running::start().await;
    let (key, record) = running.key("Zoë's laptop").await;
    let client = connect(&running.mcp(), &key).await.unwrap();

    let info = client.peer_info().expect("initialized");
    assert_eq!(info.server_info.as_ref().unwrap().name, "demo-upstream");
    let mut tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|tool| tool.name.to_string())
        .collect();
    tools.sort();
    assert_eq!(tools, ["echo", "slow", "whoami"]);

    let echo = client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(
                serde_json::json!({"text": "through the proxy" })
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(echo.content[0].as_text().unwrap().text, "through the proxy");

    let who = whoami(&client).await;
    assert_eq!(who.key_id, record.id.to_string());
    assert_eq!(who.key_name, "Zoë's laptop");
    assert_eq!(who.owner, "acct_1");
    assert_eq!(who.scopes, "*");
    assert!(!who.saw_authorization);

    client.cancel().await.unwrap(); // ends the session with DELETE
    let methods: Vec<Method> = running
        .upstream
        .all()
        .into_iter()
        .map(|s| s.method)
        .collect();
    assert!(methods.contains(&Method::POST), "{methods:?}");
    assert!(methods.contains(&Method::DELETE), "{methods:?}");
    running.upstream.assert_no_authorization();
}
