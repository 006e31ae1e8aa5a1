//! End-to-end in headless Chromium (Debian's `chromium` + `chromedriver`,
//! driven over WebDriver with fantoccini) against the real binary and real
//! services. Screenshots of every page land in the test's output directory.
//! This file is the harness; `flows` has the pages' stories, `csp` checks
//! that they keep to their Content-Security-Policy.

mod charts;
mod csp;
mod flows;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::*;

/// The promise for live updates: a change made anywhere shows on every open
/// page within 2 s.
const LIVE: Duration = Duration::from_secs(2);

struct Browser {
    client: Client,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(dir: &Path) -> Browser {
        let driver_bin =
            std::env::var("REGIONDB_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let chromium =
            std::env::var("REGIONDB_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let (driver, port) = start_server("chromedriver", dir, |port| {
            let mut c = Command::new(&driver_bin);
            c.arg(format!("--port={port}"));
            c
        })
        .await;
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        // Plain HTTP to the local chromedriver: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromedriver session");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("goto");
    }

    async fn text(&self, css: &str) -> Option<String> {
        let el = self.client.find(Locator::Css(css)).await.ok()?;
        el.text().await.ok()
    }

    async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let el = self.client.find(Locator::Css(css)).await.ok()?;
        el.attr(name).await.ok().flatten()
    }

    async fn wait_text(&self, what: &str, deadline: Duration, css: &str, want: &str) {
        wait_until(what, deadline, || async {
            self.text(css).await.is_some_and(|t| t.trim() == want)
        })
        .await;
    }

    /// Waits until `node`'s card shows `status`, then checks that its switch
    /// and dot agree.
    async fn wait_card_status(&self, node: &str, status: &str) {
        let what = format!("{node} shown {status}");
        self.wait_text(&what, LIVE, &card(node, "status"), status)
            .await;
        let checked = if status == "available" {
            "true"
        } else {
            "false"
        };
        let switch = self.attr(&card(node, "switch"), "aria-checked").await;
        assert_eq!(switch.as_deref(), Some(checked), "{node} switch");
        let dot = self
            .attr(&card(node, "dot"), "class")
            .await
            .unwrap_or_default();
        assert!(dot.contains(&format!("dot-{status}")), "{node} dot: {dot}");
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .expect("click");
    }

    async fn fill(&self, id: &str, value: &str) {
        let el = self.client.find(Locator::Id(id)).await.expect("input");
        el.clear().await.expect("clear");
        el.send_keys(value).await.expect("type");
    }

    /// Saves a screenshot and checks it is not blank (a rendered page has
    /// many colours; a blank one has one or two).
    async fn screenshot(&self, dir: &Path, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), &png).expect("save screenshot");
        // scripts/screenshots refreshes the docs' pictures from here.
        if std::env::var_os("REGIONDB_UPDATE_SCREENSHOTS").is_some() {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
            std::fs::create_dir_all(&docs).expect("docs/screenshots");
            std::fs::write(docs.join(format!("{name}.png")), &png).expect("save screenshot");
        }
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let mut reader = decoder.read_info().expect("png");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("frame");
        let bytes = &buf[..info.buffer_size()];
        let px = info.color_type.samples();
        let mut colours: Vec<&[u8]> = bytes.chunks(px).collect();
        colours.sort();
        colours.dedup();
        assert!(
            colours.len() > 20,
            "{name}.png looks blank ({} colours)",
            colours.len()
        );
    }
}

/// A Chrome DevTools command, through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

impl Browser {
    /// From the next page on, every Content-Security-Policy violation is
    /// kept in `window.cspViolations` (the script is the browser's own, so
    /// the policy does not apply to it, and it runs before the page's).
    async fn record_csp_violations(&self) {
        let source = "window.cspViolations = []; \
            document.addEventListener('securitypolicyviolation', function (e) { \
              window.cspViolations.push(e.effectiveDirective + ' ' + e.blockedURI); });";
        let cmd = Cdp {
            cmd: "Page.addScriptToEvaluateOnNewDocument",
            params: json!({ "source": source }),
        };
        self.client.issue_cmd(cmd).await.expect("cdp");
    }

    /// The violations this page has seen so far.
    async fn csp_violations(&self) -> Vec<String> {
        let seen = self
            .client
            .execute("return window.cspViolations || ['(not recording)']", vec![])
            .await
            .expect("script");
        serde_json::from_value(seen).unwrap_or_default()
    }
}

fn card(node: &str, field: &str) -> String {
    format!(r#".card[data-node="{node}"] [data-field="{field}"]"#)
}
