//! Shared helpers of the browser tests: Debian's Chromium, headless, driven
//! through chromedriver with fantoccini, and small script helpers. Without
//! chromium/chromedriver a test is skipped with a loud reason, except under
//! `CI=true`, where a missing browser is a failure.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use super::common::{wait_for, DEADLINE};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The browser tests need both binaries; under CI their absence fails.
pub fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        let why =
            format!("{CHROMIUM} or {CHROMEDRIVER} is missing (scripts/setup.sh installs them)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why}");
        }
        eprintln!("SKIPPED browser test: {why}");
    }
    present
}

pub const XVFB: &str = "/usr/bin/Xvfb";

/// A chromedriver on an ephemeral port, killed on drop; with an X display
/// of its own for browsers that must make sound.
pub struct Driver {
    child: Child,
    pub url: String,
    display: Option<Xvfb>,
}

/// A virtual X server on a free display, killed on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Headless Chromium renders audio into a fake output device whose
    /// clock runs slow and unevenly on a loaded machine; a browser with a
    /// (virtual) display plays through PulseAudio like a desktop one.
    fn start() -> Self {
        use std::io::BufRead;
        if !Path::new(XVFB).exists() {
            let why = format!("{XVFB} is missing (scripts/setup.sh installs xvfb)");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}");
            }
            panic!("{why}; the audible browser tests need it");
        }
        // -displayfd: Xvfb picks a free display and prints its number.
        let mut child = Command::new(XVFB)
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("Xvfb prints its display");
        let display = format!(":{}", line.trim());
        assert!(display.len() > 1, "Xvfb printed no display number");
        Self { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// For browsers without a display (`--headless=new`).
    pub fn start() -> Self {
        Self::start_on(None)
    }

    /// For browsers that play or capture audio: on a virtual display, so
    /// their audio goes through PulseAudio in real time.
    pub fn start_audible() -> Self {
        Self::start_on(Some(Xvfb::start()))
    }

    fn start_on(display: Option<Xvfb>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(x) = &display {
            command.env("DISPLAY", &x.display);
        }
        let child = command.spawn().expect("start chromedriver");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            display,
        };
        let status = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for("chromedriver to listen", || {
            std::net::TcpStream::connect(status).is_ok()
        });
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The browsers chromedriver started outlive it when a failing test
        // never closed its session: end them first, by process id.
        for pid in children_of(self.child.id()) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ids of the processes whose parent is `parent` (from `/proc`).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // "pid (name) state ppid …": the name may hold spaces.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

/// A headless chromium with a 1000×760 window and its own profile.
pub async fn open_browser(driver: &Driver, profile: &Path) -> Client {
    open_browser_with(driver, profile, &[]).await
}

/// Like `open_browser`, with more command-line switches for chromium.
pub async fn open_browser_with(driver: &Driver, profile: &Path, extra: &[String]) -> Client {
    let headless = driver.display.is_none().then_some("--headless=new");
    let mut args = headless
        .into_iter()
        .chain([
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1000,760",
        ])
        .map(String::from)
        .collect::<Vec<_>>();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend(extra.iter().cloned());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    // chromedriver now and then resets the connection of a new session
    // while it starts a browser (seen once in CI with three tests starting
    // theirs at once); that is the harness, not the page under test.
    let mut attempt = 1;
    loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            Ok(client) => return client,
            Err(e) if attempt < 3 => {
                eprintln!("chromium session, attempt {attempt}: {e}; trying again");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => panic!("a chromium session: {e}"),
        }
    }
}

/// Runs `script` in `page` and returns its value.
pub async fn js(page: &Client, script: &str) -> Value {
    page.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed ({e}): {script}"))
}

/// Polls `script` in `page` until it returns `true`; on time-out, fails
/// with what `describe` (a script) returns.
pub async fn wait_js_or(page: &Client, what: &str, script: &str, describe: &str) {
    let start = Instant::now();
    let mut error = None;
    loop {
        // A script that throws (an element not there yet) has not held yet.
        match page.execute(script, vec![]).await {
            Ok(Value::Bool(true)) => return,
            Ok(_) => {}
            Err(e) => error = Some(e.to_string()),
        }
        if start.elapsed() > DEADLINE {
            let state = js(page, describe).await;
            panic!("timed out waiting for {what}; last error: {error:?}; page: {state}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `script` in `page` until it returns `true`.
pub async fn wait_js(page: &Client, what: &str, script: &str) {
    wait_js_or(
        page,
        what,
        script,
        "return [...document.querySelectorAll('.strip[data-id]')].map(s => [s.dataset.id, s.querySelector('.fader').getAttribute('aria-valuetext'), s.dataset.volume, s.dataset.health])",
    )
    .await
}

/// The strip of source `id`, as a script expression.
pub fn strip(id: impl std::fmt::Display) -> String {
    format!(r#"document.querySelector('.strip[data-id="{id}"]')"#)
}
