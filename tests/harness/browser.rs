//! A real browser for the checkout page's tests: Debian's Chromium, headless,
//! driven over WebDriver (chromedriver, one per test, on a free port) with
//! the fantoccini client. `scripts/test` installs chromium and
//! chromium-driver where they are missing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::service_process::free_port;

/// At most this many browsers at once: two cores share them with the
/// service and PostgreSQL.
static BROWSERS: Semaphore = Semaphore::const_new(2);

fn binary(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: std::path::PathBuf,
    _permit: SemaphorePermit<'static>,
}

impl Browser {
    /// A fresh headless Chromium with an empty profile, phone-sized.
    pub async fn start() -> Self {
        let permit = BROWSERS.acquire().await.unwrap();
        let port = free_port();
        // Its own process group, with the browser it starts: a test that
        // fails before `close` still takes every Chromium process with it
        // (Drop kills the group).
        let driver = Command::new(binary("CHROMEDRIVER", "/usr/bin/chromedriver"))
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts (install Debian's chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = std::env::temp_dir().join(format!(
            "store-orders-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": binary("CHROMIUM", "/usr/bin/chromium"),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=412,915",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("a JSON object"),
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a Chromium session");
        Self {
            client,
            driver,
            profile,
            _permit: permit,
        }
    }

    /// Ends the session, then the driver and its browser (Drop).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(group) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
