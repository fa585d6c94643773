//! A headless Chromium driven over WebDriver: Debian's `chromium` through
//! `chromedriver` on a loopback port, a fantoccini session, the reading and
//! typing helpers a page object is written with, the browser console's
//! errors and screenshots.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` a browser test
//! says so on stderr and passes; with `REQUIRE_BROWSER=1` it fails instead.
//! `BROWSER_TEST_CHROMIUM` and `BROWSER_TEST_CHROMEDRIVER` name other
//! binaries.

use std::future::Future;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

pub use fantoccini;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Debian's Chromium; `BROWSER_TEST_CHROMIUM` names another.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver; `BROWSER_TEST_CHROMEDRIVER` names another.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the page is given to show what a step expects.
pub const PATIENCE: Duration = Duration::from_secs(10);

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
             SKIPPED: browser tests need chromium and chromedriver\n\
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
/// chromedriver afterwards, also when `body` panics. chromedriver's log
/// goes to `logs` (the test's `CARGO_TARGET_TMPDIR`).
pub async fn with_browser<B, F>(test: &str, logs: &Path, body: B)
where
    B: FnOnce(Browser) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let Some((chromium, chromedriver)) = browser_binaries(test) else {
        return;
    };
    let _one = ONE_BROWSER.lock().await;
    let driver = Chromedriver::start(
        &chromedriver,
        &logs.join(format!("chromedriver-{test}.log")),
    );
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
        explain: None,
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
    fn start(path: &str, log: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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

/// The WebDriver session, with the helpers a page object is written with.
#[derive(Clone, Debug)]
pub struct Browser {
    /// The fantoccini client, for what the helpers do not cover.
    pub client: Client,
    driver_url: String,
    session: String,
    /// A script whose answer a failed wait reports: what the page says.
    explain: Option<(&'static str, &'static str)>,
}

impl Browser {
    /// A failed wait reports `label` and the answer of `script` (say, what
    /// the page's error region holds) beside the element with focus.
    pub fn explain_waits_with(mut self, label: &'static str, script: &'static str) -> Self {
        self.explain = Some((label, script));
        self
    }

    /// What `script` returns; a failed script fails the test.
    pub async fn js(&self, script: &str) -> Value {
        self.js_with(script, vec![]).await
    }

    /// What `script` returns with `args` as `arguments`.
    pub async fn js_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
    }

    /// Polls `script` until it returns something truthy; that value.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
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
                let explained = match self.explain {
                    Some((label, script)) => format!("{label} {}; ", self.js(script).await),
                    None => String::new(),
                };
                let active = self
                    .js("const a = document.activeElement; \
                          return a ? a.outerHTML.slice(0, 200) : null")
                    .await;
                panic!("waited {PATIENCE:?} for {what}; {explained}focus is on {active}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element `css` selects; none fails the test.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css}: {error}"))
    }

    /// The element with focus.
    pub async fn active(&self) -> Element {
        self.client.active_element().await.unwrap()
    }

    /// The id of the element with focus (`""` for none).
    pub async fn active_id(&self) -> String {
        self.js("return document.activeElement ? document.activeElement.id : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|error| panic!("click {css}: {error}"));
    }

    /// Sends `keys` (text, or a `fantoccini::key::Key` as a string) to the
    /// element `css` selects.
    pub async fn send_keys(&self, css: &str, keys: &str) {
        self.find(css)
            .await
            .send_keys(keys)
            .await
            .unwrap_or_else(|error| panic!("keys to {css}: {error}"));
    }

    /// Empties the field `css` selects.
    pub async fn clear(&self, css: &str) {
        self.find(css)
            .await
            .clear()
            .await
            .unwrap_or_else(|error| panic!("clear {css}: {error}"));
    }

    /// The value of the field `css` selects.
    pub async fn value(&self, css: &str) -> Value {
        self.js_with(
            "return document.querySelector(arguments[0]).value",
            vec![json!(css)],
        )
        .await
    }

    /// Types `text` into the field `css` selects, and checks that it holds
    /// it.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.find(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|error| panic!("type into {css}: {error}"));
        assert_eq!(
            self.value(css).await,
            json!(text),
            "what {css} holds after typing"
        );
    }

    /// Types `yyyy-mm-dd` into a date input as an en-US user does
    /// (mm, dd, yyyy); in another locale's order, sets it directly.
    pub async fn set_date(&self, css: &str, day: &str) {
        let (year, rest) = day.split_once('-').unwrap();
        let (month, date) = rest.split_once('-').unwrap();
        self.find(css)
            .await
            .send_keys(&format!("{month}{date}{year}"))
            .await
            .unwrap();
        let value = self.value(css).await;
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
        assert_eq!(self.value(css).await, json!(day), "the date input");
    }

    /// The text of the element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Whether the element with the id `id` is `hidden`.
    pub async fn hidden(&self, id: &str) -> bool {
        self.js_with(
            "return document.getElementById(arguments[0]).hidden",
            vec![json!(id)],
        )
        .await
        .as_bool()
        .unwrap()
    }

    /// The console's errors since the last call (Chromium's log of the
    /// page: uncaught exceptions, CSP violations, failed loads).
    pub async fn console_errors(&self) -> Vec<String> {
        let response = crate::client()
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
    /// statuses (a refused request is logged by Chromium as a failed load).
    pub async fn expect_console_errors(&self, expected: &[&str]) {
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

    /// A PNG of the whole page (not just the first 900 pixels of it) at
    /// `path`.
    pub async fn screenshot(&self, path: &Path) {
        let sizes = self
            .js("return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]")
            .await;
        let height = sizes[0].as_u64().unwrap_or(900) + sizes[1].as_u64().unwrap_or(0);
        let height = u32::try_from(height.clamp(900, 2000)).unwrap();
        self.client.set_window_size(1280, height).await.unwrap();
        let png = self.client.screenshot().await.unwrap();
        self.client.set_window_size(1280, 900).await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png)
            .unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
        eprintln!("screenshot: {}", path.display());
    }
}

/// Where a screenshot named `name` goes: `published` ones into `docs`
/// with `UPDATE_SCREENSHOTS=1`, every other into `artifacts`.
pub fn screenshot_path(name: &str, published: bool, docs: &Path, artifacts: &Path) -> PathBuf {
    let dir = if published && std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        docs
    } else {
        artifacts
    };
    dir.join(format!("{name}.png"))
}
