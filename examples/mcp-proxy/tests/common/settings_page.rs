//! The Settings → API Keys page as its user sees it: sign in, create a key,
//! read the show-once dialog, revoke a row; and what the page must never
//! keep. Written over the browser harness of `test_support::browser`.
#![allow(unreachable_pub)]

use std::ops::Deref;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::browser::fantoccini::key::Key;
use test_support::browser::{Browser, PATIENCE, screenshot_path};

/// Where the page keeps the managing key, in `sessionStorage`.
pub const STORAGE_KEY: &str = "mcp-proxy.managing-key";

/// The page in a browser; the browser's own helpers through `Deref`.
#[derive(Debug)]
pub struct SettingsPage {
    browser: Browser,
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
        let url = self.client.current_url().await.unwrap();
        assert!(!url.as_str().contains(secret), "the secret is in the URL");
        assert!(!url.as_str().contains("bmc_"), "a key is in the URL: {url}");
        assert_eq!(url.query(), None, "{url}");
        let storage = self
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
