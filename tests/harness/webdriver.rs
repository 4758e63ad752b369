//! A small W3C WebDriver client for browser tests: Debian's chromedriver
//! driving Debian's headless Chromium, over plain HTTP and JSON.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::client::Http;
use crate::proxy::free_port;

/// The element key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: Http,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("Chromium is needed for browser tests (apt-get install chromium chromium-driver; scripts/setup does it)");
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is needed for browser tests (apt-get install chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let http = Http::new();
        let up = crate::eventually(Duration::from_secs(15), || async {
            http.send(http::Method::GET, &format!("{base}/status"), &[], b"")
                .await
                .ok()
                .filter(|r| r.status == 200)
        })
        .await;
        assert!(up.is_some(), "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1600",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let r = browser.call(http::Method::POST, "/session", caps).await;
        browser.session = r["sessionId"].as_str().expect("session id").to_string();
        browser
    }

    async fn call(&self, method: http::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let body = if method == http::Method::GET {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let r = self
            .http
            .send(method, &url, &[("content-type", "application/json")], &body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"));
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert!(r.status < 300, "webdriver {path}: {} {v}", r.status);
        v["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.call(
            http::Method::POST,
            &self.session_path("/url"),
            json!({"url": url}),
        )
        .await;
    }

    pub async fn title(&self) -> String {
        self.call(http::Method::GET, &self.session_path("/title"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn url(&self) -> String {
        self.call(http::Method::GET, &self.session_path("/url"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Clicks the link whose visible text is `text`.
    pub async fn click_link(&self, text: &str) {
        let el = self
            .call(
                http::Method::POST,
                &self.session_path("/element"),
                json!({"using": "link text", "value": text}),
            )
            .await;
        let id = el[ELEMENT].as_str().expect("element id").to_string();
        self.call(
            http::Method::POST,
            &self.session_path(&format!("/element/{id}/click")),
            json!({}),
        )
        .await;
    }

    /// Runs JavaScript in the page and returns its result.
    pub async fn eval(&self, script: &str) -> Value {
        self.eval_with(script, json!([])).await
    }

    /// Runs JavaScript in the page with `args` (a JSON array, read as
    /// `arguments[0]`...) and returns its result.
    pub async fn eval_with(&self, script: &str, args: Value) -> Value {
        self.call(
            http::Method::POST,
            &self.session_path("/execute/sync"),
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// The text a person sees on the page.
    pub async fn visible_text(&self) -> String {
        self.eval("return document.body.innerText")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn screenshot(&self, path: &std::path::Path) {
        let b64 = self
            .call(
                http::Method::GET,
                &self.session_path("/screenshot"),
                Value::Null,
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    /// Ends the session first, which makes chromedriver quit Chromium:
    /// killing only the driver would leave the browser running after the
    /// test. Blocking and best effort, as a drop must be (also on panic).
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let address = self.base.trim_start_matches("http://").to_string();
            let end_session = || -> std::io::Result<()> {
                use std::io::{Read, Write};
                let mut stream = std::net::TcpStream::connect(&address)?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                write!(
                    stream,
                    "DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session
                )?;
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).map(|_| ())
            };
            let _ = end_session();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
