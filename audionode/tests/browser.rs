//! The mixing desk in a real browser: Debian's Chromium, headless, driven
//! through chromedriver. Two pages watch two live streams; a fader moved in
//! one page updates the other and changes the node's actual UDP output by
//! the expected ratio; mute silences the stream; a stream that stops
//! disappears from both pages. A page from another origin tries to take the
//! desk over (its WebSocket, a PUT) and must fail.
//!
//! Without chromium/chromedriver the test is skipped with a reason, except
//! under `CI=true`, where a missing browser is a failure.

mod chrome;
mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chrome::*;
use common::*;
use fantoccini::Locator;
use serde_json::{json, Value};

/// A paced constant-level stream that runs until stopped.
struct Stream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stream {
    fn start(to: SocketAddr, level: impl Fn(usize) -> i16 + Send + 'static) -> Self {
        Self::start_lossy(to, level, usize::MAX)
    }

    /// Like `start`, but every `drop_every`-th packet is never sent.
    fn start_lossy(
        to: SocketAddr,
        level: impl Fn(usize) -> i16 + Send + 'static,
        drop_every: usize,
    ) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let start = Instant::now();
            let mut buf = vec![0u8; proto::udp_mono::mono_datagram_len(CHUNK)];
            let mut k = 0usize;
            while !flag.load(Ordering::SeqCst) {
                let due =
                    start + Duration::from_secs_f64(k as f64 * CHUNK as f64 / f64::from(RATE));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                let chunk: Vec<i16> = (0..CHUNK).map(|i| level(k * CHUNK + i)).collect();
                let n = proto::encode_mono(k as u32, &chunk, &mut buf).unwrap();
                if (k + 1) % drop_every != 0 {
                    socket.send_to(&buf[..n], to).unwrap();
                }
                k += 1;
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The stable output level after `from` (skipping the one-block ramp).
fn level_after(collector: &Collector, from: usize) -> (i16, i16) {
    wait_for("audio after the change", || collector.len() > from + 3000);
    let frames = collector.snapshot_frames(from + 1000, 1000);
    assert!(
        frames.windows(2).all(|w| w[0] == w[1]),
        "steady level: {:?}",
        &frames[..4]
    );
    frames[0]
}

#[tokio::test(flavor = "current_thread")]
async fn two_pages_share_a_live_mix_and_control_the_real_output() {
    if !browser_available() {
        return;
    }
    let dir = temp_dir("browser");
    let collector = Collector::start();
    let (node, _log) = start_node_with_http(&dir, collector.addr, None);
    let page_url = format!("http://{}/", node.http_addr().unwrap());
    let mut a = Stream::start(node.local_addr(), |_| 8000);
    let mut b = Stream::start(node.local_addr(), |_| 1000);

    let driver = Driver::start();
    let page1 = open_browser(&driver, &dir.join("profile1")).await;
    let page2 = open_browser(&driver, &dir.join("profile2")).await;
    for page in [&page1, &page2] {
        page.goto(&page_url).await.unwrap();
        wait_js(
            page,
            "both strips",
            &format!("return !!{} && !!{}", strip(a.addr), strip(b.addr)),
        )
        .await;
        wait_js(
            page,
            "live status",
            "return document.querySelector('#status').classList.contains('online')",
        )
        .await;
    }
    assert_eq!(
        level_after(&collector, collector.len()),
        (9000, 9000),
        "both streams at unity"
    );

    // Move stream A's fader down 6 dB in page 1 with the keyboard: 6 steps of 1 dB.
    let fader = page1
        .find(Locator::Css(&format!(
            r#".strip[data-id="{}"] .fader"#,
            a.addr
        )))
        .await
        .unwrap();
    fader.send_keys(&"\u{E015}".repeat(6)).await.unwrap(); // ArrowDown
                                                           // Page 2 follows: its fader and dB entry show the new value.
    wait_js(&page2, "page 2 to follow the fader", &format!(
        "const s = {}; return s.querySelector('.fader').getAttribute('aria-valuetext') === '\u{2212}6.0 dB' && s.querySelector('.db-entry').value === '\u{2212}6.0'",
        strip(a.addr)
    ))
    .await;
    let volume = js(
        &page2,
        &format!("return Number({}.dataset.volume)", strip(a.addr)),
    )
    .await
    .as_f64()
    .unwrap();
    assert!((volume - 0.501187).abs() < 1e-4, "volume {volume}");
    // The node's output: A's share scaled by the fader's ratio, B unchanged.
    let (left, right) = level_after(&collector, collector.len() + 2000);
    assert_eq!(left, right);
    let a_share = f64::from(left) - 1000.0;
    assert!(
        (a_share / 8000.0 - volume).abs() < 2.0 / 8000.0,
        "A at {a_share} of 8000, expected ratio {volume}"
    );

    // Mute A in page 2: page 1 shows it, and only B is heard.
    page2
        .find(Locator::Css(&format!(
            r#".strip[data-id="{}"] .mute"#,
            a.addr
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &page1,
        "page 1 to show the mute",
        &format!(
            "return {}.querySelector('.mute').getAttribute('aria-pressed') === 'true'",
            strip(a.addr)
        ),
    )
    .await;
    assert_eq!(
        level_after(&collector, collector.len() + 2000),
        (1000, 1000)
    );

    // B stops: after the node's timeout it leaves both pages.
    b.stop();
    for page in [&page1, &page2] {
        wait_js(
            page,
            "B to disappear",
            &format!("return !{} && !!{}", strip(b.addr), strip(a.addr)),
        )
        .await;
    }
    page1.close().await.unwrap();
    page2.close().await.unwrap();
    a.stop();
    node.stop().unwrap();
}

/// Serves `page` (HTML) to every request on an ephemeral port of its own:
/// another origin than the node's. Returns its address.
fn serve_page(page: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            use std::io::{Read, Write};
            // One request per connection; its head fits in one read.
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    addr
}

/// What a hostile page does to a desk on `api`: open its WebSocket and, if
/// that works, silence the mix through it; PUT the master to 0; record
/// what happened in `window.attack`.
fn attack_page(api: SocketAddr) -> String {
    format!(
        r#"<!doctype html><title>elsewhere</title><script>
window.attack = {{ ws: "pending", messages: 0, put: "pending" }};
const ws = new WebSocket("ws://{api}/ws");
ws.onopen = () => {{
  attack.ws = "open";
  ws.send(JSON.stringify({{ type: "set_master", volume: 0 }}));
}};
ws.onmessage = () => {{ attack.messages += 1; }};
ws.onerror = () => {{ if (attack.ws === "pending") attack.ws = "error"; }};
ws.onclose = () => {{ if (attack.ws === "pending") attack.ws = "closed"; }};
fetch("http://{api}/api/master", {{
  method: "PUT", headers: {{ "Content-Type": "application/json" }}, body: '{{"volume":0}}',
}}).then(r => {{ attack.put = "status " + r.status; }}, e => {{ attack.put = "failed"; }});
</script>"#
    )
}

#[tokio::test(flavor = "current_thread")]
async fn a_page_from_another_origin_cannot_take_the_desk_over() {
    if !browser_available() {
        return;
    }
    let dir = temp_dir("browser-cross-origin");
    let collector = Collector::start();
    let (node, _log) = start_node_with_http(&dir, collector.addr, None);
    let api = node.http_addr().unwrap();
    let elsewhere = serve_page(attack_page(api));
    let driver = Driver::start();
    let page = open_browser(&driver, &dir.join("profile")).await;
    page.goto(&format!("http://{elsewhere}/")).await.unwrap();
    wait_js(
        &page,
        "the attack to finish",
        r#"return attack.ws !== "pending" && attack.put !== "pending""#,
    )
    .await;
    let attack = js(&page, "return attack").await;
    assert_ne!(
        attack["ws"], "open",
        "the foreign page's WebSocket opened: {attack}"
    );
    assert_eq!(
        attack["messages"], 0,
        "the foreign page got state: {attack}"
    );
    assert_eq!(attack["put"], "failed", "{attack}");
    // The node's state, asked over REST: nothing changed.
    let (status, body) = http(api, "GET", "/api/state", None, &[]);
    assert_eq!(status, 200);
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["master"], 1.0, "{state}");
    // The desk's own page still connects from the same browser.
    page.goto(&format!("http://{api}/")).await.unwrap();
    wait_js(
        &page,
        "the desk to go live",
        "return document.querySelector('#status').classList.contains('online')",
    )
    .await;
    page.close().await.unwrap();
    node.stop().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn a_rebound_name_gets_neither_the_desk_nor_the_api() {
    if !browser_available() {
        return;
    }
    let dir = temp_dir("browser-rebinding");
    let collector = Collector::start();
    let (node, _log) = start_node_with_http(&dir, collector.addr, None);
    let api = node.http_addr().unwrap();
    // What DNS rebinding achieves: the attacker's name now resolves to
    // the desk's address, so its page and the desk share an origin.
    let driver = Driver::start();
    let rules = "--host-resolver-rules=MAP rebound.example 127.0.0.1".to_string();
    let page = open_browser_with(&driver, &dir.join("profile"), &[rules]).await;
    let origin = format!("http://rebound.example:{}", api.port());
    page.goto(&format!("{origin}/")).await.unwrap();
    let text = js(&page, "return document.body.innerText").await;
    assert!(
        text.as_str().unwrap_or("").contains("not served here"),
        "the desk's page was served to a rebound name: {text}"
    );
    let statuses = js(
        &page,
        // WebDriver waits for a returned promise.
        r#"return Promise.all([
             fetch("/api/state").then(r => r.status),
             fetch("/api/master", { method: "PUT", headers: { "Content-Type": "application/json" },
                                   body: '{"volume":0}' }).then(r => r.status),
           ]).catch(e => String(e));"#,
    );
    let statuses = tokio::time::timeout(DEADLINE, statuses)
        .await
        .unwrap_or_else(|_| panic!("the page's requests did not finish"));
    assert_eq!(statuses, json!([421, 421]), "{statuses}");
    let (_, body) = http(api, "GET", "/api/state", None, &[]);
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["master"], 1.0, "{state}");
    page.close().await.unwrap();
    node.stop().unwrap();
}
