//! The mixing desk an operator works live, in a real browser (Debian's
//! Chromium, headless, through chromedriver): a click on a fader's track
//! does not move the gain; a drag moves it by the taper's amount from the
//! grab point; typing a level in dB sets the node's gain; keys step in dB
//! and Home never silences; every control is labelled with its source;
//! 40 sources scroll in one row with the master strip in view; at phone
//! width nothing overflows and every target is at least 44 px; a source
//! flooding the node turns its health bad, with the reason, and good again
//! once the 10 s window has passed; a strip renamed on the desk (by
//! keyboard or double-click) is renamed in the node and on a second page,
//! everywhere it is labelled, and a hostile name is shown as text; an RTP
//! output added on the outputs panel is in the node's list and on the
//! second page's panel, with its SDP, until it is removed there; when the
//! node goes away the page greys out, disables its controls, says it is
//! reconnecting, and goes live again when the node is back; with a token
//! in the page's address, the panel's calls carry it.
//!
//! The scenarios share one browser and run in sequence in one test; only
//! the health scenario takes more than a few seconds (its 10 s window).
//! Without chromium/chromedriver the test is skipped with a loud reason,
//! except under `CI=true`, where a missing browser is a failure.

mod chrome;
mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use audionode::{Args, Config, NodeHandle};
use chrome::*;
use common::*;
use fantoccini::actions::{
    Actions, InputSource, KeyAction, KeyActions, MouseActions, PointerAction, MOUSE_BUTTON_LEFT,
};
use fantoccini::{Client, Locator};
use serde_json::Value;

/// WebDriver's Shift key.
const SHIFT: char = '\u{E008}';

/// The desk's documented taper: fader position (0 … 1) to dB.
fn taper_db(p: f64) -> f64 {
    let max_db = 20.0 * 2f64.log10();
    let points = [
        (0.0, -90.0),
        (0.0625, -60.0),
        (0.25, -30.0),
        (0.5, -10.0),
        (0.75, 0.0),
        (1.0, max_db),
    ];
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    for w in points.windows(2) {
        let ((p0, d0), (p1, d1)) = (w[0], w[1]);
        if p <= p1 {
            return d0 + (p - p0) / (p1 - p0) * (d1 - d0);
        }
    }
    max_db
}

/// A node whose control surface listens on `http` (so that it can be
/// restarted on the same port), with room for 64 sources.
fn start_desk_node(dir: &Path, dest: SocketAddr, http: &str) -> NodeHandle {
    start_node_for(dir, dest, http, 64)
}

/// Like `start_desk_node`, with room for `max_sources`.
fn start_node_for(dir: &Path, dest: SocketAddr, http: &str, max_sources: usize) -> NodeHandle {
    start_node_with(dir, dest, http, max_sources, None)
}

/// Like `start_node_for`, with the control surface's token `token`.
fn start_node_with(
    dir: &Path,
    dest: SocketAddr,
    http: &str,
    max_sources: usize,
    token: Option<&str>,
) -> NodeHandle {
    let args = Args {
        listen: Some("127.0.0.1:0".into()),
        dest: vec![dest.to_string()],
        log_file: Some(dir.join("audionode.log")),
        jitter_ms: Some("60".into()),
        sample_rate: RATE,
        max_sources,
        // Generous: a sender starved of CPU for a moment must not be dropped.
        timeout_ms: 3000,
        http: http.into(),
        ..Default::default()
    };
    let env = |key: &str| {
        (key == audionode::config::HTTP_TOKEN_ENV)
            .then(|| token.map(String::from))
            .flatten()
    };
    audionode::start(Config::from_args(&args, env).unwrap()).unwrap()
}

/// Paced mono sources from one thread, each from its own socket. While
/// `flood` holds `i + 1`, source `i` sends ten packets per period: far
/// faster than real time.
struct Senders {
    addrs: Vec<SocketAddr>,
    flood: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Senders {
    /// `n` sources sending `level(source, sample)` to `to`.
    fn start(to: SocketAddr, n: usize, level: fn(usize, usize) -> i16) -> Self {
        let sockets: Vec<UdpSocket> = (0..n)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flood = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (halt, flooding) = (Arc::clone(&stop), Arc::clone(&flood));
        let thread = thread::spawn(move || {
            let start = Instant::now();
            let mut buf = vec![0u8; proto::udp_mono::mono_datagram_len(CHUNK)];
            let mut seqs = vec![0u32; n];
            let mut k = 0u64;
            while !halt.load(Ordering::SeqCst) {
                let due =
                    start + Duration::from_secs_f64(k as f64 * CHUNK as f64 / f64::from(RATE));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                let flooded = flooding.load(Ordering::SeqCst);
                for (i, socket) in sockets.iter().enumerate() {
                    let count = if flooded == i + 1 { 10 } else { 1 };
                    for _ in 0..count {
                        let first = seqs[i] as usize * CHUNK;
                        let chunk: Vec<i16> = (first..first + CHUNK).map(|j| level(i, j)).collect();
                        let len = proto::encode_mono(seqs[i], &chunk, &mut buf).unwrap();
                        let _ = socket.send_to(&buf[..len], to);
                        seqs[i] = seqs[i].wrapping_add(1);
                    }
                }
                k += 1;
            }
        });
        Self {
            addrs,
            flood,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Senders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A sine per source, each at its own pitch and level, for lively meters.
fn music(source: usize, n: usize) -> i16 {
    let freq = 110.0 * (1.0 + (source % 7) as f64 * 0.5);
    let amp = 2_000.0 + (source * 3_719 % 16_000) as f64;
    let swell = 0.55 + 0.45 * (n as f64 / 44_100.0 * (0.3 + source as f64 * 0.07)).sin();
    (amp * swell * (2.0 * std::f64::consts::PI * freq * n as f64 / 44_100.0).sin()) as i16
}

fn state(api: SocketAddr) -> Value {
    let (status, body) = http(api, "GET", "/api/state", None, &[]);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn source_state(api: SocketAddr, id: SocketAddr) -> Value {
    state(api)["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not in the state"))
}

fn volume_db(api: SocketAddr, id: SocketAddr) -> f64 {
    let v = source_state(api, id)["volume"].as_f64().unwrap();
    20.0 * v.log10()
}

/// Waits (in the node's state) until `cond` holds for source `id`.
async fn wait_state(api: SocketAddr, id: SocketAddr, what: &str, cond: impl Fn(&Value) -> bool) {
    let start = Instant::now();
    loop {
        let s = source_state(api, id);
        if cond(&s) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A rectangle of the page's element `expr`: [left, top, width, height].
async fn rect(page: &Client, expr: &str) -> [f64; 4] {
    let r = js(
        page,
        &format!(
            "const r = {expr}.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]"
        ),
    )
    .await;
    let v: Vec<f64> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    [v[0], v[1], v[2], v[3]]
}

/// Presses the left button at viewport point (x, y), moves by (0, dy) (a
/// multiple of 10 px) in steps of 10 px, and releases.
async fn drag(page: &Client, x: f64, y: f64, dy: f64) {
    let mut mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveTo {
            duration: None,
            x: x.round(),
            y: y.round(),
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        });
    // WebDriver moves by whole pixels: 10 px at a time.
    let steps = (dy.abs() / 10.0).round().max(1.0) as u32;
    assert_eq!(
        f64::from(steps) * 10.0,
        dy.abs(),
        "drag by a multiple of 10 px"
    );
    for _ in 0..steps {
        mouse = mouse.then(PointerAction::MoveBy {
            duration: Some(Duration::from_millis(20)),
            x: 0.0,
            y: dy.signum() * 10.0,
        });
    }
    mouse = mouse.then(PointerAction::Up {
        button: MOUSE_BUTTON_LEFT,
    });
    page.perform_actions(mouse).await.unwrap();
}

/// Types `text` into whatever has the focus, as a keyboard does.
async fn type_keys(page: &Client, text: &str) {
    let mut keys = KeyActions::new("keyboard".into());
    for c in text.chars() {
        keys = keys
            .then(KeyAction::Down { value: c })
            .then(KeyAction::Up { value: c });
    }
    page.perform_actions(keys).await.unwrap();
}

/// The number in an `aria-valuetext` such as "−7.2 dB".
fn db_of(text: &Value) -> f64 {
    let t = text.as_str().unwrap().replace('\u{2212}', "-");
    t.trim_end_matches(" dB")
        .parse()
        .unwrap_or_else(|_| panic!("{t}"))
}

/// The viewport's width, the page's, and the elements (those for which
/// the script expression `which` holds for `e`) reaching past its right edge.
async fn outside_viewport(page: &Client, which: &str) -> Value {
    js(
        page,
        &format!("return [innerWidth, document.documentElement.scrollWidth, [...document.querySelectorAll('body *')].filter(e => {{ const r = e.getBoundingClientRect(); return r.width > 0 && r.right > innerWidth + 0.5 && ({which}); }}).map(e => e.tagName + '#' + e.id + '.' + e.className)]"),
    )
    .await
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "current_thread")]
async fn the_desk_an_operator_can_trust() {
    if !browser_available() {
        return;
    }
    let dir = temp_dir("desk");
    let collector = Collector::start();
    let http_addr = format!("127.0.0.1:{}", free_port());
    let node = start_desk_node(&dir, collector.addr, &http_addr);
    let api = node.http_addr().unwrap();
    let three = Senders::start(node.local_addr(), 3, music);
    let [a, b, c] = [three.addrs[0], three.addrs[1], three.addrs[2]];

    let driver = Driver::start();
    let page = open_browser(&driver, &dir.join("profile")).await;
    page.goto(&format!("http://{api}/")).await.unwrap();
    wait_js(
        &page,
        "three live strips",
        &format!(
            "return document.body.classList.contains('online') && !!{} && !!{} && !!{}",
            strip(a),
            strip(b),
            strip(c)
        ),
    )
    .await;

    // Labels name the source and the function; the fader speaks dB.
    let labels = js(
        &page,
        &format!(
            "const s = {}; return [s.getAttribute('aria-label'), ...['.fader', '.mute', '.solo', '.pre', '.db-entry', '.balance'].map(q => s.querySelector(q).getAttribute('aria-label')), s.querySelector('.fader').getAttribute('role'), s.querySelector('.fader').getAttribute('aria-valuetext')]",
            strip(a)
        ),
    )
    .await;
    assert_eq!(
        labels,
        serde_json::json!([
            a.to_string(),
            format!("{a} volume"),
            format!("mute {a}"),
            format!("solo {a}"),
            format!("pre-fader meter {a}"),
            format!("{a} volume in dB"),
            format!("{a} balance"),
            "slider",
            "0.0 dB"
        ])
    );

    // A click on the track, far from the cap, moves nothing.
    let fader = format!("{}.querySelector('.fader')", strip(a));
    let cap = format!("{}.querySelector('.fader .cap')", strip(a));
    let [fx, fy, fw, fh] = rect(&page, &fader).await;
    let [_, cy, _, ch] = rect(&page, &cap).await;
    let track_top = fy + 3.0;
    page.perform_actions(
        MouseActions::new("mouse".into())
            .then(PointerAction::MoveTo {
                duration: None,
                x: (fx + fw / 2.0).round(),
                y: track_top.round(),
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            }),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        source_state(api, a)["volume"],
        1.0,
        "a click moved the gain"
    );

    // A drag from a point 40 px below the cap, 30 px down: the gain moves by
    // the taper over 30 px from 0 dB, not to where the pointer went down.
    let travel = fh - ch;
    let grab_y = cy + ch / 2.0 + 40.0;
    assert!(grab_y + 30.0 < fy + fh, "the drag stays on the fader");
    drag(&page, fx + fw / 2.0, grab_y, 30.0).await;
    let expected = taper_db(0.75 - 30.0 / travel);
    wait_state(api, a, "the dragged gain", |s| {
        let db = 20.0 * s["volume"].as_f64().unwrap().log10();
        (db - expected).abs() < 0.06
    })
    .await;
    let shown = js(
        &page,
        &format!("return {fader}.getAttribute('aria-valuetext')"),
    )
    .await;
    assert!(
        (db_of(&shown) - expected).abs() < 0.06,
        "shown {shown}, expected {expected} dB (travel {travel} px)"
    );

    // With Shift held, the same 30 px move up is ten times finer.
    let [_, cy, _, ch] = rect(&page, &cap).await;
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: SHIFT })
        .then(KeyAction::Pause {
            duration: Duration::ZERO,
        })
        .then(KeyAction::Pause {
            duration: Duration::from_millis(20),
        })
        .then(KeyAction::Pause {
            duration: Duration::from_millis(20),
        })
        .then(KeyAction::Pause {
            duration: Duration::from_millis(20),
        })
        .then(KeyAction::Pause {
            duration: Duration::ZERO,
        })
        .then(KeyAction::Up { value: SHIFT });
    let mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveTo {
            duration: None,
            x: (fx + fw / 2.0).round(),
            y: (cy + ch / 2.0).round(),
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        });
    let mouse = (0..3)
        .fold(mouse, |m, _| {
            m.then(PointerAction::MoveBy {
                duration: Some(Duration::from_millis(20)),
                x: 0.0,
                y: -10.0,
            })
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    page.perform_actions(Actions::from(keys).and(mouse))
        .await
        .unwrap();
    let fine = taper_db(0.75 - 30.0 / travel + 3.0 / travel);
    wait_state(api, a, "the Shift-dragged gain", |s| {
        let db = 20.0 * s["volume"].as_f64().unwrap().log10();
        (db - fine).abs() < 0.06
    })
    .await;
    let expected = fine;

    // Typing a level: "-6" Enter sets the node's gain to −6 dB.
    let entry = page
        .find(Locator::Css(&format!(r#".strip[data-id="{b}"] .db-entry"#)))
        .await
        .unwrap();
    entry.click().await.unwrap(); // selects what it shows
    type_keys(&page, "-6\u{E007}").await; // Enter
    wait_state(api, b, "-6 dB typed", |s| {
        (s["volume"].as_f64().unwrap() - 0.501_187).abs() < 1e-4
    })
    .await;
    wait_js(
        &page,
        "the fader to show −6 dB",
        &format!(
            "return {}.querySelector('.fader').getAttribute('aria-valuetext') === '\u{2212}6.0 dB'",
            strip(b)
        ),
    )
    .await;

    // Keys: ↓ is 1 dB, Page Down 6 dB, Home −20 dB and never lower.
    let fader_c = page
        .find(Locator::Css(&format!(r#".strip[data-id="{c}"] .fader"#)))
        .await
        .unwrap();
    fader_c.send_keys("\u{E015}\u{E015}\u{E015}").await.unwrap(); // ArrowDown ×3
    wait_state(api, c, "−3 dB by keys", |s| {
        (20.0 * s["volume"].as_f64().unwrap().log10() + 3.0).abs() < 0.01
    })
    .await;
    fader_c.send_keys("\u{E011}\u{E011}").await.unwrap(); // Home ×2
    wait_state(api, c, "Home: −20 dB", |s| {
        (20.0 * s["volume"].as_f64().unwrap().log10() + 20.0).abs() < 0.01
    })
    .await;
    fader_c.send_keys("\u{E00F}").await.unwrap(); // PageDown
    wait_state(api, c, "Page Down: −26 dB", |s| {
        (20.0 * s["volume"].as_f64().unwrap().log10() + 26.0).abs() < 0.01
    })
    .await;
    assert!((volume_db(api, a) - expected).abs() < 0.06, "A untouched");

    // A source with a name (and an opaque id) is labelled by its name and
    // sorted by it; by id, it sorts by id. Until the node reports names,
    // the page is handed the message the node will send.
    js(
        &page,
        r#"onMessage({ type: "joined", source: { id: "ssrc:1a2b3c4d", name: "Lead vocal", volume: 0.5, balance: 0, mute: false, solo: false } }); return 0"#,
    )
    .await;
    let named = r#"document.querySelector('.strip[data-id="ssrc:1a2b3c4d"]')"#;
    wait_js(
        &page,
        "the named strip",
        // With its name drawn: the strip can appear a tick before its name.
        &format!("return !!{named} && {named}.parentElement.lastElementChild === {named} && {named}.querySelector('.name').innerText.trim() !== ''"),
    )
    .await;
    let labels = js(
        &page,
        &format!(
            "const s = {named}; return [s.querySelector('.name').innerText.replace(/\\s+/g, ''), s.querySelector('.name').title, ...['.fader', '.mute', '.db-entry'].map(q => s.querySelector(q).getAttribute('aria-label')), s.querySelector('.fader').getAttribute('aria-valuetext')]"
        ),
    )
    .await;
    assert_eq!(
        labels,
        serde_json::json!([
            "Leadvocal",
            "Lead vocal (ssrc:1a2b3c4d)",
            "Lead vocal volume",
            "mute Lead vocal",
            "Lead vocal volume in dB",
            "\u{2212}6.0 dB"
        ])
    );
    // Renamed to sort first by name ("1" before "127.0.0.1:…"), last by id.
    js(
        &page,
        r#"onMessage({ type: "source", id: "ssrc:1a2b3c4d", name: "1 Alto", volume: 0.5, balance: 0, mute: false, solo: false }); return 0"#,
    )
    .await;
    wait_js(
        &page,
        "a renamed source sorted by name",
        &format!("return {named}.parentElement.children[1] === {named} && {named}.querySelector('.fader').getAttribute('aria-label') === '1 Alto volume'"),
    )
    .await;
    let sort = page.find(Locator::Css("#sort")).await.unwrap();
    sort.select_by_value("id").await.unwrap();
    wait_js(
        &page,
        "sorted by id",
        &format!("return {named}.parentElement.lastElementChild === {named}"),
    )
    .await;
    sort.select_by_value("name").await.unwrap();
    js(
        &page,
        r#"onMessage({ type: "left", id: "ssrc:1a2b3c4d" }); return 0"#,
    )
    .await;

    // Renaming and the outputs panel, seen from a second page.
    let other = open_browser(&driver, &dir.join("profile-2")).await;
    other.goto(&format!("http://{api}/")).await.unwrap();
    rename_through_the_desk(&page, &other, api, a).await;
    outputs_through_the_desk(&page, &other, api, collector.addr).await;
    // Idle until the token scenario: no second desk to feed meanwhile.
    other.goto("about:blank").await.unwrap();

    // A muted source: its post-fader meter is silent, its pre-fader one is not.
    http(
        api,
        "PUT",
        &format!("/api/sources/{a}"),
        Some(r#"{"mute":true}"#),
        &[],
    );
    page.find(Locator::Css(&format!(r#".strip[data-id="{a}"] .pre"#)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &page,
        "the pre-fader meter of a muted source to move",
        &format!(
            "const s = {}; return s.querySelector('.pre').getAttribute('aria-pressed') === 'true' && Number(s.querySelector('.meter').style.getPropertyValue('--level')) > 0.3",
            strip(a)
        ),
    )
    .await;
    // The master strip's counters are filled in.
    wait_js(
        &page,
        "node counters on the master strip",
        "const t = document.querySelector('#node-stats').innerText; return /streams\\s+3/.test(t) && /packets\\s+[1-9]/.test(t)",
    )
    .await;

    // 40 sources: one row that scrolls, the master strip in the viewport.
    let more = Senders::start(node.local_addr(), 37, music);
    wait_js(
        &page,
        "40 strips",
        "return document.querySelectorAll('.strip[data-id]').length === 40",
    )
    .await;
    let layout = js(
        &page,
        "const m = document.querySelector('#master').getBoundingClientRect(); const s = document.querySelector('#strips'); \
         const tops = new Set([...document.querySelectorAll('.strip[data-id]')].map(x => Math.round(x.getBoundingClientRect().top))); \
         return [m.left >= 0 && m.right <= innerWidth && m.top >= 0 && m.bottom <= innerHeight, s.scrollWidth > s.clientWidth, \
                 document.documentElement.scrollWidth <= innerWidth, tops.size]",
    )
    .await;
    let outside = outside_viewport(&page, "!e.closest('#strips')").await;
    assert_eq!(
        layout,
        serde_json::json!([true, true, true, 1]),
        "master visible, strips scroll, one row; outside the viewport: {outside}"
    );
    // The filter finds one source by its port; clearing it shows them all.
    let port = more.addrs[20].port().to_string();
    let filter = page.find(Locator::Css("#filter")).await.unwrap();
    filter.send_keys(&format!(":{port}")).await.unwrap();
    wait_js(
        &page,
        "the filter",
        &format!(
            "const shown = [...document.querySelectorAll('.strip[data-id]')].filter(s => !s.hidden); return shown.length === 1 && shown[0].dataset.id === '{}'",
            more.addrs[20]
        ),
    )
    .await;
    filter.clear().await.unwrap();
    js(
        &page,
        "document.querySelector('#filter').dispatchEvent(new Event('input')); return 0",
    )
    .await;

    // Phone width: strips one per row, nothing wider than the screen,
    // every target at least 44 px, no id broken inside a word.
    page.set_window_size(390, 844).await.unwrap();
    wait_js(&page, "the phone layout", "return innerWidth <= 480").await;
    let phone = js(
        &page,
        "const strips = [...document.querySelectorAll('.strip')]; \
         const wide = strips.filter(s => s.getBoundingClientRect().right > innerWidth + 0.5).map(s => s.dataset.id || 'master'); \
         const small = [...document.querySelectorAll('.strip button, .strip input, .strip .fader, #filter, #sort, #listen-toggle')] \
           .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.width < 44 || r.height < 44); }) \
           .map(e => e.className || e.id); \
         const broken = [...document.querySelectorAll('.strip .name span')].filter(s => s.getClientRects().length !== 1).map(s => s.textContent); \
         const lefts = new Set(strips.filter(s => s.dataset.id).map(s => Math.round(s.getBoundingClientRect().left))); \
         return { wide, small, broken, overflow: document.documentElement.scrollWidth > innerWidth, columns: lefts.size }",
    )
    .await;
    let outside = outside_viewport(&page, "true").await;
    assert_eq!(
        phone,
        serde_json::json!({ "wide": [], "small": [], "broken": [], "overflow": false, "columns": 1 }),
        "outside the viewport: {outside}"
    );
    page.set_window_size(1000, 760).await.unwrap();
    drop(more);

    // Health: a source flooding the node is bad, with the reason, then
    // good again once its 10 s window no longer holds the flood.
    three.flood.store(2, Ordering::SeqCst); // source b
    wait_js(
        &page,
        "b's health to turn bad",
        &format!(
            "const h = {}.querySelector('.health'); return h.classList.contains('bad') && /overflow: \\d+ packets in the last 10 s/.test(h.title) && h.getAttribute('aria-label').startsWith('{b} health: bad')",
            strip(b)
        ),
    )
    .await;
    let health = source_state(api, b)["health"].clone();
    assert_eq!(health["level"], "bad", "{health}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    three.flood.store(0, Ordering::SeqCst);
    let calm = Instant::now();
    wait_state(api, b, "b's health to be good again", |s| {
        s["health"]["level"] == "good"
    })
    .await;
    assert!(
        calm.elapsed() >= Duration::from_secs(8),
        "good again after {:?}, before its window passed",
        calm.elapsed()
    );
    wait_js(
        &page,
        "b's badge to turn good",
        &format!(
            "return {}.querySelector('.health').classList.contains('good')",
            strip(b)
        ),
    )
    .await;
    assert_eq!(source_state(api, a)["health"]["level"], "good");

    // The node goes away: the page greys out, disables every control and
    // says it is reconnecting; the node comes back: live again.
    // A stopping node may announce that its streams left before it closes
    // the socket: whichever strips remain must be disabled.
    node.stop().unwrap();
    wait_js_or(
        &page,
        "the offline state",
        "const ss = [...document.querySelectorAll('.strip[data-id]')]; return document.body.classList.contains('offline') && !document.querySelector('#offline').hidden \
               && /reconnecting/i.test(document.querySelector('#offline').textContent) \
               && ss.every(s => s.querySelector('.mute').disabled && s.querySelector('.rename').disabled && s.querySelector('.db-entry').disabled \
                 && s.querySelector('.fader').getAttribute('aria-disabled') === 'true') \
               && document.querySelector('#output-addr').disabled && document.querySelector('#output-add').disabled \
               && document.querySelector('#master-fader').tabIndex === -1 && getComputedStyle(document.querySelector('main')).opacity < 0.6",
        "return [document.body.className, document.querySelector('#offline').textContent]",
    )
    .await;
    // A drag while offline changes nothing on the page.
    let before = js(
        &page,
        "return document.querySelector('#master-fader').getAttribute('aria-valuetext')",
    )
    .await;
    let [mx, my, mw, mh] = rect(&page, "document.querySelector('#master-fader')").await;
    drag(&page, mx + mw / 2.0, my + mh / 2.0, 40.0).await;
    let after = js(
        &page,
        "return document.querySelector('#master-fader').getAttribute('aria-valuetext')",
    )
    .await;
    assert_eq!(before, after, "an offline fader moved");
    let node = start_desk_node(&dir, collector.addr, &http_addr);
    wait_js(
        &page,
        "live again",
        "return document.body.classList.contains('online') && document.querySelector('#offline').hidden && document.querySelector('#master-fader').getAttribute('aria-disabled') === 'false'",
    )
    .await;
    // With no source, the page says where to send.
    let listen = node.local_addr().to_string();
    wait_js(
        &page,
        "where to send",
        &format!(
            "const e = document.querySelector('#empty'); return !e.hidden && e.innerText.includes('{listen}')"
        ),
    )
    .await;
    page.close().await.unwrap();
    drop(three);
    node.stop().unwrap();

    // With a token in the page's address, the panel's REST calls and its
    // SDP links carry it.
    let token = "desk-token-7f3a";
    let node = start_node_with(&dir, collector.addr, "127.0.0.1:0", 8, Some(token));
    let api = node.http_addr().unwrap();
    other
        .goto(&format!("http://{api}/?token={token}"))
        .await
        .unwrap();
    wait_js(
        &other,
        "the outputs with a token",
        &format!(
            "return document.body.classList.contains('online') && document.querySelector('#output-list li[data-addr=\"{}\"]') !== null",
            collector.addr
        ),
    )
    .await;
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink_addr = sink.local_addr().unwrap();
    add_output(&other, &sink_addr.to_string()).await;
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    let (status, body) = http(api, "GET", "/api/outputs", None, &auth);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!(
            r#"{{"kind":"rtp","codec":"l16","addr":"{sink_addr}"}}"#
        )),
        "{body}"
    );
    let href = wait_sdp_link(&other, sink_addr).await;
    assert!(href.ends_with(&format!("&token={token}")), "{href}");
    let (status, sdp) = http(api, "GET", &href, None, &[]);
    assert_eq!(status, 200, "{href}: {sdp}");
    remove_output(&other, "rtp", sink_addr).await;
    let (_, body) = http(api, "GET", "/api/outputs", None, &auth);
    assert!(!body.contains(&sink_addr.to_string()), "{body}");
    other.close().await.unwrap();
    node.stop().unwrap();
}

/// Opens the rename field of the strip of `id` with its ✎ button, by
/// keyboard (focus, Enter), types `text` and Enter.
async fn rename_by_keyboard(page: &Client, id: SocketAddr, text: &str) {
    js(
        page,
        &format!("{}.querySelector('.rename').focus(); return 0", strip(id)),
    )
    .await;
    type_keys(page, "\u{E007}").await; // Enter on the button
    wait_js(
        page,
        "the name field",
        "return document.activeElement.classList.contains('name-edit')",
    )
    .await;
    type_keys(page, &format!("{text}\u{E007}")).await;
}

/// The operator renames a strip on `page`; the node and `other` show it,
/// everywhere the strip is labelled, as text; an empty name removes it.
async fn rename_through_the_desk(page: &Client, other: &Client, api: SocketAddr, a: SocketAddr) {
    wait_js(
        other,
        "the second page live",
        &format!(
            "return document.body.classList.contains('online') && !!{}",
            strip(a)
        ),
    )
    .await;
    // A mono source shows no stereo badge and no secondary text (its id is
    // its name); a stereo one shows the badge, and its sender's address.
    let mono = js(
        page,
        &format!(
            "const s = {}; return [s.querySelector('.stereo').hidden, s.querySelector('.sub').textContent, s.querySelector('.rename').getAttribute('aria-label')]",
            strip(a)
        ),
    )
    .await;
    assert_eq!(mono, serde_json::json!([true, "", format!("rename {a}")]));
    js(
        page,
        r#"onMessage({ type: "joined", source: { id: "ssrc:00c0ffee", name: null, channels: 2, from: "127.0.0.1:9", volume: 1, balance: 0, mute: false, solo: false } }); return 0"#,
    )
    .await;
    let stereo = js(
        page,
        r#"const s = document.querySelector('.strip[data-id="ssrc:00c0ffee"]'); const r = s.querySelector('.stereo').getBoundingClientRect(); onMessage({ type: "left", id: "ssrc:00c0ffee" }); return [r.width > 0, s.querySelector('.stereo').textContent, s.querySelector('.sub').textContent, s.dataset.channels]"#,
    )
    .await;
    assert_eq!(
        stereo,
        serde_json::json!([true, "stereo", "from 127.0.0.1:9", "2"])
    );

    // Renamed with the ✎ button by keyboard.
    rename_by_keyboard(page, a, "bass").await;
    wait_state(api, a, "the name in the state", |s| s["name"] == "bass").await;
    let labelled = |name: &str| {
        format!(
            "const s = {}; return s.querySelector('.name').textContent === {name:?} && s.getAttribute('aria-label') === {name:?} \
               && s.querySelector('.fader').getAttribute('aria-label') === {volume:?} && s.querySelector('.mute').getAttribute('aria-label') === {mute:?} \
               && s.querySelector('.rename').getAttribute('aria-label') === {rename:?} && s.querySelector('.sub').textContent === '{a}'",
            strip(a),
            volume = format!("{name} volume"),
            mute = format!("mute {name}"),
            rename = format!("rename {name}"),
        )
    };
    wait_js(other, "the name on the other page", &labelled("bass")).await;
    wait_js(page, "the name on this page", &labelled("bass")).await;
    // The focus is back on the button.
    let focused = js(
        page,
        &format!(
            "return document.activeElement === {}.querySelector('.rename')",
            strip(a)
        ),
    )
    .await;
    assert_eq!(focused, Value::Bool(true));

    // A hostile name is shown literally: no element is made of it.
    let hostile = "<img src=x onerror=alert(1)>";
    rename_by_keyboard(page, a, hostile).await;
    wait_state(api, a, "the hostile name in the state", |s| {
        s["name"] == hostile
    })
    .await;
    wait_js(other, "the hostile name shown as text", &labelled(hostile)).await;
    for p in [page, other] {
        let injected = js(
            p,
            &format!(
                "const s = {}; return [document.querySelectorAll('img').length, [...s.querySelectorAll('.name *')].map(e => e.tagName), s.querySelector('.name').title]",
                strip(a)
            ),
        )
        .await;
        assert_eq!(
            injected,
            serde_json::json!([0, ["SPAN"], format!("{hostile} ({a})")])
        );
    }

    // Escape cancels; a double-click on the name opens the field too, and
    // an empty name removes it: the strip is labelled by its id again.
    js(
        page,
        &format!(
            "{}.querySelector('.name').dispatchEvent(new MouseEvent('dblclick', {{ bubbles: true }})); return 0",
            strip(a)
        ),
    )
    .await;
    wait_js(
        page,
        "the name field by double-click",
        &format!(
            "const i = document.activeElement; return i.classList.contains('name-edit') && i.value === {hostile:?} && {}.contains(i)",
            strip(a)
        ),
    )
    .await;
    type_keys(page, "x\u{E00C}").await; // Escape
    let cancelled = js(
        page,
        &format!(
            "const s = {}; return [!!s.querySelector('.name-edit'), s.querySelector('.name').hidden]",
            strip(a)
        ),
    )
    .await;
    assert_eq!(cancelled, serde_json::json!([false, false]));
    assert_eq!(source_state(api, a)["name"], hostile);
    rename_by_keyboard(page, a, "\u{E003}").await; // Backspace: the selected name goes
    wait_state(api, a, "no name", |s| s["name"].is_null()).await;
    wait_js(
        other,
        "the id as the label again",
        &format!(
            "const s = {}; return s.querySelector('.name').textContent === '{a}' && s.querySelector('.fader').getAttribute('aria-label') === '{a} volume' && s.querySelector('.sub').textContent === ''",
            strip(a)
        ),
    )
    .await;
}

/// Types `addr` into the outputs panel of `page` and presses Enter (RTP,
/// the panel's first kind).
async fn add_output(page: &Client, addr: &str) {
    js(
        page,
        "const d = document.querySelector('#outputs'); if (!d.open) d.querySelector('summary').click(); return 0",
    )
    .await;
    let field = page.find(Locator::Css("#output-addr")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(&format!("{addr}\u{E007}")).await.unwrap();
}

/// Waits for `page`'s panel to list the RTP output to `addr`; its SDP link.
async fn wait_sdp_link(page: &Client, addr: SocketAddr) -> String {
    let item = format!(
        r#"document.querySelector('#output-list li[data-kind="rtp"][data-addr="{addr}"]')"#
    );
    wait_js(
        page,
        "the RTP output in the panel",
        &format!("return {item} !== null"),
    )
    .await;
    js(
        page,
        &format!("return {item}.querySelector('a.sdp').getAttribute('href')"),
    )
    .await
    .as_str()
    .unwrap()
    .to_string()
}

/// Removes the `kind` output to `addr` with its button on `page`, and
/// waits for the panel to drop it.
async fn remove_output(page: &Client, kind: &str, addr: SocketAddr) {
    let item = format!(r#"#output-list li[data-kind="{kind}"][data-addr="{addr}"]"#);
    page.find(Locator::Css(&format!("{item} .remove")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        page,
        "the output gone from the panel",
        &format!("return document.querySelector('{item}') === null"),
    )
    .await;
}

/// The outputs panel: a bad address is refused inline; an RTP output added
/// on `page` is in the node's list and on `other`'s panel, with its SDP;
/// removed on `other`, it is gone everywhere.
async fn outputs_through_the_desk(
    page: &Client,
    other: &Client,
    api: SocketAddr,
    dest: SocketAddr,
) {
    js(
        other,
        "const d = document.querySelector('#outputs'); if (!d.open) d.querySelector('summary').click(); return 0",
    )
    .await;
    wait_js(
        page,
        "the start-up output listed",
        &format!(
            r#"return document.querySelector('#output-list li[data-kind="udp-stereo"][data-addr="{dest}"]') !== null && document.querySelector('#output-count').textContent === '(1)'"#
        ),
    )
    .await;
    add_output(page, "not-an-address").await;
    wait_js(
        page,
        "the refusal shown inline",
        "const e = document.querySelector('#output-error'); return !e.hidden && /not an IP:PORT/.test(e.textContent) && document.querySelector('#output-addr').getAttribute('aria-invalid') === 'true'",
    )
    .await;

    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sink.local_addr().unwrap();
    add_output(page, &addr.to_string()).await;
    wait_js(
        page,
        "the panel to list the new output",
        &format!(
            r#"return document.querySelector('#output-list li[data-kind="rtp"][data-addr="{addr}"]') !== null && document.querySelector('#output-error').hidden && document.querySelector('#output-addr').value === ''"#
        ),
    )
    .await;
    let (status, body) = http(api, "GET", "/api/outputs", None, &[]);
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed,
        serde_json::json!({ "outputs": [
            { "kind": "udp-stereo", "codec": "l16", "addr": dest.to_string() },
            { "kind": "rtp", "codec": "l16", "addr": addr.to_string() },
        ] })
    );
    let href = wait_sdp_link(other, addr).await;
    let (status, sdp) = http(api, "GET", &href, None, &[]);
    assert_eq!(status, 200, "{href}: {sdp}");
    assert!(
        sdp.contains(&format!("m=audio {} RTP/AVP", addr.port())),
        "{sdp}"
    );
    // The same address twice is refused, with the node's reason.
    add_output(page, &addr.to_string()).await;
    wait_js(
        page,
        "the duplicate refused",
        "const e = document.querySelector('#output-error'); return !e.hidden && /exists already/.test(e.textContent)",
    )
    .await;

    remove_output(other, "rtp", addr).await;
    let (_, body) = http(api, "GET", "/api/outputs", None, &[]);
    assert!(!body.contains(&addr.to_string()), "{body}");
    wait_js(
        page,
        "the output gone from the first page",
        &format!(
            r#"return document.querySelector('#output-list li[data-addr="{addr}"]') === null && document.querySelector('#output-count').textContent === '(1)'"#
        ),
    )
    .await;
    // An Opus output, chosen in the kind menu: listed with its codec,
    // Opus in its SDP, and the packets that arrive are Opus (PT 111).
    // What the L16 output left in the socket goes first.
    sink.set_nonblocking(true).unwrap();
    let mut datagram = [0u8; 2048];
    while sink.recv(&mut datagram).is_ok() {}
    sink.set_nonblocking(false).unwrap();
    js(
        page,
        "const k = document.querySelector('#output-kind'); k.value = 'rtp opus'; k.dispatchEvent(new Event('change')); return 0",
    )
    .await;
    add_output(page, &addr.to_string()).await;
    wait_js(
        other,
        "the Opus output in the other page's panel",
        &format!(
            r#"const li = document.querySelector('#output-list li[data-kind="rtp"][data-codec="opus"][data-addr="{addr}"]'); return li !== null && li.querySelector('.kind').textContent === 'RTP Opus' && li.querySelector('a.sdp') !== null"#
        ),
    )
    .await;
    let (_, body) = http(api, "GET", "/api/outputs", None, &[]);
    assert!(
        body.contains(&format!(
            r#"{{"kind":"rtp","codec":"opus","addr":"{addr}"}}"#
        )),
        "{body}"
    );
    let href = wait_sdp_link(other, addr).await;
    let (status, sdp) = http(api, "GET", &href, None, &[]);
    assert_eq!(status, 200, "{href}: {sdp}");
    assert!(sdp.contains("a=rtpmap:111 opus/48000/2\r\n"), "{sdp}");
    sink.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let n = sink
        .recv(&mut datagram)
        .expect("Opus packets at the output");
    assert_eq!(
        proto::rtp::RtpPacket::decode(&datagram[..n])
            .unwrap()
            .payload_type,
        111
    );
    remove_output(other, "rtp", addr).await;
    wait_js(
        page,
        "the Opus output gone from the first page",
        &format!(
            r#"return document.querySelector('#output-list li[data-addr="{addr}"]') === null && document.querySelector('#output-count').textContent === '(1)'"#
        ),
    )
    .await;
    js(
        page,
        "document.querySelector('#output-kind').value = 'rtp'; return 0",
    )
    .await;
    // Closed again: the master strip keeps its size for what follows.
    for p in [page, other] {
        js(
            p,
            "document.querySelector('#outputs').open = false; return 0",
        )
        .await;
    }
}

/// Renders the documentation's screenshots into `docs/img/`: the desk
/// with 3 sources, with 40, and at phone width. Run by hand:
/// `cargo test -p audionode --test desk -- --ignored`.
#[tokio::test(flavor = "current_thread")]
#[ignore = "writes the documentation screenshots"]
async fn screenshots_for_the_docs() {
    assert!(
        browser_available(),
        "chromium is needed for the screenshots"
    );
    let dir = temp_dir("desk-screenshots");
    let collector = Collector::start();
    let node = start_desk_node(&dir, collector.addr, "127.0.0.1:0");
    let api = node.http_addr().unwrap();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img");
    std::fs::create_dir_all(&out).unwrap();
    let driver = Driver::start();
    let page = open_browser(&driver, &dir.join("profile")).await;
    let three = Senders::start(node.local_addr(), 3, music);
    page.goto(&format!("http://{api}/")).await.unwrap();
    wait_js(
        &page,
        "3 strips",
        "return document.querySelectorAll('.strip[data-id]').length === 3",
    )
    .await;
    let put = |id: SocketAddr, body: &str| {
        http(api, "PUT", &format!("/api/sources/{id}"), Some(body), &[])
    };
    put(three.addrs[0], r#"{"volume_db":-3}"#);
    put(three.addrs[1], r#"{"volume_db":-9.5,"balance":-0.4}"#);
    put(three.addrs[2], r#"{"volume_db":2,"balance":0.3}"#);
    http(
        api,
        "PUT",
        "/api/master",
        Some(r#"{"volume_db":-1.5}"#),
        &[],
    );
    // The second source's meter before its fader.
    js(
        &page,
        &format!(
            "{}.querySelector('.pre').click(); return 0",
            strip(three.addrs[1])
        ),
    )
    .await;
    // A flood on the third turns it bad for the picture.
    three.flood.store(3, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    three.flood.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    std::fs::write(
        out.join("desk-3-sources.png"),
        page.screenshot().await.unwrap(),
    )
    .unwrap();

    let more = Senders::start(node.local_addr(), 37, music);
    // Forty sources at these levels would clip: the master down.
    http(api, "PUT", "/api/master", Some(r#"{"volume_db":-22}"#), &[]);
    wait_js(
        &page,
        "40 strips",
        "return document.querySelectorAll('.strip[data-id]').length === 40",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    std::fs::write(
        out.join("desk-40-sources.png"),
        page.screenshot().await.unwrap(),
    )
    .unwrap();

    drop(more);
    wait_js(
        &page,
        "3 strips again",
        "return document.querySelectorAll('.strip[data-id]').length === 3",
    )
    .await;
    page.set_window_size(390, 844).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    std::fs::write(out.join("desk-phone.png"), page.screenshot().await.unwrap()).unwrap();
    eprintln!("wrote {}/desk-*.png", out.display());
    page.close().await.unwrap();
    drop(three);
    node.stop().unwrap();
}

/// Renders the Listen and Send pages' screenshots into `docs/img/`: the
/// Listen page playing a node's mix (its latency and underruns showing),
/// and the Send page sending a fake microphone under a name, its meter
/// moving. Both browsers play or capture through PulseAudio, so run by
/// hand after `eval "$(scripts/headless-audio.sh)"`:
/// `cargo test -p audionode --test desk -- --ignored browser_pages`.
#[tokio::test(flavor = "current_thread")]
#[ignore = "writes the documentation screenshots"]
async fn screenshots_of_the_browser_pages() {
    assert!(
        browser_available(),
        "chromium is needed for the screenshots"
    );
    let dir = temp_dir("page-screenshots");
    let collector = Collector::start();
    let node = start_desk_node(&dir, collector.addr, "127.0.0.1:0");
    let api = node.http_addr().unwrap();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img");
    std::fs::create_dir_all(&out).unwrap();
    let driver = Driver::start_audible();
    let three = Senders::start(node.local_addr(), 3, music);

    let extra = ["--autoplay-policy=no-user-gesture-required".to_string()];
    let page = open_browser_with(&driver, &dir.join("listen-profile"), &extra).await;
    page.set_window_size(520, 420).await.unwrap();
    page.goto(&format!("http://{api}/listen")).await.unwrap();
    page.find(Locator::Id("play"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &page,
        "the latency on the Listen page",
        "return /^\\d+ ms$/.test(document.getElementById('latency').textContent)",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::fs::write(out.join("listen.png"), page.screenshot().await.unwrap()).unwrap();
    page.close().await.unwrap();

    // A microphone that plays a swelling chord.
    let wav = dir.join("microphone.wav");
    let chord: Vec<i16> = (0..RATE as usize * 4)
        .map(|n| music(0, n) / 2 + music(3, n) / 2)
        .collect();
    signal::write_wav(&wav, &chord, RATE);
    let extra = [
        "--use-fake-ui-for-media-stream".to_string(),
        "--use-fake-device-for-media-stream".to_string(),
        format!("--use-file-for-fake-audio-capture={}", wav.display()),
    ];
    let page = open_browser_with(&driver, &dir.join("send-profile"), &extra).await;
    page.set_window_size(640, 760).await.unwrap();
    page.goto(&format!("http://{api}/send")).await.unwrap();
    page.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys("Cello")
        .await
        .unwrap();
    // Microphones have names once the page may use one: send once, stop,
    // and pick the fake microphone by name.
    page.find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &page,
        "the first send",
        "return document.body.dataset.state === 'sending'",
    )
    .await;
    page.find(Locator::Id("stop"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &page,
        "the fake microphone in the list",
        "const d = document.getElementById('device'); \
         const o = [...d.options].find((o) => o.value); \
         if (o) d.value = o.value; return !!o",
    )
    .await;
    page.find(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &page,
        "the Send page to send",
        "return document.body.dataset.state === 'sending' && Number(document.body.dataset.peak) > 0.05",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::write(out.join("send.png"), page.screenshot().await.unwrap()).unwrap();
    eprintln!("wrote {}/listen.png and send.png", out.display());
    page.close().await.unwrap();
    drop(three);
    node.stop().unwrap();
}

/// Measures the desk with 40 and then 200 live sources: the size of a
/// meters message, the page's time per message and per drawn frame, and
/// frames drawn per second (printed: they depend on the machine's load);
/// the master strip must stay in view and only the strips on screen may be
/// drawn. Run by hand:
/// `cargo test -p audionode --test desk -- --ignored two_hundred --nocapture`.
#[tokio::test(flavor = "current_thread")]
#[ignore = "a measurement; takes a while"]
async fn two_hundred_sources() {
    assert!(browser_available(), "chromium is needed");
    let dir = temp_dir("desk-200");
    let collector = Collector::start();
    let node = start_node_for(&dir, collector.addr, "127.0.0.1:0", 256);
    let api = node.http_addr().unwrap();
    http(api, "PUT", "/api/master", Some(r#"{"volume_db":-30}"#), &[]);
    let driver = Driver::start();
    let page = open_browser(&driver, &dir.join("profile")).await;
    page.goto(&format!("http://{api}/")).await.unwrap();
    let mut senders = Vec::new();
    for (n, more) in [(40, 40), (200, 160)] {
        senders.push(Senders::start(node.local_addr(), more, music));
        wait_js(
            &page,
            "the strips",
            &format!("return document.querySelectorAll('.strip[data-id]').length === {n}"),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        js(
            &page,
            "window.m = { frames: 0, drawMs: 0, drawMax: 0, msgs: 0, msgMs: 0, bytes: 0 }; \
             if (!window.wrapped) { window.wrapped = true; \
             const d = draw; draw = function (t) { const s = performance.now(); d(t); const e = performance.now() - s; m.frames++; m.drawMs += e; m.drawMax = Math.max(m.drawMax, e); }; \
             const h = ws.onmessage; ws.onmessage = function (e) { const s = performance.now(); h(e); m.msgs++; m.msgMs += performance.now() - s; if (e.data.startsWith('{\"type\":\"meters\"')) m.bytes = e.data.length; }; } return 0",
        )
        .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let m = js(
            &page,
            "m.visible = [...strips.values()].filter(s => s.visible).length; return m",
        )
        .await;
        let f = |k: &str| m[k].as_f64().unwrap();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        eprintln!(
            "{n} sources ({} drawn, load {}): meters message {:.0} KB; {:.1} messages/s at {:.2} ms each; {:.1} frames/s, {:.2} ms mean, {:.2} ms max to draw",
            m["visible"],
            load.split(' ').next().unwrap_or("?"),
            f("bytes") / 1024.0,
            f("msgs") / 5.0,
            f("msgMs") / f("msgs"),
            f("frames") / 5.0,
            f("drawMs") / f("frames"),
            f("drawMax"),
        );
        let master_in_view = js(
            &page,
            "const r = document.querySelector('#master').getBoundingClientRect(); return r.right <= innerWidth && r.left >= 0",
        )
        .await;
        assert_eq!(master_in_view, Value::Bool(true));
        // Timings depend on the machine's load; what the design guarantees
        // is that only the strips on screen are drawn, however many exist.
        assert!(f("visible") <= 24.0, "only strips on screen are drawn: {m}");
        assert!(f("frames") > 0.0 && f("msgs") > 0.0, "{m}");
    }
    page.close().await.unwrap();
    drop(senders);
    node.stop().unwrap();
}
