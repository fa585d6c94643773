//! The Settings → API Keys page, in a real browser: Debian's Chromium,
//! headless, driven through chromedriver over WebDriver. The page runs
//! under its Content-Security-Policy, against the example's management API
//! over SQLite, exactly as served.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` the browser tests
//! say so on stderr and pass; with `REQUIRE_BROWSER=1` they fail instead.
//! `BROWSER_TEST_CHROMIUM` and `BROWSER_TEST_CHROMEDRIVER` name other
//! binaries. chromedriver's log goes to the target directory.
//! `UPDATE_SCREENSHOTS=1` writes the page's screenshot to
//! `docs/settings-api-keys.png`; otherwise it goes to the target directory.

mod common;

use std::future::Future;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::sync::Once;
use std::time::{Duration, Instant};

use common::{Running, http};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use http::StatusCode;
use mcp_proxy::settings;
use serde_json::{Value, json};
use tower_api_keys::NewKey;
use tower_api_keys::record::{KeyId, OwnerId, Scopes};

/// Debian's Chromium; `BROWSER_TEST_CHROMIUM` names another.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver; `BROWSER_TEST_CHROMEDRIVER` names another.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where the page keeps the managing key, in `sessionStorage`.
const STORAGE_KEY: &str = "mcp-proxy.managing-key";
/// How long the page is given to show what a step expects.
const PATIENCE: Duration = Duration::from_secs(10);
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

/// Sign in with the bootstrap key; create "Claude Desktop" expiring in 30
/// days; the show-once dialog's secret works; after a reload the row shows
/// it with its last use; revoke it through the confirmation, and the key is
/// refused. Nothing secret lands in the URL or in `localStorage`, and the
/// page logs no error under its CSP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_use_and_revoke_a_key_in_the_browser() {
    with_browser(
        "create_use_and_revoke_a_key_in_the_browser",
        create_use_and_revoke,
    )
    .await;
}

async fn create_use_and_revoke(browser: Browser) {
    let running = Running::start().await;
    let http = http();
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
    let page = format!("{}{}", running.url, settings::PATH);

    let response = http.get(&page).send().await.unwrap();
    assert_security_headers(response.headers(), "the page");

    browser.client.goto(&page).await.unwrap();
    browser
        .wait_for(
            "the sign-in box",
            "return !document.getElementById('signin').hidden",
        )
        .await;
    assert_eq!(
        browser.active_id().await,
        "signin-key",
        "focus starts in the key field"
    );
    assert!(browser.hidden("app").await);

    // A wrong key is refused, said in the alert region, and not kept.
    browser
        .type_into("#signin-key", "bmc_notAKeyAtAll0000000000000000")
        .await;
    browser.click("#signin-button").await;
    let error = browser.error_text().await;
    assert!(error.contains("refused"), "{error}");
    assert_eq!(browser.session_key().await, Value::Null);
    assert_eq!(
        browser
            .js("return document.getElementById('error').getAttribute('role')")
            .await,
        json!("alert")
    );
    browser.expect_console_errors(&["401"]).await;

    // The bootstrap key signs in; it is kept in sessionStorage only.
    browser.find("#signin-key").await.clear().await.unwrap();
    browser.type_into("#signin-key", &bootstrap).await;
    browser.click("#signin-button").await;
    browser
        .wait_for(
            "the signed-in page",
            "return !document.getElementById('app').hidden",
        )
        .await;
    assert_eq!(browser.session_key().await, json!(bootstrap));
    assert_eq!(browser.error_text_now().await, "");
    assert_eq!(
        browser
            .js("return document.getElementById('signin-key').value")
            .await,
        json!(""),
        "the key field is emptied once the key is kept"
    );
    assert!(
        browser
            .text("#session-prefix")
            .await
            .starts_with(&bootstrap[..12]),
        "the header names the key signed in with"
    );
    let own = browser.row_named("bootstrap").await;
    assert!(
        own["name"].as_str().unwrap().contains("this session"),
        "{own}"
    );
    assert_eq!(browser.active_id().await, "create-name");
    assert_eq!(
        browser.row_named("Work Laptop").await["status"],
        json!("expired")
    );
    assert_eq!(
        browser.row_named("CI deploy").await["access"],
        json!("projects:read")
    );

    // Create "Claude Desktop", expiring at the end of the day 30 days ahead.
    let day = (chrono::Utc::now() + chrono::TimeDelta::days(30)).date_naive();
    browser.type_into("#create-name", "Claude Desktop").await;
    browser
        .set_date("#create-expires", &day.format("%Y-%m-%d").to_string())
        .await;
    browser.click("#create-button").await;
    browser
        .wait_for(
            "the show-once dialog",
            "return document.getElementById('secret-dialog').open",
        )
        .await;
    let secret = browser
        .js("return document.getElementById('secret-value').value")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("bmc_"), "{secret}");
    assert_eq!(
        browser.active_id().await,
        "secret-value",
        "focus moves into the dialog"
    );
    assert_eq!(
        browser
            .js("return document.getElementById('secret-value').readOnly")
            .await,
        json!(true)
    );
    assert_eq!(browser.text("#secret-name").await, "Claude Desktop");
    let warning = browser.text("#secret-warning").await;
    assert!(warning.contains("Copy this key now"), "{warning}");
    assert!(warning.contains("won't be shown again"), "{warning}");
    browser.screenshot("settings-api-keys-created", false).await;
    browser.click("#secret-copy").await;
    let copied = browser
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
    assert_secret_not_kept(&browser, &secret).await;
    browser.click("#secret-done").await;
    browser
        .wait_for(
            // The dialog's `close` event, which clears the secret, is
            // dispatched a moment after it closes.
            "the dialog to close and its close event to run",
            "return !document.getElementById('secret-dialog').open \
             && document.getElementById('secret-value').value === ''",
        )
        .await;
    assert_eq!(
        browser
            .js("return document.getElementById('secret-value').value")
            .await,
        json!(""),
        "the secret leaves the page with the dialog"
    );
    browser
        .wait_for(
            "focus back in the form",
            "return ['create-name', 'create-button'].includes(document.activeElement.id)",
        )
        .await;
    assert_secret_not_kept(&browser, &secret).await;
    let html = browser
        .js("return document.documentElement.outerHTML")
        .await;
    assert!(
        !html.as_str().unwrap().contains(&secret),
        "the secret is still in the page"
    );

    // The library agrees: the name, and the end of that day in UTC.
    let row = browser.row_named("Claude Desktop").await;
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
    let projects = http
        .get(format!("{}/api/v2/projects", running.url))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(projects.status(), StatusCode::OK);

    // After reloads (signed in still, from sessionStorage), the row
    // shows the key and, once the batch is written, its last use.
    let started = Instant::now();
    let row = loop {
        browser.client.refresh().await.unwrap();
        browser
            .wait_for(
                "the signed-in page after a reload",
                "return !document.getElementById('app').hidden",
            )
            .await;
        let row = browser.row_named("Claude Desktop").await;
        if row["lastUsed"] != json!("never") {
            break row;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the last use did not show within 20 s: {row}"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    };
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
    browser
        .click_in_row(row["id"].as_str().unwrap(), ".revoke")
        .await;
    browser
        .wait_for(
            "the confirmation",
            "return document.getElementById('revoke-dialog').open",
        )
        .await;
    let text = browser.text("#revoke-text").await;
    assert!(text.contains("cannot be undone"), "{text}");
    assert!(text.contains("Claude Desktop"), "{text}");
    assert!(browser.hidden("revoke-self").await);
    assert_eq!(
        browser.active_id().await,
        "revoke-cancel",
        "the safe choice has focus"
    );
    browser
        .find("#revoke-cancel")
        .await
        .send_keys(&Key::Escape.to_string())
        .await
        .unwrap();
    browser
        .wait_for(
            "Escape to close the confirmation",
            "return !document.getElementById('revoke-dialog').open",
        )
        .await;
    browser
        .wait_for(
            "focus back on the revoke button",
            "return document.activeElement.classList.contains('revoke')",
        )
        .await;
    assert_eq!(
        browser.row_named("Claude Desktop").await["status"],
        json!("active")
    );
    let still = http
        .get(format!("{}/api/v2/projects", running.url))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(
        still.status(),
        StatusCode::OK,
        "cancelled: the key still works"
    );

    // Keyboard only: Enter on the focused revoke button, then confirm.
    browser
        .active()
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    browser
        .wait_for(
            "the confirmation",
            "return document.getElementById('revoke-dialog').open",
        )
        .await;
    browser.click("#confirm-revoke").await;
    browser
        .wait_for(
            "the row to show revoked",
            &format!(
                "const r = document.querySelector('tr[data-key-id=\"{}\"] .status .badge'); \
                 return r && r.textContent === 'revoked' && r.classList.contains('badge-revoked')",
                row["id"].as_str().unwrap()
            ),
        )
        .await;
    let revoked = browser.row_named("Claude Desktop").await;
    assert_eq!(revoked["hasRevoke"], json!(false), "{revoked}");
    browser
        .wait_for(
            "focus on the revoked row",
            "return document.activeElement.tagName === 'TR'",
        )
        .await;
    let status = browser.text("#status").await;
    assert!(status.contains("Revoked"), "{status}");
    let refused = http
        .get(format!("{}/api/v2/projects", running.url))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
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
    assert_secret_not_kept(&browser, &secret).await;
    browser.expect_console_errors(&[]).await;
    browser.screenshot("settings-api-keys", true).await;

    // Sign out: the managing key leaves the tab.
    browser.click("#signout-button").await;
    browser
        .wait_for(
            "the sign-in box",
            "return !document.getElementById('signin').hidden",
        )
        .await;
    assert_eq!(browser.session_key().await, Value::Null);
    assert_eq!(
        browser
            .js("return document.querySelectorAll('#keys-body tr').length")
            .await,
        json!(0)
    );
    browser.client.refresh().await.unwrap();
    browser
        .wait_for(
            "the sign-in box after a reload",
            "return !document.getElementById('signin').hidden",
        )
        .await;
    assert!(browser.hidden("app").await);
    browser.expect_console_errors(&[]).await;
}

/// Key names that are HTML, script or template syntax show as their text
/// (created through the library, and through the page itself); pages load
/// with "Load more"; an expired key has its badge; a key that may not
/// manage keys is told so; revoking the key signed in with signs out. And
/// the browser enforces the policy: no eval, no inline script, no HTML from
/// strings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_stay_text_and_pages_load_more() {
    with_browser(
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
    let page = format!("{}{}", running.url, settings::PATH);
    browser.client.goto(&page).await.unwrap();
    browser
        .wait_for(
            "the sign-in box",
            "return !document.getElementById('signin').hidden",
        )
        .await;

    // A key that may not manage keys: told why, not kept.
    browser.type_into("#signin-key", &reader).await;
    browser.click("#signin-button").await;
    let error = browser.error_text().await;
    assert!(error.contains("may not manage"), "{error}");
    assert_eq!(browser.session_key().await, Value::Null);
    browser.expect_console_errors(&["403"]).await;

    browser.find("#signin-key").await.clear().await.unwrap();
    browser.type_into("#signin-key", &bootstrap).await;
    browser
        .find("#signin-key")
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    browser
        .wait_for(
            "the signed-in page",
            "return !document.getElementById('app').hidden",
        )
        .await;
    assert_eq!(browser.row_count().await, 20, "the first page");
    assert!(!browser.hidden("load-more").await);
    browser.click("#load-more").await;
    browser
        .wait_for(
            "the second page",
            &format!(
                "return document.querySelectorAll('#keys-body tr[data-key-id]').length === {total}"
            ),
        )
        .await;
    browser
        .wait_for(
            "Load more to go",
            "return document.getElementById('load-more').hidden",
        )
        .await;
    let ids = browser
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
        let row = browser.row_named(name).await;
        assert_eq!(row["cells"], json!(8), "{name}: {row}");
        assert_eq!(row["status"], json!("active"));
    }
    assert_hostile_markup_inert(&browser).await;

    // The expired key: its badge, and no revoke button.
    let expired = browser.row_named("old laptop").await;
    assert_eq!(expired["status"], json!("expired"), "{expired}");
    assert!(
        expired["statusClass"]
            .as_str()
            .unwrap()
            .contains("badge-expired")
    );
    assert_eq!(expired["hasRevoke"], json!(false));
    let reader_row = browser.row_named("read only").await;
    assert_eq!(reader_row["access"], json!("projects:read"));
    assert_eq!(
        browser.row_named("filler 00").await["access"],
        json!("full access")
    );

    // A hostile name typed into the page: shown as text in the dialog
    // and the table; the API's own error shown as text too.
    let typed = "\"><script>document.title='pwned'</script><b>x</b>";
    browser.type_into("#create-name", typed).await;
    browser.click("#create-button").await;
    browser
        .wait_for(
            "the show-once dialog",
            "return document.getElementById('secret-dialog').open",
        )
        .await;
    assert_eq!(
        browser
            .js("return document.getElementById('secret-name').textContent")
            .await,
        json!(typed)
    );
    assert_eq!(
        browser
            .js("return document.getElementById('secret-name').children.length")
            .await,
        json!(0)
    );
    browser
        .find("#secret-value")
        .await
        .send_keys(&Key::Escape.to_string())
        .await
        .unwrap();
    browser
        .wait_for(
            "Escape to close the dialog and its close event to run",
            "return !document.getElementById('secret-dialog').open \
             && document.getElementById('secret-value').value === ''",
        )
        .await;
    assert_eq!(
        browser
            .js("return document.getElementById('secret-value').value")
            .await,
        json!(""),
        "Escape clears the secret too"
    );
    let created = browser.row_named(typed).await;
    assert_eq!(created["cells"], json!(8));
    assert_hostile_markup_inert(&browser).await;
    assert_ne!(browser.client.title().await.unwrap(), "pwned");

    // The API refuses a name with a bidirectional override; the page
    // says why, as text.
    browser
        .type_into("#create-name", "evil\u{202e}txt.exe")
        .await;
    browser.click("#create-button").await;
    let error = browser.error_text().await;
    assert!(!error.is_empty());
    assert_eq!(
        browser
            .js("return document.getElementById('error').children.length")
            .await,
        json!(0)
    );
    browser.expect_console_errors(&["400", "422"]).await;
    browser.find("#create-name").await.clear().await.unwrap();

    // The browser enforces the policy, as the page sees it. (Scripts
    // run through WebDriver may eval; the page's own may not, which
    // nothing here can show.)
    let probes = browser
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
    let _ = browser.console_errors().await;

    // Revoking the key signed in with: warned, then signed out.
    let own = browser.row_named("bootstrap").await;
    browser
        .click_in_row(own["id"].as_str().unwrap(), ".revoke")
        .await;
    browser
        .wait_for(
            "the confirmation",
            "return document.getElementById('revoke-dialog').open",
        )
        .await;
    assert!(!browser.hidden("revoke-self").await);
    browser.click("#confirm-revoke").await;
    browser
        .wait_for(
            "the sign-in box",
            "return !document.getElementById('signin').hidden",
        )
        .await;
    assert_eq!(browser.session_key().await, Value::Null);
    assert!(browser.text("#status").await.contains("signed out"));
    browser.expect_console_errors(&[]).await;

    // A managing key revoked elsewhere: the next call is refused, the page
    // says so and forgets the key.
    let (second, record) = running.key("second admin").await;
    browser.type_into("#signin-key", &second).await;
    browser.click("#signin-button").await;
    browser
        .wait_for(
            "the signed-in page",
            "return !document.getElementById('app').hidden",
        )
        .await;
    running
        .keys
        .revoke(&OwnerId::new("acct_1"), &record.id)
        .await
        .unwrap();
    browser.click("#refresh-button").await;
    let error = browser.error_text().await;
    assert!(error.contains("refused"), "{error}");
    browser
        .wait_for(
            "the sign-in box",
            "return !document.getElementById('signin').hidden",
        )
        .await;
    assert_eq!(browser.session_key().await, Value::Null);
    assert_eq!(browser.row_count().await, 0);
    browser.expect_console_errors(&["401"]).await;
}

/// The new key's secret is in no URL, no storage but the managing key's.
async fn assert_secret_not_kept(browser: &Browser, secret: &str) {
    let url = browser.client.current_url().await.unwrap();
    assert!(!url.as_str().contains(secret), "the secret is in the URL");
    assert!(!url.as_str().contains("bmc_"), "a key is in the URL: {url}");
    assert_eq!(url.query(), None, "{url}");
    let storage = browser
        .js(
            "const all = (s) => Object.keys(s).map(k => [k, s.getItem(k)]);
             return {local: all(localStorage), session: all(sessionStorage) };",
        )
        .await;
    assert_eq!(storage["local"], json!([]), "nothing in localStorage");
    let session = storage["session"].as_array().unwrap();
    assert_eq!(session.len(), 1, "{storage}");
    assert_eq!(session[0][0], json!(STORAGE_KEY));
    assert!(
        !storage.to_string().contains(secret),
        "the new secret is stored"
    );
}

/// No element, handler or script came from a key name.
async fn assert_hostile_markup_inert(browser: &Browser) {
    let found = browser
        .js(
            "return {
                 elements: document.querySelectorAll('#keys-body img, #keys-body script, #keys-body svg, \
                     #keys-body b, #secret-dialog b, #secret-dialog script').length,
                 forged: document.querySelectorAll('tr[data-key-id=\"forged\"]').length,
                 pwned: String(window.__pwned),
                 scripts: [...document.scripts].map(s => s.src),
             };",
        )
        .await;
    assert_eq!(found["elements"], json!(0), "{found}");
    assert_eq!(found["forged"], json!(0), "{found}");
    assert_eq!(found["pwned"], json!("undefined"), "{found}");
    assert_eq!(found["scripts"].as_array().unwrap().len(), 1, "{found}");
    assert!(
        browser.client.get_alert_text().await.is_err(),
        "an alert opened"
    );
}

// ------------------------------------------------------------ the driver

/// The paths of Chromium and chromedriver, or `None` (after a banner on
/// stderr) when either is missing; with `REQUIRE_BROWSER=1`, a panic then.
fn browser_binaries(test: &str) -> Option<(String, String)> {
    let chromium = std::env::var("BROWSER_TEST_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
    let driver = std::env::var("BROWSER_TEST_CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
    if Path::new(&chromium).exists() && Path::new(&driver).exists() {
        return Some((chromium, driver));
    }
    if std::env::var("REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!(
            "REQUIRE_BROWSER=1 but {chromium} or {driver} is missing \
             (apt-get install chromium chromium-driver)"
        );
    }
    static BANNER: Once = Once::new();
    BANNER.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n==================================================================\n\
             SKIPPED: settings page browser tests need chromium and chromedriver\n\
             (apt-get install chromium chromium-driver; REQUIRE_BROWSER=1 fails instead)\n\
             ==================================================================\n"
        );
    });
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test} did not run (no {chromium} or {driver})"
    );
    None
}

/// One browser at a time: the machine is small and each is a handful of
/// processes.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `body` with a fresh headless Chromium; closes the browser and stops
/// chromedriver afterwards, also when `body` panics.
async fn with_browser<B, F>(test: &str, body: B)
where
    B: FnOnce(Browser) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let Some((chromium, chromedriver)) = browser_binaries(test) else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    let driver = Chromedriver::start(&chromedriver, test);
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                "--lang=en-US",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--disable-component-update",
            ],
        }),
    );
    capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL" }));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|error| panic!("no browser session through {}: {error}", driver.url));
    let session = client
        .session_id()
        .await
        .unwrap()
        .expect("a WebDriver session id");
    let browser = Browser {
        client: client.clone(),
        driver_url: driver.url.clone(),
        session,
    };
    let outcome = tokio::spawn(body(browser)).await;
    let _ = client.close().await;
    drop(driver);
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the browser test did not finish: {error}"),
        }
    }
}

/// chromedriver on a free loopback port, killed on drop.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    fn start(path: &str, test: &str) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chromedriver-{test}.log"));
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < PATIENCE,
                "chromedriver did not listen on {port} (log: {})",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The WebDriver session, with the page-reading helpers of these tests.
#[derive(Clone)]
struct Browser {
    client: Client,
    driver_url: String,
    session: String,
}

impl Browser {
    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    async fn js_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// Polls `script` until it returns something truthy; that value.
    async fn wait_for(&self, what: &str, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.js(script).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > PATIENCE {
                let error = self.error_text_now().await;
                let active = self
                    .js("const a = document.activeElement; \
                          return a ? a.outerHTML.slice(0, 200) : null")
                    .await;
                panic!(
                    "waited {PATIENCE:?} for {what}; the page's error region says {error:?}; \
                     focus is on {active}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css}: {error}"))
    }

    async fn active(&self) -> Element {
        self.client.active_element().await.unwrap()
    }

    async fn active_id(&self) -> String {
        self.js("return document.activeElement ? document.activeElement.id : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|error| panic!("click {css}: {error}"));
    }

    async fn click_in_row(&self, id: &str, css: &str) {
        self.click(&format!("tr[data-key-id=\"{id}\"] {css}")).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.find(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|error| panic!("type into {css}: {error}"));
        let value = self
            .js_with(
                "return document.querySelector(arguments[0]).value",
                vec![json!(css)],
            )
            .await;
        assert_eq!(value, json!(text), "what {css} holds after typing");
    }

    /// Types `yyyy-mm-dd` into a date input as an en-US user does
    /// (mm, dd, yyyy); in another locale's order, sets it directly.
    async fn set_date(&self, css: &str, day: &str) {
        let (year, rest) = day.split_once('-').unwrap();
        let (month, date) = rest.split_once('-').unwrap();
        self.find(css)
            .await
            .send_keys(&format!("{month}{date}{year}"))
            .await
            .unwrap();
        let value = self
            .js_with(
                "return document.querySelector(arguments[0]).value",
                vec![json!(css)],
            )
            .await;
        if value != json!(day) {
            // Another locale's field order: set it as a picker would.
            eprintln!("the date field took {value} for {day}: setting it directly");
            self.js_with(
                "const input = document.querySelector(arguments[0]);
                 input.value = arguments[1];
                 input.dispatchEvent(new Event('input', {bubbles: true }));
                 input.dispatchEvent(new Event('change', {bubbles: true }));",
                vec![json!(css), json!(day)],
            )
            .await;
        }
        let value = self
            .js_with(
                "return document.querySelector(arguments[0]).value",
                vec![json!(css)],
            )
            .await;
        assert_eq!(value, json!(day), "the date input");
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn hidden(&self, id: &str) -> bool {
        self.js_with(
            "return document.getElementById(arguments[0]).hidden",
            vec![json!(id)],
        )
        .await
        .as_bool()
        .unwrap()
    }

    async fn session_key(&self) -> Value {
        self.js_with(
            "return sessionStorage.getItem(arguments[0])",
            vec![json!(STORAGE_KEY)],
        )
        .await
    }

    /// Waits for the alert region to say something; what it says.
    async fn error_text(&self) -> String {
        self.wait_for(
            "an error message",
            "return document.getElementById('error').textContent",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
    }

    async fn error_text_now(&self) -> String {
        self.js("return document.getElementById('error').textContent")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn row_count(&self) -> usize {
        self.js("return document.querySelectorAll('#keys-body tr[data-key-id]').length")
            .await
            .as_u64()
            .unwrap() as usize
    }

    /// The row whose name is exactly `name` (its first text node), read
    /// cell by cell; waits for it to appear.
    async fn row_named(&self, name: &str) -> Value {
        let script = "
            const rows = [...document.querySelectorAll('#keys-body tr[data-key-id]')];
            const row = rows.find(r => {
                const cell = r.querySelector('.name');
                return cell && cell.firstChild && cell.firstChild.nodeType === Node.TEXT_NODE
                    && cell.firstChild.textContent === arguments[0];
            });
            if (!row) return null;
            const cell = (c) => row.querySelector('.' + c);
            const time = (c) => cell(c).querySelector('time');
            return {
                id: row.dataset.keyId,
                name: cell('name').textContent,
                prefix: cell('prefix').textContent,
                created: cell('created').textContent,
                createdAt: time('created') && time('created').dateTime,
                lastUsed: cell('last-used').textContent,
                lastUsedTitle: time('last-used') ? time('last-used').title : null,
                expires: cell('expires').textContent,
                expiresAt: time('expires') && time('expires').dateTime,
                access: cell('access').textContent,
                status: cell('status').textContent,
                statusClass: cell('status').querySelector('.badge').className,
                hasRevoke: row.querySelector('.revoke') !== null,
                cells: row.cells.length,
            };";
        let started = Instant::now();
        loop {
            let row = self.js_with(script, vec![json!(name)]).await;
            if !row.is_null() {
                return row;
            }
            if started.elapsed() > PATIENCE {
                let error = self.error_text_now().await;
                panic!("no row named {name:?}; the page's error region says {error:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The console's errors since the last call (Chromium's log of the
    /// page: uncaught exceptions, CSP violations, failed loads).
    async fn console_errors(&self) -> Vec<String> {
        let response = http()
            .post(format!(
                "{}/session/{}/se/log",
                self.driver_url, self.session
            ))
            .json(&json!({"type": "browser" }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "the browser log: {}",
            response.status()
        );
        let log: Value = response.json().await.unwrap();
        log["value"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| entry["level"] == json!("SEVERE"))
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// No console error but the failed loads with one of the `expected`
    /// statuses (a refused key is logged by Chromium as a failed load).
    async fn expect_console_errors(&self, expected: &[&str]) {
        let errors = self.console_errors().await;
        let unexpected: Vec<_> = errors
            .iter()
            .filter(|message| {
                !expected.iter().any(|status| {
                    message.contains("Failed to load resource")
                        && message.contains(&format!("status of {status}"))
                })
            })
            .collect();
        assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
    }

    /// A PNG of the page into the target directory; the `published` one
    /// into `docs/` instead with `UPDATE_SCREENSHOTS=1`.
    async fn screenshot(&self, name: &str, published: bool) {
        // The whole page, not just the first 900 pixels of it.
        let sizes = self
            .js("return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]")
            .await;
        let height = sizes[0].as_u64().unwrap_or(900) + sizes[1].as_u64().unwrap_or(0);
        let height = u32::try_from(height.clamp(900, 2000)).unwrap();
        self.client.set_window_size(1280, height).await.unwrap();
        let png = self.client.screenshot().await.unwrap();
        self.client.set_window_size(1280, 900).await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = if published && std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
        } else {
            PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        };
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        eprintln!("screenshot: {}", path.display());
    }
}
