//! A real browser for the checkout page's tests: Debian's Chromium, headless,
//! driven over WebDriver (chromedriver, one per test, on a port it picks) with
//! the fantoccini client. `scripts/test` installs chromium and
//! chromium-driver where they are missing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, SemaphorePermit};

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
        let profile = std::env::temp_dir().join(format!(
            "store-orders-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let driver_log = profile.join("chromedriver.out");
        // Port 0: the driver binds a port of its own and says which
        // ("ChromeDriver was started successfully on port N."), so no port
        // is picked here and bound later by it. Its own process group, with
        // the browser it starts: a test that fails before `close` still
        // takes every Chromium process with it (Drop kills the group).
        let mut driver = Command::new(binary("CHROMEDRIVER", "/usr/bin/chromedriver"))
            .arg("--port=0")
            .process_group(0)
            .stdout(std::fs::File::create(&driver_log).unwrap())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts (install Debian's chromium-driver)");
        let started = Instant::now();
        let port = loop {
            let said = std::fs::read_to_string(&driver_log).unwrap_or_default();
            if let Some(port) = said
                .split("started successfully on port ")
                .nth(1)
                .and_then(|rest| rest.split('.').next())
                .and_then(|port| port.trim().parse::<u16>().ok())
            {
                break port;
            }
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("chromedriver exited before it listened ({status}): {said}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not say its port within 20 s: {said}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let url = format!("http://127.0.0.1:{port}");
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
