//! Headless Chromium driven through chromedriver's W3C WebDriver HTTP API, shared by the
//! browser tests (the public QR page at phone size, the dashboard at desktop size).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration as StdDuration;

use base64::Engine as _;
use serde_json::{Value, json};

/// Where a test's screenshots go: `target/test-output/<test>/`.
fn output_dir(test: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let directory = target.join("test-output").join(test);
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

/// The window a test looks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Viewport {
    /// A 360×740 phone, with mobile emulation (the public QR page).
    Phone,
    /// A 1280×900 desktop window (the dashboard).
    Desktop,
}

/// Chromium driven through chromedriver's W3C WebDriver HTTP API.
pub(crate) struct Browser {
    driver: tokio::process::Child,
    client: reqwest::Client,
    session: String,
    /// Where screenshots are saved.
    output: PathBuf,
    _profile: tempfile::TempDir,
}

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver and a headless Chromium with the viewport; screenshots go to
    /// `target/test-output/<test>/`. `None` (with a message) when they are not installed, unless
    /// `ANQUAN_TEST_REQUIRE_BROWSER=1`.
    pub(crate) async fn start(viewport: Viewport, test: &str) -> Option<Browser> {
        let chromium = ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find_map(which);
        let driver = which("chromedriver");
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            assert!(
                std::env::var("ANQUAN_TEST_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "ANQUAN_TEST_REQUIRE_BROWSER=1 but chromium or chromedriver is not installed"
            );
            eprintln!("skipping the {test} browser checks: chromium and chromedriver are not installed");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(response) = client.get(format!("{base}/status")).send().await
                && response
                    .json::<Value>()
                    .await
                    .is_ok_and(|status| status["value"]["ready"] == true)
            {
                ready = true;
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            match viewport {
                Viewport::Phone => "--window-size=360,740".to_owned(),
                Viewport::Desktop => "--window-size=1280,900".to_owned(),
            },
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut options = json!({ "binary": chromium.display().to_string(), "args": args });
        if viewport == Viewport::Phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": 360, "height": 740, "pixelRatio": 2.0, "touch": true },
                "userAgent": "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36"
            });
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options
        } } });
        let response: Value = client
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {response}"))
            .to_owned();
        Some(Browser {
            driver,
            client,
            session: format!("{base}/session/{session}"),
            output: output_dir(test),
            _profile: profile,
        })
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(response["value"]["error"].is_null(), "WebDriver {path}: {response}");
        response["value"].clone()
    }

    /// Prints the page as the browser's print dialog would (print media, A4), returning the PDF.
    pub(crate) async fn print_pdf(&self) -> Vec<u8> {
        let encoded = self
            .command(
                reqwest::Method::POST,
                "/print",
                Some(json!({ "page": { "width": 29.7, "height": 21.0 }, "background": true })),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap()
    }

    pub(crate) async fn open(&mut self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub(crate) async fn elements(&self, css: &str) -> Vec<String> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|element| element[ELEMENT_KEY].as_str().unwrap().to_owned())
            .collect()
    }

    pub(crate) async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.elements(css).await {
            let text = self
                .command(reqwest::Method::GET, &format!("/element/{element}/text"), None)
                .await;
            texts.push(text.as_str().unwrap().to_owned());
        }
        texts
    }

    /// The text of the one element `css` selects.
    pub(crate) async fn text(&self, css: &str) -> String {
        let texts = self.texts(css).await;
        assert_eq!(texts.len(), 1, "{css} selects {} elements", texts.len());
        texts.into_iter().next().unwrap()
    }

    pub(crate) async fn attributes(&self, css: &str, name: &str) -> Vec<String> {
        let mut values = Vec::new();
        for element in self.elements(css).await {
            let value = self
                .command(
                    reqwest::Method::GET,
                    &format!("/element/{element}/attribute/{name}"),
                    None,
                )
                .await;
            values.push(value.as_str().unwrap_or_default().to_owned());
        }
        values
    }

    pub(crate) async fn script(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        let encoded = self.command(reqwest::Method::GET, "/screenshot", None).await;
        save(&self.output.join(name), encoded.as_str().unwrap());
    }

    /// The whole page, through the DevTools protocol (Chromium only).
    pub(crate) async fn full_page_screenshot(&self, name: &str) {
        let shot = self
            .command(
                reqwest::Method::POST,
                "/goog/cdp/execute",
                Some(json!({ "cmd": "Page.captureScreenshot",
                    "params": { "format": "png", "captureBeyondViewport": true } })),
            )
            .await;
        save(&self.output.join(name), shot["data"].as_str().unwrap());
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.client.delete(&self.session).send().await;
        let _ = self.driver.kill().await;
    }
}

fn save(path: &Path, base64_png: &str) {
    let bytes = base64::engine::general_purpose::STANDARD.decode(base64_png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(path, bytes).unwrap();
    eprintln!("screenshot: {}", path.display());
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|directory| directory.join(name))
            .find(|path| path.is_file())
    })
}
