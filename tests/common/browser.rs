//! Headless Chromium driven through chromedriver (the W3C WebDriver
//! protocol over HTTP): open a page, run a script in it, take a screenshot.

use serde_json::{Value, json};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// True when Debian's chromium and chromedriver are installed; panics when
/// they are not but the browser is required (the full test command).
pub fn available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    if std::env::var_os("BELLWETHER_REQUIRE_BROWSER").is_some() {
        panic!(
            "chromium and chromedriver are not installed; run ./scripts/test, which installs them"
        );
    }
    eprintln!("skipped: chromium/chromedriver not installed; ./scripts/test installs them");
    false
}

/// One browser session; the driver and browser end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session.
    pub fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1300,1000",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let reply = post(
            &format!("{base}/session"),
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
            }}}),
        );
        let session = reply["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {reply}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            _profile: profile,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    /// Opens `url`.
    pub fn open(&self, url: &str) {
        post(&self.url("/url"), json!({ "url": url }));
    }

    /// Runs `script` (a function body) in the page; its return value.
    pub fn eval(&self, script: &str) -> Value {
        post(
            &self.url("/execute/sync"),
            json!({"script": script, "args": []}),
        )
    }

    /// Saves a PNG of the window.
    pub fn screenshot(&self, path: &Path) {
        let b64 = ureq::get(&self.url("/screenshot"))
            .call()
            .unwrap()
            .into_body()
            .read_json::<Value>()
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string();
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.url("")).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// POSTs JSON to the driver; the reply's `value`.
fn post(url: &str, body: Value) -> Value {
    let reply: Value = ureq::post(url)
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(&body)
        .unwrap_or_else(|e| panic!("WebDriver {url}: {e}"))
        .into_body()
        .read_json()
        .unwrap();
    let value = reply["value"].clone();
    assert!(
        value.get("error").is_none(),
        "WebDriver {url} failed: {value}"
    );
    value
}
