//! The Settings → API Keys page, in a real browser: Debian's Chromium,
//! headless, driven through chromedriver over WebDriver. The page runs
//! under its Content-Security-Policy, against the example's management API
//! over SQLite, exactly as served. The journeys are written over the page
//! object in settings_page/page.rs; the browser harness is
//! `test_support::browser`.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` the browser tests
//! say so on stderr and pass; with `REQUIRE_BROWSER=1` they fail instead.
//! `BROWSER_TEST_CHROMIUM` and `BROWSER_TEST_CHROMEDRIVER` name other
//! binaries. chromedriver's log goes to the target directory.
//! `UPDATE_SCREENSHOTS=1` writes the page's screenshot to
//! `docs/settings-api-keys.png`; otherwise it goes to the target directory.
//!
//! The OAuth journeys sign in at a real authorization server
//! (`test_support::oauth`, oidc-provider on Node): without Node they say so
//! and pass; with `REQUIRE_OAUTH=1` they fail instead.

mod common;

use std::future::Future;
use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use common::settings_page::{OAUTH_CLIENT_KEY, OAUTH_SESSION_KEY, STORAGE_KEY, SettingsPage};
use common::{Options, Running, http};
use http::StatusCode;
use mcp_proxy::server::Protections;
use mcp_proxy::settings;
use serde_json::{Value, json};
use test_support::browser::fantoccini::key::Key;
use test_support::browser::{Browser, with_browser};
use test_support::oauth::AuthorizationServer;
use tokio::net::TcpListener;
use tower_api_keys::NewKey;
use tower_api_keys::record::{KeyId, OwnerId, Scopes};

/// The names a hostile user could give keys: each must show as its text.
const HOSTILE_NAMES: &[&str] = &[
    "<img src=x onerror=alert(1)>",
    "\"><script>window.__pwned=1</script>",
    "</td></tr><tr data-key-id=\"forged\"><td class=\"name\">forged",
    "<svg/onload=window.__pwned=2>",
    "javascript:window.__pwned=3",
    "{{constructor.constructor('window.__pwned=4')()}}",
    "&lt;b&gt;entities&lt;/b&gt; &amp; <b>bold</b>",
];

// ------------------------------------------------------------ the headers

/// Each of the page's routes has its content type and the security
/// headers, including a 405 for a wrong method; nothing is cached.
#[tokio::test]
async fn the_page_is_served_with_its_security_headers() {
    let running = Running::start().await;
    let http = http();
    for (path, content_type) in [
        (settings::PATH, "text/html; charset=utf-8"),
        (settings::SCRIPT_PATH, "text/javascript; charset=utf-8"),
        (settings::STYLE_PATH, "text/css; charset=utf-8"),
        (settings::ICON_PATH, "image/svg+xml"),
        (settings::CONFIG_PATH, "application/json"),
    ] {
        let response = http
            .get(format!("{}{path}", running.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        assert_security_headers(response.headers(), path);
        assert!(!response.text().await.unwrap().is_empty());
    }
    let wrong_method = http
        .post(format!("{}{}", running.url, settings::PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_security_headers(wrong_method.headers(), "POST /settings/api-keys");

    // The policy itself: nothing from elsewhere, nothing inline.
    let csp = settings::CONTENT_SECURITY_POLICY;
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(csp.contains(directive), "the policy lacks {directive}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
}

/// The page's policy lets it call the OAuth issuer's origin (the origin
/// alone, not the issuer's path) only when one is configured, and its
/// config names the sign-in (issuer, resource, scope) then and only then.
#[tokio::test]
async fn the_policy_and_config_name_the_issuer_only_when_configured() {
    let plain = Running::start().await;
    let issuer = "http://127.0.0.1:9/tenant/a";
    let with_issuer = Running::with(Options {
        protections: Protections {
            oauth_issuer: Some(issuer.into()),
            ..Protections::default()
        },
        mcp_scope: Some("mcp".into()),
        ..Options::default()
    })
    .await;
    let http = http();
    let policy = settings::content_security_policy(Some("http://127.0.0.1:9"));
    assert!(
        policy.contains("; connect-src 'self' http://127.0.0.1:9; "),
        "{policy}"
    );
    for path in [settings::PATH, settings::SCRIPT_PATH, settings::CONFIG_PATH] {
        for (running, expected) in [
            (&plain, settings::CONTENT_SECURITY_POLICY),
            (&with_issuer, policy.as_str()),
        ] {
            let response = http
                .get(format!("{}{path}", running.url))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()["content-security-policy"],
                expected,
                "{path}"
            );
            assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        }
    }

    let config = |running: &Running| {
        let url = format!("{}{}", running.url, settings::CONFIG_PATH);
        let http = http.clone();
        async move {
            let response = http.get(url).send().await.unwrap();
            assert_eq!(response.headers()["content-type"], "application/json");
            response.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(
        config(&plain).await,
        json!({"mcp_url": plain.mcp(), "oauth": null})
    );
    assert_eq!(
        config(&with_issuer).await,
        json!({
            "mcp_url": with_issuer.mcp(),
            "oauth": {
                "issuer": issuer,
                "resource": with_issuer.mcp(),
                // The keys made in that session must work on /mcp too.
                "scope": "keys:manage mcp",
            },
        })
    );
}

fn assert_security_headers(headers: &http::HeaderMap, what: &str) {
    for (name, value) in [
        ("content-security-policy", settings::CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(
            headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{what}: {name}"
        );
    }
}

// ------------------------------------------------------------ the browser

/// Runs the journey `body` on the page of a fresh headless Chromium.
async fn with_page<B, F>(test: &str, body: B)
where
    B: FnOnce(Browser) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    with_browser(test, Path::new(env!("CARGO_TARGET_TMPDIR")), body).await;
}

/// Sign in with the bootstrap key; create "Claude Desktop" expiring in 30
/// days; the show-once dialog's secret works; after a reload the row shows
/// it with its last use; revoke it through the confirmation, and the key is
/// refused. Nothing secret lands in the URL or in `localStorage`, and the
/// page logs no error under its CSP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_use_and_revoke_a_key_in_the_browser() {
    with_page(
        "create_use_and_revoke_a_key_in_the_browser",
        create_use_and_revoke,
    )
    .await;
}

/// The status of `GET /api/v2/projects` with `key`.
async fn projects_status(running: &Running, key: &str) -> StatusCode {
    http()
        .get(format!("{}/api/v2/projects", running.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
}

async fn create_use_and_revoke(browser: Browser) {
    let running = Running::start().await;
    let (bootstrap, _) = running.key("bootstrap").await;
    // Company for the new key, as a real account would have.
    running
        .key_with(
            NewKey::new("acct_1", "Work Laptop")
                .expires_at(chrono::Utc::now() - chrono::TimeDelta::hours(2)),
        )
        .await;
    running
        .key_with(NewKey::new("acct_1", "CI deploy").scopes(Scopes::only(["projects:read"])))
        .await;
    let url = format!("{}{}", running.url, settings::PATH);

    let response = http().get(&url).send().await.unwrap();
    assert_security_headers(response.headers(), "the page");

    let page = SettingsPage::open(browser, &url).await;
    assert_eq!(
        page.active_id().await,
        "signin-key",
        "focus starts in the key field"
    );
    assert!(page.hidden("app").await);
    assert!(
        !page.offers_oauth().await,
        "without an issuer, no OAuth sign-in"
    );

    // A wrong key is refused, said in the alert region, and not kept.
    page.sign_in("bmc_notAKeyAtAll0000000000000000").await;
    let error = page.error_text().await;
    assert!(error.contains("refused"), "{error}");
    assert_eq!(page.session_key().await, Value::Null);
    assert_eq!(
        page.js("return document.getElementById('error').getAttribute('role')")
            .await,
        json!("alert")
    );
    page.expect_console_errors(&["401"]).await;

    // The bootstrap key signs in; it is kept in sessionStorage only.
    page.clear_key().await;
    page.sign_in(&bootstrap).await;
    page.expect_signed_in("the signed-in page").await;
    assert_eq!(page.session_key().await, json!(bootstrap));
    assert_eq!(page.error_text_now().await, "");
    assert_eq!(
        page.value("#signin-key").await,
        json!(""),
        "the key field is emptied once the key is kept"
    );
    assert!(
        page.text("#session-prefix")
            .await
            .starts_with(&bootstrap[..12]),
        "the header names the key signed in with"
    );
    let own = page.row_named("bootstrap").await;
    assert!(
        own["name"].as_str().unwrap().contains("this session"),
        "{own}"
    );
    assert_eq!(page.active_id().await, "create-name");
    assert_eq!(
        page.row_named("Work Laptop").await["status"],
        json!("expired")
    );
    assert_eq!(
        page.row_named("CI deploy").await["access"],
        json!("projects:read")
    );

    // Create "Claude Desktop", expiring at the end of the day 30 days ahead.
    let day = (chrono::Utc::now() + chrono::TimeDelta::days(30)).date_naive();
    page.type_name("Claude Desktop").await;
    page.set_expiry(&day.format("%Y-%m-%d").to_string()).await;
    page.submit_create().await;
    page.expect_secret_dialog().await;
    let secret = page.secret_value().await.as_str().unwrap().to_owned();
    assert!(secret.starts_with("bmc_"), "{secret}");
    assert_eq!(
        page.active_id().await,
        "secret-value",
        "focus moves into the dialog"
    );
    assert_eq!(
        page.js("return document.getElementById('secret-value').readOnly")
            .await,
        json!(true)
    );
    assert_eq!(page.text("#secret-name").await, "Claude Desktop");
    let warning = page.text("#secret-warning").await;
    assert!(warning.contains("Copy this key now"), "{warning}");
    assert!(warning.contains("won't be shown again"), "{warning}");
    assert_snippets(&page, &running.mcp(), &secret).await;
    page.screenshot("settings-api-keys-created", false).await;
    page.click("#secret-copy").await;
    let copied = page
        .wait_for(
            "the copy feedback",
            "return document.getElementById('secret-copy-status').textContent",
        )
        .await;
    assert!(
        copied.as_str().unwrap().contains("Copied")
            || copied.as_str().unwrap().contains("selected"),
        "{copied}"
    );
    page.assert_secret_not_kept(&secret).await;
    page.click("#secret-done").await;
    page.expect_dialog_cleared(
        "the dialog to close and its close event to run",
        "the secret leaves the page with the dialog",
    )
    .await;
    page.wait_for(
        "focus back in the form",
        "return ['create-name', 'create-button'].includes(document.activeElement.id)",
    )
    .await;
    page.assert_secret_not_kept(&secret).await;
    let html = page.js("return document.documentElement.outerHTML").await;
    assert!(
        !html.as_str().unwrap().contains(&secret),
        "the secret is still in the page"
    );

    // The library agrees: the name, and the end of that day in UTC.
    let row = page.row_named("Claude Desktop").await;
    let id = KeyId::from_str(row["id"].as_str().unwrap()).unwrap();
    let owner = OwnerId::new("acct_1");
    let record = running.keys.get(&owner, &id).await.unwrap();
    assert_eq!(record.name, "Claude Desktop");
    assert_eq!(
        record.expires_at,
        Some(day.and_hms_opt(23, 59, 59).unwrap().and_utc()),
        "expires at the end of the chosen day, UTC"
    );
    assert_eq!(record.display_prefix, secret[..12]);

    // The secret works.
    assert_eq!(projects_status(&running, &secret).await, StatusCode::OK);

    // After reloads (signed in still, from sessionStorage), the row
    // shows the key and, once the batch is written, its last use.
    let row = page
        .row_after_reloads(
            "Claude Desktop",
            "the last use",
            (Duration::from_secs(20), Duration::from_millis(700)),
            |row| row["lastUsed"] != json!("never"),
        )
        .await;
    assert_eq!(row["name"], json!("Claude Desktop"));
    assert_eq!(row["prefix"], json!(format!("{}…", &secret[..12])));
    assert_eq!(row["status"], json!("active"));
    assert!(
        row["statusClass"]
            .as_str()
            .unwrap()
            .contains("badge-active"),
        "{row}"
    );
    // The page's <time> is to the millisecond.
    let created = chrono::DateTime::parse_from_rfc3339(row["createdAt"].as_str().unwrap()).unwrap();
    assert!(
        (created.to_utc() - record.created_at)
            .num_milliseconds()
            .abs()
            < 1,
        "{created} against {}",
        record.created_at
    );
    assert!(!row["created"].as_str().unwrap().is_empty(), "{row}");
    let last_used = row["lastUsed"].as_str().unwrap();
    assert!(
        last_used == "just now" || last_used.ends_with("ago"),
        "a relative time: {row}"
    );
    let title = row["lastUsedTitle"].as_str().unwrap();
    assert!(
        title.contains(&chrono::Utc::now().format("%Y").to_string()) && title.contains('T'),
        "the exact time on hover: {row}"
    );
    assert_eq!(row["expiresAt"], json!(format!("{day}T23:59:59.000Z")));
    assert_eq!(row["hasRevoke"], json!(true));
    assert_eq!(row["cells"], json!(8));

    // Revoke: the confirmation says it cannot be undone; Escape cancels.
    let row_id = row["id"].as_str().unwrap();
    page.revoke_row(row_id).await;
    let text = page.text("#revoke-text").await;
    assert!(text.contains("cannot be undone"), "{text}");
    assert!(text.contains("Claude Desktop"), "{text}");
    assert!(page.hidden("revoke-self").await);
    assert_eq!(
        page.active_id().await,
        "revoke-cancel",
        "the safe choice has focus"
    );
    page.send_keys("#revoke-cancel", &Key::Escape.to_string())
        .await;
    page.wait_for(
        "Escape to close the confirmation",
        "return !document.getElementById('revoke-dialog').open",
    )
    .await;
    page.wait_for(
        "focus back on the revoke button",
        "return document.activeElement.classList.contains('revoke')",
    )
    .await;
    assert_eq!(
        page.row_named("Claude Desktop").await["status"],
        json!("active")
    );
    assert_eq!(
        projects_status(&running, &secret).await,
        StatusCode::OK,
        "cancelled: the key still works"
    );

    // Keyboard only: Enter on the focused revoke button, then confirm.
    page.active()
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    page.expect_confirmation().await;
    page.confirm_revoke().await;
    page.expect_row_revoked(row_id).await;
    let revoked = page.row_named("Claude Desktop").await;
    assert_eq!(revoked["hasRevoke"], json!(false), "{revoked}");
    page.wait_for(
        "focus on the revoked row",
        "return document.activeElement.tagName === 'TR'",
    )
    .await;
    let status = page.text("#status").await;
    assert!(status.contains("Revoked"), "{status}");
    assert_eq!(
        projects_status(&running, &secret).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        running
            .keys
            .get(&owner, &id)
            .await
            .unwrap()
            .revoked_at
            .is_some()
    );

    // The whole session: no secret in the URL, nothing in localStorage,
    // no error in the console.
    page.assert_secret_not_kept(&secret).await;
    page.expect_console_errors(&[]).await;
    page.screenshot("settings-api-keys", true).await;

    // Sign out: the managing key leaves the tab.
    page.sign_out().await;
    page.expect_sign_in("the sign-in box").await;
    assert_eq!(page.session_key().await, Value::Null);
    assert_eq!(
        page.js("return document.querySelectorAll('#keys-body tr').length")
            .await,
        json!(0)
    );
    page.reload().await;
    page.expect_sign_in("the sign-in box after a reload").await;
    assert!(page.hidden("app").await);
    page.expect_console_errors(&[]).await;
}

/// Key names that are HTML, script or template syntax show as their text
/// (created through the library, and through the page itself); pages load
/// with "Load more"; an expired key has its badge; a key that may not
/// manage keys is told so; revoking the key signed in with signs out. And
/// the browser enforces the policy: no eval, no inline script, no HTML from
/// strings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_stay_text_and_pages_load_more() {
    with_page(
        "hostile_names_stay_text_and_pages_load_more",
        hostile_names_and_pages,
    )
    .await;
}

async fn hostile_names_and_pages(browser: Browser) {
    let running = Running::start().await;
    let (bootstrap, _) = running.key("bootstrap").await;
    let (reader, _) = running
        .key_with(NewKey::new("acct_1", "read only").scopes(Scopes::only(["projects:read"])))
        .await;
    running
        .key_with(
            NewKey::new("acct_1", "old laptop")
                .expires_at(chrono::Utc::now() - chrono::TimeDelta::days(1)),
        )
        .await;
    for n in 0..18 {
        running.key(&format!("filler {n:02}")).await;
    }
    for name in HOSTILE_NAMES {
        running.key(name).await;
    }
    // 1 + 1 + 1 + 18 + hostile: more than one page of 20.
    let total = 21 + HOSTILE_NAMES.len();
    let url = format!("{}{}", running.url, settings::PATH);
    let page = SettingsPage::open(browser, &url).await;

    // A key that may not manage keys: told why, not kept.
    page.sign_in(&reader).await;
    let error = page.error_text().await;
    assert!(error.contains("may not manage"), "{error}");
    assert_eq!(page.session_key().await, Value::Null);
    page.expect_console_errors(&["403"]).await;

    // Enter in the key field signs in too.
    page.clear_key().await;
    page.type_key(&bootstrap).await;
    page.send_keys("#signin-key", &Key::Enter.to_string()).await;
    page.expect_signed_in("the signed-in page").await;
    assert_eq!(page.row_count().await, 20, "the first page");
    assert!(!page.hidden("load-more").await);
    page.click("#load-more").await;
    page.wait_for(
        "the second page",
        &format!(
            "return document.querySelectorAll('#keys-body tr[data-key-id]').length === {total}"
        ),
    )
    .await;
    page.wait_for(
        "Load more to go",
        "return document.getElementById('load-more').hidden",
    )
    .await;
    let ids = page
        .js(
            "return [...document.querySelectorAll('#keys-body tr[data-key-id]')]\
              .map(r => r.dataset.keyId)",
        )
        .await;
    let mut ids: Vec<String> = serde_json::from_value(ids).unwrap();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no row twice");

    // Each hostile name is its own text, in one row of eight cells.
    for name in HOSTILE_NAMES {
        let row = page.row_named(name).await;
        assert_eq!(row["cells"], json!(8), "{name}: {row}");
        assert_eq!(row["status"], json!("active"));
    }
    page.assert_hostile_markup_inert().await;

    // The expired key: its badge, and no revoke button.
    let expired = page.row_named("old laptop").await;
    assert_eq!(expired["status"], json!("expired"), "{expired}");
    assert!(
        expired["statusClass"]
            .as_str()
            .unwrap()
            .contains("badge-expired")
    );
    assert_eq!(expired["hasRevoke"], json!(false));
    let reader_row = page.row_named("read only").await;
    assert_eq!(reader_row["access"], json!("projects:read"));
    assert_eq!(
        page.row_named("filler 00").await["access"],
        json!("full access")
    );

    // A hostile name typed into the page: shown as text in the dialog
    // and the table; the API's own error shown as text too.
    let typed = "\"><script>document.title='pwned'</script><b>x</b>";
    page.create(typed).await;
    page.expect_secret_dialog().await;
    assert_eq!(
        page.js("return document.getElementById('secret-name').textContent")
            .await,
        json!(typed)
    );
    assert_eq!(
        page.js("return document.getElementById('secret-name').children.length")
            .await,
        json!(0)
    );
    // The key revoked while the dialog still shows it: "Test connection"
    // says why it was refused.
    let typed_id = KeyId::from_str(page.row_named(typed).await["id"].as_str().unwrap()).unwrap();
    running
        .keys
        .revoke(&OwnerId::new("acct_1"), &typed_id)
        .await
        .unwrap();
    let outcome = page.test_connection().await;
    assert!(
        outcome.contains("refused") && outcome.contains("401") && outcome.contains("revoked"),
        "{outcome}"
    );
    page.expect_console_errors(&["401"]).await;
    page.escape_dialog().await;
    page.expect_dialog_cleared(
        "Escape to close the dialog and its close event to run",
        "Escape clears the secret too",
    )
    .await;
    let created = page.row_named(typed).await;
    assert_eq!(created["cells"], json!(8));
    page.assert_hostile_markup_inert().await;
    assert_ne!(page.client.title().await.unwrap(), "pwned");

    // The API refuses a name with a bidirectional override; the page
    // says why, as text.
    page.create("evil\u{202e}txt.exe").await;
    let error = page.error_text().await;
    assert!(!error.is_empty());
    assert_eq!(
        page.js("return document.getElementById('error').children.length")
            .await,
        json!(0)
    );
    page.expect_console_errors(&["400", "422"]).await;
    page.clear_name().await;

    // The browser enforces the policy, as the page sees it. (Scripts
    // run through WebDriver may eval; the page's own may not, which
    // nothing here can show.)
    assert_policy_enforced(&page).await;

    // Revoking the key signed in with: warned, then signed out.
    let own = page.row_named("bootstrap").await;
    page.revoke_row(own["id"].as_str().unwrap()).await;
    assert!(!page.hidden("revoke-self").await);
    page.confirm_revoke().await;
    page.expect_sign_in("the sign-in box").await;
    assert_eq!(page.session_key().await, Value::Null);
    assert!(page.text("#status").await.contains("signed out"));
    page.expect_console_errors(&[]).await;

    // A managing key revoked elsewhere: the next call is refused, the page
    // says so and forgets the key.
    let (second, record) = running.key("second admin").await;
    page.sign_in(&second).await;
    page.expect_signed_in("the signed-in page").await;
    running
        .keys
        .revoke(&OwnerId::new("acct_1"), &record.id)
        .await
        .unwrap();
    page.click("#refresh-button").await;
    let error = page.error_text().await;
    assert!(error.contains("refused"), "{error}");
    page.expect_sign_in("the sign-in box").await;
    assert_eq!(page.session_key().await, Value::Null);
    assert_eq!(page.row_count().await, 0);
    page.expect_console_errors(&["401"]).await;
}

/// Markup from strings, an inline script, inline styles, an image and a
/// fetch from elsewhere: each refused by the page's policy, and reported.
async fn assert_policy_enforced(page: &SettingsPage) {
    let probes = page
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const seen = new Set();
             document.addEventListener('securitypolicyviolation',
                 (e) => seen.add(e.effectiveDirective));
             const out = {};
             try {document.createElement('div').innerHTML = '<b>x</b>'; out.html = 'parsed'; }
             catch (e) {out.html = e.name; }
             const script = document.createElement('script');
             try {
                 script.textContent = 'window.__inline = 1';
                 document.body.append(script);
                 out.script = 'appended';
             }
             catch (e) {out.script = e.name; }
             const style = document.createElement('style');
             style.textContent = 'body {background-color: rgb(255, 0, 0) }';
             document.head.append(style);
             const styled = document.createElement('p');
             styled.setAttribute('style', 'color: rgb(255, 0, 0)');
             document.body.append(styled);
             const img = document.createElement('img');
             img.src = 'http://127.0.0.1:9/x.png';
             document.body.append(img);
             fetch('http://127.0.0.1:9/').catch(() => {});
             setTimeout(() => {
                 out.inline = String(window.__inline);
                 out.background = getComputedStyle(document.body).backgroundColor;
                 out.color = getComputedStyle(styled).color;
                 out.violations = [...seen].sort();
                 style.remove(); styled.remove(); img.remove();
                 done(out);
             }, 500);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        probes["html"],
        json!("TypeError"),
        "Trusted Types: {probes}"
    );
    assert_eq!(
        probes["script"],
        json!("TypeError"),
        "Trusted Types: {probes}"
    );
    assert_eq!(probes["inline"], json!("undefined"), "{probes}");
    assert_ne!(
        probes["background"],
        json!("rgb(255, 0, 0)"),
        "an inline style element applied: {probes}"
    );
    assert_ne!(
        probes["color"],
        json!("rgb(255, 0, 0)"),
        "a style attribute applied: {probes}"
    );
    for directive in [
        "connect-src",
        "img-src",
        "require-trusted-types-for",
        "style-src-attr",
        "style-src-elem",
    ] {
        assert!(
            probes["violations"]
                .as_array()
                .unwrap()
                .contains(&json!(directive)),
            "no {directive} violation: {probes}"
        );
    }
    // Drains what the probes made Chromium log.
    let _ = page.console_errors().await;
}

// ------------------------------------------------------------ the snippets

/// The show-once dialog's snippets: each client's own configuration for
/// `mcp` with `secret`, in the syntax its documentation gives, the JSON
/// ones valid JSON; the curl one, run, reaches the MCP server.
async fn assert_snippets(page: &SettingsPage, mcp: &str, secret: &str) {
    let snippets = page.snippets().await;
    let bearer = format!("Bearer {secret}");
    let json = |name: &str| {
        serde_json::from_str::<Value>(&snippets[name])
            .unwrap_or_else(|error| panic!("{name} is not JSON: {error}\n{}", snippets[name]))
    };
    assert_eq!(
        snippets["claude-code"],
        format!(
            "claude mcp add --transport http mcp-proxy {mcp} --header \"Authorization: {bearer}\""
        )
    );
    assert_eq!(
        json("claude-desktop"),
        json!({"mcpServers": {"mcp-proxy": {
            "command": "npx",
            // mcp-remote expands ${AUTH_HEADER} from env itself.
            "args": ["mcp-remote", mcp, "--header", "Authorization:${AUTH_HEADER}"],
            "env": {"AUTH_HEADER": bearer},
        }}})
    );
    assert_eq!(
        snippets["codex"],
        format!(
            "[mcp_servers.mcp-proxy]\nurl = \"{mcp}\"\nbearer_token_env_var = \"MCP_PROXY_API_KEY\""
        )
    );
    assert_eq!(
        snippets["codex-env"],
        format!("export MCP_PROXY_API_KEY={secret}")
    );
    assert_eq!(
        json("cursor"),
        json!({"mcpServers": {"mcp-proxy": {"url": mcp, "headers": {"Authorization": bearer}}}})
    );
    assert_eq!(
        json("vscode"),
        json!({"servers": {"mcp-proxy": {
            "type": "http", "url": mcp, "headers": {"Authorization": bearer},
        }}})
    );
    assert_eq!(page.text("#setup-url").await, mcp);

    // The curl command, as a user would paste it into a POSIX shell.
    let curl = &snippets["curl"];
    assert!(curl.starts_with(&format!("curl -sS {mcp} \\\n")), "{curl}");
    let ran = tokio::process::Command::new("sh")
        .args(["-c", curl])
        .output()
        .await;
    match ran {
        Ok(output) if output.status.code() == Some(127) => {
            eprintln!("curl is not installed: its snippet was not run");
        }
        Ok(output) => {
            let answer = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success()
                    && answer.contains("\"serverInfo\"")
                    && answer.contains("demo-upstream"),
                "the curl snippet: {}\n{answer}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Err(error) => panic!("sh did not run: {error}"),
    }
}

// ------------------------------------------------------------------ OAuth

/// The proxy accepting the access tokens of a real authorization server
/// (oidc-provider) for its `/mcp`: the listener is bound first, so that the
/// authorization server knows the resource. `None` without Node (said on
/// stderr; a failure with `REQUIRE_OAUTH=1`).
async fn with_authorization_server() -> Option<(Running, AuthorizationServer)> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let authorization =
        AuthorizationServer::start(&[&format!("{url}/mcp")], "mcp keys:manage").await?;
    let running = Running::with(Options {
        listener: Some(listener),
        protections: Protections {
            oauth_issuer: Some(authorization.issuer().to_owned()),
            ..Protections::default()
        },
        ..Options::default()
    })
    .await;
    assert_eq!(running.url, url);
    Some((running, authorization))
}

/// "Sign in with OAuth" at a real authorization server: the page registers
/// itself, sends the user to its login and consent pages, and comes back
/// signed in as that user, with no code, token or state left in the URL,
/// the history entry or localStorage (which keeps the client id alone).
/// The user creates a key (owned by their login), sees the snippets with
/// this server's URL and the key, tests the connection, and closes the
/// dialog with nothing left of the secret. A token the API then refuses
/// signs out, saying so. On the same server, rmcp and the Python SDK use
/// that key as a header without any OAuth step, while the SDK's OAuth
/// client signs in by itself. The same page still signs in with a pasted
/// key; and signing in with OAuth again reuses the registered client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_oauth_create_a_key_and_test_it() {
    with_page("sign_in_with_oauth_create_a_key_and_test_it", oauth_journey).await;
}

async fn oauth_journey(browser: Browser) {
    let Some((running, authorization)) = with_authorization_server().await else {
        return;
    };
    let issuer = authorization.issuer();
    let (bootstrap, _) = running.key("bootstrap").await;
    let url = format!("{}{}", running.url, settings::PATH);
    let page = SettingsPage::open(browser, &url).await;
    assert!(page.offers_oauth().await, "the OAuth sign-in is offered");
    page.screenshot("settings-api-keys-oauth-sign-in", false)
        .await;
    assert_eq!(
        page.text("#oauth-issuer").await,
        issuer.trim_start_matches("http://"),
        "the page says where the user signs in"
    );
    assert_eq!(
        page.active_id().await,
        "signin-key",
        "the key field keeps focus"
    );

    // Out to the authorization server's pages, and back signed in.
    page.sign_in_with_oauth(issuer).await;
    page.log_in_and_consent(issuer, "ada").await;
    page.expect_signed_in("signed in through OAuth").await;
    assert_eq!(page.error_text_now().await, "");
    assert_eq!(
        page.text("#session-label").await,
        "Signed in through OAuth as"
    );
    assert_eq!(page.text("#session-prefix").await, "ada");
    assert_eq!(page.row_count().await, 0, "ada has no keys yet");
    assert_eq!(page.active_id().await, "create-name");
    let token = page.session_key().await.as_str().unwrap().to_owned();
    assert!(token.starts_with("eyJ"), "a JWT access token: {token}");

    // What is left of the sign-in: the token in sessionStorage beside who
    // signed in, the client id in localStorage; no code or state anywhere.
    let url_now = page.client.current_url().await.unwrap();
    assert_eq!(url_now.as_str(), url, "the URL lost the code and state");
    assert_eq!(page.js("return history.state").await, Value::Null);
    // The navigation's own record still has the URL the browser was sent
    // to: the code it carried, to look for.
    let landed = page
        .js("return performance.getEntriesByType('navigation')[0].name")
        .await;
    let landed = url::Url::parse(landed.as_str().unwrap()).unwrap();
    let code = landed
        .query_pairs()
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| panic!("the page was opened with a code: {landed}"));
    let storage = page.storage().await;
    assert_eq!(
        storage["session"],
        json!([
            [STORAGE_KEY, token],
            [
                OAUTH_SESSION_KEY,
                json!({"issuer": issuer, "user": "ada"}).to_string()
            ],
        ]),
        "sessionStorage: the token and who signed in, no sign-in under way"
    );
    let local = storage["local"].as_array().unwrap();
    assert_eq!(local.len(), 1, "localStorage: {storage}");
    assert_eq!(local[0][0], json!(OAUTH_CLIENT_KEY));
    let client: Value = serde_json::from_str(local[0][1].as_str().unwrap()).unwrap();
    assert_eq!(
        client.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["client_id", "issuer", "redirect_uri"],
        "the client id alone: {client}"
    );
    assert_eq!(client["issuer"], json!(issuer));
    assert_eq!(client["redirect_uri"], json!(url));
    let html = page.js("return document.documentElement.outerHTML").await;
    for (what, secret) in [("code", &code), ("token", &token)] {
        assert!(
            !local[0][1].as_str().unwrap().contains(secret.as_str()),
            "the {what} is in localStorage"
        );
        assert!(
            !html.as_str().unwrap().contains(secret.as_str()),
            "the {what} is in the page"
        );
    }
    assert!(
        !storage.to_string().contains(&code),
        "the code is stored: {storage}"
    );

    // A key, made by ada: its snippets, its connection test.
    page.create("Laptop").await;
    page.expect_secret_dialog().await;
    let secret = page.secret_value().await.as_str().unwrap().to_owned();
    assert!(secret.starts_with("bmc_"), "{secret}");
    assert_snippets(&page, &running.mcp(), &secret).await;
    let before = running.upstream.count();
    let outcome = page.test_connection().await;
    assert!(
        outcome.starts_with(&format!(
            "Connected to demo-upstream {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{outcome}"
    );
    let seen: Vec<_> = running.upstream.all()[before..]
        .iter()
        .map(|seen| seen.method.clone())
        .collect();
    assert_eq!(
        seen,
        [http::Method::POST, http::Method::DELETE],
        "initialize, then the session ended"
    );
    page.click("#secret-done").await;
    page.expect_dialog_cleared(
        "the dialog to close and its close event to run",
        "the secret leaves the page with the dialog",
    )
    .await;
    let html = page.js("return document.documentElement.outerHTML").await;
    assert!(
        !html.as_str().unwrap().contains(&secret),
        "the secret is still in the page"
    );
    page.assert_not_kept(
        &secret,
        &[STORAGE_KEY, OAUTH_SESSION_KEY],
        &[OAUTH_CLIENT_KEY],
    )
    .await;

    // On the same server, the key the page made in the clients people set
    // up by hand: the Python SDK with the key as its header and rmcp, never
    // sent into OAuth; and beside them the Python SDK's own OAuth client,
    // signing in by itself.
    let mcp = running.mcp();
    let client = common::connect(&mcp, &secret).await.unwrap();
    assert_eq!(common::whoami(&client).await.owner, "ada");
    client.cancel().await.unwrap();
    if common::python::available() {
        let by_key =
            common::python::run("key_client.py", &[&mcp, "--tool", "whoami"], Some(&secret))
                .await
                .unwrap();
        let who: Value = serde_json::from_str(by_key["result"].as_str().unwrap()).unwrap();
        assert_eq!(
            (who["credential"].as_str(), who["owner"].as_str()),
            (Some("api_key"), Some("ada"))
        );
        let by_oauth = common::python::run(
            "oauth_client.py",
            &[&mcp, "grace", "--tool", "whoami"],
            None,
        )
        .await
        .unwrap();
        let who: Value = serde_json::from_str(by_oauth["result"].as_str().unwrap()).unwrap();
        assert_eq!(
            (who["credential"].as_str(), who["owner"].as_str()),
            (Some("access_token"), Some("grace"))
        );
    }
    running.upstream.assert_no_authorization();

    // The key is ada's, with the scope her sign-in had.
    let row = page.row_named("Laptop").await;
    assert_eq!(row["access"], json!("keys:manage"), "{row}");
    let id = KeyId::from_str(row["id"].as_str().unwrap()).unwrap();
    let record = running.keys.get(&OwnerId::new("ada"), &id).await.unwrap();
    assert_eq!(record.owner, OwnerId::new("ada"));
    assert_eq!(record.name, "Laptop");
    assert!(
        running
            .keys
            .get(&OwnerId::new("acct_1"), &id)
            .await
            .is_err(),
        "not the bootstrap owner's"
    );
    page.expect_console_errors_beside(issuer, &[]).await;

    // The token refused by the API (as when it expires): signed out, and told.
    page.js_with(
        "const t = sessionStorage.getItem(arguments[0]);
         sessionStorage.setItem(arguments[0], t.slice(0, -4) + (t.endsWith('AAAA') ? 'BBBB' : 'AAAA'));",
        vec![json!(STORAGE_KEY)],
    )
    .await;
    page.click("#refresh-button").await;
    let error = page.error_text().await;
    assert!(
        error.contains("OAuth sign-in was refused") && error.contains("Sign in again"),
        "{error}"
    );
    page.expect_sign_in("the sign-in box").await;
    page.assert_not_kept(&token, &[], &[OAUTH_CLIENT_KEY]).await;
    page.expect_console_errors_beside(issuer, &["401"]).await;

    // A pasted managing key still signs in, as itself.
    page.sign_in(&bootstrap).await;
    page.expect_signed_in("signed in with the key").await;
    assert_eq!(page.text("#session-label").await, "Signed in with");
    assert!(
        page.row_named("bootstrap").await["name"]
            .as_str()
            .unwrap()
            .contains("this session")
    );
    assert_eq!(page.row_count().await, 1, "acct_1's keys, not ada's");
    page.assert_not_kept(&secret, &[STORAGE_KEY], &[OAUTH_CLIENT_KEY])
        .await;
    page.sign_out().await;
    page.expect_sign_in("the sign-in box").await;

    // OAuth again: the registered client is reused and the authorization
    // server remembers ada, so the browser comes straight back.
    page.click("#oauth-button").await;
    page.wait_back("the page after a second sign-in").await;
    page.expect_signed_in("signed in through OAuth again").await;
    assert_eq!(page.text("#session-prefix").await, "ada");
    assert_eq!(page.row_named("Laptop").await["id"], row["id"]);
    let again = page.storage().await;
    assert_eq!(again["local"], storage["local"], "the same client id");
    page.expect_console_errors_beside(issuer, &[]).await;
    page.screenshot("settings-api-keys-oauth", false).await;
}

/// What the page does with answers of the authorization server that must
/// not sign anyone in: a cancelled sign-in (`access_denied`) and a hostile
/// `error_description` are told as text; an answer whose state differs
/// from the sign-in the tab started, one replayed, and one naming another
/// issuer are refused, said so, and redeem nothing. The URL loses the
/// answer each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_answers_that_sign_nobody_in() {
    with_page("oauth_answers_that_sign_nobody_in", oauth_refusals).await;
}

async fn oauth_refusals(browser: Browser) {
    let Some((running, authorization)) = with_authorization_server().await else {
        return;
    };
    let issuer = authorization.issuer();
    let url = format!("{}{}", running.url, settings::PATH);
    let page = SettingsPage::open(browser, &url).await;
    assert!(page.offers_oauth().await);
    let signed_out = |what: &'static str| {
        let page = &page;
        async move {
            assert!(page.hidden("app").await, "{what}: signed in");
            assert_eq!(page.session_key().await, Value::Null, "{what}");
            let url_now = page.client.current_url().await.unwrap();
            assert_eq!(url_now.query(), None, "{what}: {url_now}");
            let storage = page.storage().await;
            assert!(
                !storage.to_string().contains("mcp-proxy.oauth-pending"),
                "{what}: the sign-in is still under way: {storage}"
            );
        }
    };

    // Cancel at the authorization server's login page.
    page.sign_in_with_oauth(issuer).await;
    page.cancel_at_provider().await;
    let error = page.error_text().await;
    assert!(
        error.contains("access_denied") && error.contains("End-User aborted interaction"),
        "{error}"
    );
    signed_out("cancelled").await;

    // An answer with another state than the sign-in under way.
    page.sign_in_with_oauth(issuer).await;
    page.abandon_at_provider().await;
    let state = page.pending_state().await;
    let forged = format!("?code=forged-code&state=not-{state}&iss={issuer}");
    page.open_callback(&forged).await;
    let error = page.error_text().await;
    assert!(
        error.contains("does not match")
            && error.contains("state")
            && error.contains("nothing was signed in"),
        "{error}"
    );
    signed_out("a wrong state").await;

    // The right state with a hostile error_description: its text.
    page.sign_in_with_oauth(issuer).await;
    page.abandon_at_provider().await;
    let state = page.pending_state().await;
    let hostile = "<img src=x onerror=\"window.__pwned=1\"><b>bold</b>";
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("error", "access_denied")
        .append_pair("error_description", hostile)
        .append_pair("state", &state)
        .append_pair("iss", issuer)
        .finish();
    page.open_callback(&format!("?{query}")).await;
    let error = page.error_text().await;
    assert!(
        error.contains("access_denied") && error.contains(hostile),
        "{error}"
    );
    assert_eq!(
        page.js(
            "return [document.getElementById('error').children.length, String(window.__pwned)]"
        )
        .await,
        json!([0, "undefined"])
    );
    signed_out("a refusal").await;

    // The same answer again: this tab has no sign-in under way any more.
    page.open_callback(&format!("?{query}")).await;
    let error = page.error_text().await;
    assert!(error.contains("not asked for by this tab"), "{error}");
    signed_out("a replay").await;

    // The right state, from another issuer (RFC 9207).
    page.sign_in_with_oauth(issuer).await;
    page.abandon_at_provider().await;
    let state = page.pending_state().await;
    page.open_callback(&format!(
        "?code=forged-code&state={state}&iss=http%3A%2F%2F127.0.0.1%3A9"
    ))
    .await;
    let error = page.error_text().await;
    assert!(error.contains("did not come from"), "{error}");
    signed_out("another issuer").await;

    // None of them reached the token endpoint or signed in: a real sign-in
    // still works after them.
    page.sign_in_with_oauth(issuer).await;
    page.log_in_and_consent(issuer, "grace").await;
    page.expect_signed_in("signed in after the refusals").await;
    assert_eq!(page.text("#session-prefix").await, "grace");
    page.expect_console_errors_beside(issuer, &[]).await;
}
