//! The Settings → API Keys page as its user sees it: sign in (with a key, or
//! through OAuth at the authorization server's own pages), create a key,
//! read the show-once dialog and its setup snippets, revoke a row; and what
//! the page must never keep. Written over the browser harness of
//! `test_support::browser`.
#![allow(unreachable_pub)]

use std::ops::Deref;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::browser::fantoccini::Locator;
use test_support::browser::fantoccini::key::Key;
use test_support::browser::{Browser, PATIENCE, screenshot_path};

/// Where the page keeps the managing key (or access token), in
/// `sessionStorage`.
pub const STORAGE_KEY: &str = "mcp-proxy.managing-key";
/// Beside it after an OAuth sign-in, in `sessionStorage`: who signed in.
pub const OAUTH_SESSION_KEY: &str = "mcp-proxy.oauth-session";
/// The OAuth sign-in under way (state, PKCE verifier), in `sessionStorage`.
pub const OAUTH_PENDING_KEY: &str = "mcp-proxy.oauth-pending";
/// The page's OAuth client id, in `localStorage`: the one thing kept there.
pub const OAUTH_CLIENT_KEY: &str = "mcp-proxy.oauth-client";
/// The setup snippets of the show-once dialog, by the suffix of their id.
pub const SNIPPETS: [&str; 7] = [
    "claude-code",
    "claude-desktop",
    "codex",
    "codex-env",
    "cursor",
    "vscode",
    "curl",
];

/// The page in a browser; the browser's own helpers through `Deref`.
#[derive(Debug)]
pub struct SettingsPage {
    browser: Browser,
    /// Where the page is served.
    pub url: String,
}

impl Deref for SettingsPage {
    type Target = Browser;
    fn deref(&self) -> &Browser {
        &self.browser
    }
}

impl SettingsPage {
    /// Opens `url` and waits for the sign-in box.
    pub async fn open(browser: Browser, url: &str) -> Self {
        let page = Self {
            browser: browser.explain_waits_with(
                "the page's error region says",
                "return document.getElementById('error').textContent",
            ),
            url: url.to_owned(),
        };
        page.client.goto(url).await.unwrap();
        page.expect_sign_in("the sign-in box").await;
        page
    }

    /// Reloads the page.
    pub async fn reload(&self) {
        self.client.refresh().await.unwrap();
    }

    // ------------------------------------------------------------ signing in

    /// Waits for the sign-in box to show (`what` says when).
    pub async fn expect_sign_in(&self, what: &str) {
        self.wait_for(what, "return !document.getElementById('signin').hidden")
            .await;
    }

    /// Waits for the signed-in page to show (`what` says when).
    pub async fn expect_signed_in(&self, what: &str) {
        self.wait_for(what, "return !document.getElementById('app').hidden")
            .await;
    }

    /// Types `key` into the sign-in field (which must be empty).
    pub async fn type_key(&self, key: &str) {
        self.type_into("#signin-key", key).await;
    }

    /// Types `key` and clicks "Sign in".
    pub async fn sign_in(&self, key: &str) {
        self.type_key(key).await;
        self.click("#signin-button").await;
    }

    /// Empties the sign-in field after a refused key.
    pub async fn clear_key(&self) {
        self.clear("#signin-key").await;
    }

    /// The managing key the tab keeps (`null` for none).
    pub async fn session_key(&self) -> Value {
        self.js_with(
            "return sessionStorage.getItem(arguments[0])",
            vec![json!(STORAGE_KEY)],
        )
        .await
    }

    /// Clicks "Sign out".
    pub async fn sign_out(&self) {
        self.click("#signout-button").await;
    }

    // --------------------------------------------------------------- OAuth

    /// Waits for the page to have read its config; whether it offers to
    /// sign in with OAuth.
    pub async fn offers_oauth(&self) -> bool {
        let said = self
            .wait_for(
                "the page's config",
                "return document.getElementById('signin').dataset.oauth",
            )
            .await;
        let offered = said == json!("on");
        assert_eq!(
            self.hidden("oauth-signin").await,
            !offered,
            "the OAuth button shows exactly when offered"
        );
        offered
    }

    /// Clicks "Sign in with OAuth" and waits for the authorization server's
    /// login form, at `issuer`.
    pub async fn sign_in_with_oauth(&self, issuer: &str) {
        self.click("#oauth-button").await;
        self.wait_at(
            "the authorization server's login form",
            issuer,
            "input[name=login]",
        )
        .await;
    }

    /// At the authorization server's development pages: logs in as `login`
    /// (with any password) and consents; waits for the page again.
    pub async fn log_in_and_consent(&self, issuer: &str, login: &str) {
        self.type_into("input[name=login]", login).await;
        self.type_into("input[name=password]", "any password").await;
        self.click("button[type=submit]").await;
        self.wait_at(
            "the authorization server's consent form",
            issuer,
            "input[name=prompt][value=consent]",
        )
        .await;
        self.click("button[type=submit]").await;
        self.wait_back("the page after the sign-in").await;
    }

    /// "Cancel" on the authorization server's login page; waits for the
    /// page again.
    pub async fn cancel_at_provider(&self) {
        self.click("a[href*='/abort']").await;
        self.wait_back("the page after the cancelled sign-in").await;
    }

    /// Opens the page at `query` (`?...`, an answer of the authorization
    /// server as a forger would make it).
    pub async fn open_callback(&self, query: &str) {
        self.client
            .goto(&format!("{}{query}", self.url))
            .await
            .unwrap();
        self.wait_back("the page with the forged answer").await;
    }

    /// Leaves the authorization server's page for the page itself, as a
    /// user abandoning the sign-in would.
    pub async fn abandon_at_provider(&self) {
        self.client.goto(&self.url).await.unwrap();
        self.wait_back("the page again").await;
    }

    /// The state of the sign-in under way in this tab.
    pub async fn pending_state(&self) -> String {
        let pending = self
            .js_with(
                "return JSON.parse(sessionStorage.getItem(arguments[0]))",
                vec![json!(OAUTH_PENDING_KEY)],
            )
            .await;
        pending["state"]
            .as_str()
            .unwrap_or_else(|| panic!("no sign-in under way: {pending}"))
            .to_owned()
    }

    /// Waits until the browser is at `origin`'s page that has `css`,
    /// whatever navigations happen on the way.
    async fn wait_at(&self, what: &str, origin: &str, css: &str) {
        let started = Instant::now();
        loop {
            let url = self.client.current_url().await.ok();
            if let Some(url) = &url
                && url.as_str().starts_with(origin)
                && self.client.find(Locator::Css(css)).await.is_ok()
            {
                return;
            }
            if started.elapsed() > PATIENCE {
                let error = self
                    .client
                    .execute(
                        "const e = document.getElementById('error'); return e && e.textContent",
                        vec![],
                    )
                    .await
                    .ok();
                panic!(
                    "waited {PATIENCE:?} for {what}; the browser is at {url:?}, the page's error \
                     region says {error:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the page again after the authorization server's, and for
    /// its script to have read the answer (no "Finishing the sign-in"
    /// under way).
    pub async fn wait_back(&self, what: &str) {
        self.wait_at(what, &self.url, "#signin").await;
        self.wait_for(
            what,
            "return document.getElementById('status').textContent !== 'Finishing the sign-in…'",
        )
        .await;
    }

    /// As `expect_console_errors`, letting through the failed favicon load
    /// of `issuer`'s pages (its development pages have no icon).
    pub async fn expect_console_errors_beside(&self, issuer: &str, expected: &[&str]) {
        let favicon = format!("{issuer}/favicon.ico ");
        let unexpected: Vec<String> = self
            .console_errors()
            .await
            .into_iter()
            .filter(|message| {
                !message.starts_with(&favicon)
                    && !expected.iter().any(|status| {
                        message.contains("Failed to load resource")
                            && message.contains(&format!("status of {status}"))
                    })
            })
            .collect();
        assert!(unexpected.is_empty(), "console errors: {unexpected:#?}");
    }

    /// `localStorage` and `sessionStorage`: `{local, session}`, each a list
    /// of `[name, value]`.
    pub async fn storage(&self) -> Value {
        self.js(
            "const all = (s) => Object.keys(s).sort().map(k => [k, s.getItem(k)]);
             return {local: all(localStorage), session: all(sessionStorage) };",
        )
        .await
    }

    // ---------------------------------------------------------------- errors

    /// Waits for the alert region to say something; what it says.
    pub async fn error_text(&self) -> String {
        self.wait_for(
            "an error message",
            "return document.getElementById('error').textContent",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
    }

    /// What the alert region says now.
    pub async fn error_text_now(&self) -> String {
        self.js("return document.getElementById('error').textContent")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    // -------------------------------------------------------------- creating

    /// Types `name` into the create form (which must be empty).
    pub async fn type_name(&self, name: &str) {
        self.type_into("#create-name", name).await;
    }

    /// Sets the create form's expiry to `day` (`yyyy-mm-dd`).
    pub async fn set_expiry(&self, day: &str) {
        self.set_date("#create-expires", day).await;
    }

    /// Clicks "Create".
    pub async fn submit_create(&self) {
        self.click("#create-button").await;
    }

    /// Types `name` and clicks "Create".
    pub async fn create(&self, name: &str) {
        self.type_name(name).await;
        self.submit_create().await;
    }

    /// Empties the create form's name.
    pub async fn clear_name(&self) {
        self.clear("#create-name").await;
    }

    /// Waits for the show-once dialog.
    pub async fn expect_secret_dialog(&self) {
        self.wait_for(
            "the show-once dialog",
            "return document.getElementById('secret-dialog').open",
        )
        .await;
    }

    /// The secret the dialog shows (`""` once cleared).
    pub async fn secret_value(&self) -> Value {
        self.js("return document.getElementById('secret-value').value")
            .await
    }

    /// Waits for the dialog to close and its `close` event, which clears
    /// the secret and is dispatched a moment after it closes, to run
    /// (`what` says how it was closed); then the secret must be gone
    /// (`why` says so on failure).
    pub async fn expect_dialog_cleared(&self, what: &str, why: &str) {
        self.wait_for(
            what,
            "return !document.getElementById('secret-dialog').open \
             && document.getElementById('secret-value').value === ''",
        )
        .await;
        assert_eq!(self.secret_value().await, json!(""), "{why}");
        // The snippets, the URL and the connection test's outcome go too.
        let left = self
            .js(
                "return [...document.querySelectorAll('#secret-dialog [data-snippet], #setup-url, \
                     #test-connection-status, #secret-copy-status')]
                     .filter(e => e.textContent !== '').map(e => e.id)",
            )
            .await;
        assert_eq!(left, json!([]), "{why}: left in the dialog");
    }

    /// What each setup snippet of the dialog says, by name.
    pub async fn snippets(&self) -> std::collections::BTreeMap<String, String> {
        let mut all = std::collections::BTreeMap::new();
        for name in SNIPPETS {
            let text = self
                .js_with(
                    "return document.getElementById('snippet-' + arguments[0]).textContent",
                    vec![json!(name)],
                )
                .await;
            all.insert(name.to_owned(), text.as_str().unwrap().to_owned());
        }
        all
    }

    /// Clicks "Test connection"; what the dialog says once it is done.
    pub async fn test_connection(&self) -> String {
        self.click("#test-connection").await;
        self.wait_for(
            "the connection test to end",
            "const s = document.getElementById('test-connection-status');
             return ['ok', 'failed'].includes(s.dataset.outcome) && s.textContent",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
    }

    /// Escape in the dialog's secret field.
    pub async fn escape_dialog(&self) {
        self.send_keys("#secret-value", &Key::Escape.to_string())
            .await;
    }

    // ----------------------------------------------------------------- rows

    /// How many keys the table shows.
    pub async fn row_count(&self) -> usize {
        self.js("return document.querySelectorAll('#keys-body tr[data-key-id]').length")
            .await
            .as_u64()
            .unwrap() as usize
    }

    /// The row whose name is exactly `name` (its first text node), read
    /// cell by cell; waits for it to appear.
    pub async fn row_named(&self, name: &str) -> Value {
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

    /// The row named `name`, reloading the page every `every` until
    /// `until` holds for it; fails when `what` did not show within
    /// `within`.
    pub async fn row_after_reloads(
        &self,
        name: &str,
        what: &str,
        (within, every): (Duration, Duration),
        until: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            self.reload().await;
            self.expect_signed_in("the signed-in page after a reload")
                .await;
            let row = self.row_named(name).await;
            if until(&row) {
                return row;
            }
            assert!(
                started.elapsed() < within,
                "{what} did not show within {within:?}: {row}"
            );
            tokio::time::sleep(every).await;
        }
    }

    // -------------------------------------------------------------- revoking

    /// Clicks the revoke button of row `id` and waits for the confirmation.
    pub async fn revoke_row(&self, id: &str) {
        self.click(&format!("tr[data-key-id=\"{id}\"] .revoke"))
            .await;
        self.expect_confirmation().await;
    }

    /// Waits for the revoke confirmation.
    pub async fn expect_confirmation(&self) {
        self.wait_for(
            "the confirmation",
            "return document.getElementById('revoke-dialog').open",
        )
        .await;
    }

    /// Clicks "Revoke" in the confirmation.
    pub async fn confirm_revoke(&self) {
        self.click("#confirm-revoke").await;
    }

    /// Waits for row `id` to show the revoked badge.
    pub async fn expect_row_revoked(&self, id: &str) {
        self.wait_for(
            "the row to show revoked",
            &format!(
                "const r = document.querySelector('tr[data-key-id=\"{id}\"] .status .badge'); \
                 return r && r.textContent === 'revoked' && r.classList.contains('badge-revoked')"
            ),
        )
        .await;
    }

    // ------------------------------------------------- what is never kept

    /// The new key's secret is in no URL, no storage but the managing key's.
    pub async fn assert_secret_not_kept(&self, secret: &str) {
        self.assert_not_kept(secret, &[STORAGE_KEY], &[]).await;
    }

    /// `secret` is in no URL and no storage; the URL has no query or
    /// fragment; `sessionStorage` holds the `session` names and
    /// `localStorage` the `local` ones, no others.
    pub async fn assert_not_kept(&self, secret: &str, session: &[&str], local: &[&str]) {
        let url = self.client.current_url().await.unwrap();
        assert!(!url.as_str().contains(secret), "the secret is in the URL");
        assert!(!url.as_str().contains("bmc_"), "a key is in the URL: {url}");
        assert_eq!(url.query(), None, "{url}");
        assert_eq!(url.fragment(), None, "{url}");
        let storage = self.storage().await;
        let names = |area: &str| -> Vec<String> {
            storage[area]
                .as_array()
                .unwrap()
                .iter()
                .map(|entry| entry[0].as_str().unwrap().to_owned())
                .collect()
        };
        let sorted = |names: &[&str]| {
            let mut names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
            names.sort();
            names
        };
        assert_eq!(names("local"), sorted(local), "localStorage: {storage}");
        assert_eq!(
            names("session"),
            sorted(session),
            "sessionStorage: {storage}"
        );
        assert!(
            !storage.to_string().contains(secret),
            "the secret is stored"
        );
    }

    /// No element, handler or script came from a key name.
    pub async fn assert_hostile_markup_inert(&self) {
        let found = self
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
            self.client.get_alert_text().await.is_err(),
            "an alert opened"
        );
    }

    /// A PNG of the page into the target directory; the `published` one
    /// into `docs/` instead with `UPDATE_SCREENSHOTS=1`.
    pub async fn screenshot(&self, name: &str, published: bool) {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"));
        self.browser
            .screenshot(&screenshot_path(name, published, &docs, artifacts))
            .await;
    }
}
