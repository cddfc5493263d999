//! The control surface under attack, over real sockets: a web page on
//! another origin opening the WebSocket or sending changes, DNS-rebound
//! host names, form-encoded changes, idle and slow connections, and more
//! clients than the caps allow.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use audionode::control::HttpLimits;
use audionode::{Args, Config, NodeHandle};
use common::*;
use serde_json::Value;
use tungstenite::client::IntoClientRequest;

/// A node with its control surface on 127.0.0.1:0, `allow_hosts` and, if
/// given, `limits` instead of the defaults.
fn node_with(dir_name: &str, allow_hosts: &[&str], limits: Option<HttpLimits>) -> NodeHandle {
    let dir = temp_dir(dir_name);
    let args = Args {
        listen: Some("127.0.0.1:0".into()),
        dest: vec!["127.0.0.1:9".into()],
        log_file: Some(dir.join("audionode.log")),
        sample_rate: RATE,
        max_sources: 4,
        timeout_ms: 1000,
        http: "127.0.0.1:0".into(),
        http_allow_host: allow_hosts.iter().map(|h| h.to_string()).collect(),
        rt_priority: 0,
        ..Default::default()
    };
    let mut config = Config::from_args(&args, |_| None).unwrap();
    if let Some(limits) = limits {
        config.http.as_mut().unwrap().limits = limits;
    }
    audionode::start(config).unwrap()
}

/// Sends `request` as it is over a fresh connection; (status, whole reply).
fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A request with the given Host and extra header lines (each ending in CRLF).
fn request(method: &str, path: &str, host: &str, headers: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
}

const JSON: &str = "Content-Type: application/json\r\n";

fn master(api: SocketAddr) -> f64 {
    let (status, body) = http(api, "GET", "/api/state", None, &[]);
    assert_eq!(status, 200, "{body}");
    let state: Value = serde_json::from_str(&body).unwrap();
    state["master"].as_f64().unwrap()
}

/// Opens `/ws` with `origin` (if any): Ok(first message) or Err(status, body).
fn open_ws(api: SocketAddr, origin: Option<&str>) -> Result<String, (u16, String)> {
    let mut request = format!("ws://{api}/ws").into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    match tungstenite::connect(request) {
        Ok((mut ws, _)) => Ok(ws.read().unwrap().into_text().unwrap().to_string()),
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            Err((
                response.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            ))
        }
        Err(e) => panic!("WebSocket to {api} failed without an HTTP status: {e}"),
    }
}

#[test]
fn a_page_on_another_origin_cannot_open_the_websocket() {
    let node = node_with("sec-cswsh", &[], None);
    let api = node.http_addr().unwrap();
    let port = api.port();
    for origin in [
        "http://evil.example".to_string(),
        "https://evil.example".to_string(),
        "null".to_string(),
        // Same host, another port: another origin, e.g. a local dev server.
        format!("http://127.0.0.1:{}", port.wrapping_add(1).max(1)),
    ] {
        let refused = open_ws(api, Some(&origin)).expect_err(&origin);
        assert_eq!(refused.0, 403, "{origin}: {refused:?}");
        assert!(
            !refused.1.contains("\"type\":\"state\""),
            "no state is sent: {refused:?}"
        );
    }
    // Same origin, by address or by name, and clients that send no Origin.
    for origin in [
        Some(format!("http://127.0.0.1:{port}")),
        Some(format!("http://localhost:{port}")),
        None,
    ] {
        let first = open_ws(api, origin.as_deref()).unwrap();
        assert!(first.starts_with(r#"{"type":"state""#), "{first}");
    }
    node.stop().unwrap();
}

#[test]
fn rebound_host_names_are_refused_before_routing_and_change_nothing() {
    let node = node_with("sec-rebinding", &[], None);
    let api = node.http_addr().unwrap();
    let body = r#"{"volume":0.0}"#;
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{}", api.port()),
        "127.0.0.1.nip.io".to_string(),
        format!("127.0.0.1.nip.io:{}", api.port()),
    ] {
        for path in [
            "/api/state",
            "/api/master",
            "/api/sources/127.0.0.1:9",
            "/",
            "/metrics",
            "/no/such/page",
        ] {
            let (status, reply) = raw(api, &request("GET", path, &host, "", ""));
            assert_eq!(status, 421, "GET {path} Host {host}: {reply}");
            assert!(!reply.contains("\"sources\""), "{reply}");
        }
        let (status, reply) = raw(api, &request("PUT", "/api/master", &host, JSON, body));
        assert_eq!(status, 421, "PUT Host {host}: {reply}");
        assert!(reply.contains("not served here"), "{reply}");
        let db = r#"{"volume_db":null}"#;
        let (status, reply) = raw(api, &request("PUT", "/api/master", &host, JSON, db));
        assert_eq!(status, 421, "PUT volume_db Host {host}: {reply}");
    }
    assert_eq!(master(api), 1.0, "refused PUTs changed nothing");
    // Loopback names and addresses, with and without the port.
    for host in [
        "localhost".to_string(),
        format!("localhost:{}", api.port()),
        "127.0.0.1".to_string(),
        "[::1]".to_string(),
    ] {
        let (status, reply) = raw(api, &request("GET", "/api/state", &host, "", ""));
        assert_eq!(status, 200, "Host {host}: {reply}");
    }
    node.stop().unwrap();

    // A name given with --http-allow-host is served, others still not.
    let node = node_with("sec-allow-host", &["desk.example"], None);
    let api = node.http_addr().unwrap();
    let host = format!("desk.example:{}", api.port());
    let (status, reply) = raw(api, &request("GET", "/api/state", &host, "", ""));
    assert_eq!(status, 200, "{reply}");
    let origin = format!("Origin: http://{host}\r\n{JSON}");
    let (status, reply) = raw(
        api,
        &request("PUT", "/api/master", &host, &origin, r#"{"volume":0.5}"#),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(master(api), 0.5);
    let (status, _) = raw(api, &request("GET", "/api/state", "evil.example", "", ""));
    assert_eq!(status, 421);
    node.stop().unwrap();
}

#[test]
fn changes_need_json_and_must_not_come_from_another_origin() {
    let node = node_with("sec-csrf", &[], None);
    let api = node.http_addr().unwrap();
    let host = api.to_string();
    let body = r#"{"volume":0.0}"#;
    // What an HTML form or a no-preflight fetch can send.
    for content_type in [
        "",
        "Content-Type: text/plain\r\n",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
    ] {
        let (status, reply) = raw(
            api,
            &request("PUT", "/api/master", &host, content_type, body),
        );
        assert_eq!(status, 415, "{content_type:?}: {reply}");
        assert!(reply.contains("application/json"), "{reply}");
    }
    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        let headers = format!("Origin: {origin}\r\n{JSON}");
        let (status, reply) = raw(api, &request("PUT", "/api/master", &host, &headers, body));
        assert_eq!(status, 403, "Origin {origin}: {reply}");
        let db = r#"{"volume_db":null}"#;
        let (status, reply) = raw(api, &request("PUT", "/api/master", &host, &headers, db));
        assert_eq!(status, 403, "Origin {origin}, volume_db: {reply}");
        let source = "/api/sources/127.0.0.1:9";
        let (status, reply) = raw(api, &request("PUT", source, &host, &headers, db));
        assert_eq!(status, 403, "Origin {origin}, a source: {reply}");
    }
    assert_eq!(master(api), 1.0, "refused changes changed nothing");
    // The desk's own origin, and a client that sends no Origin (curl).
    let same = format!("Origin: http://localhost:{}\r\n{JSON}", api.port());
    let (status, reply) = raw(
        api,
        &request("PUT", "/api/master", &host, &same, r#"{"volume":0.5}"#),
    );
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = raw(
        api,
        &request("PUT", "/api/master", &host, JSON, r#"{"volume":0.25}"#),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(master(api), 0.25);
    node.stop().unwrap();
}

/// Reads until the server closes `stream`; what it sent, or None if it
/// was still open after the deadline.
fn wait_closed(stream: &mut TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&reply).into_owned()),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&reply).into_owned())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Whether a fresh GET /api/state is answered 200.
fn answers(api: SocketAddr) -> bool {
    raw(api, &request("GET", "/api/state", &api.to_string(), "", "")).0 == 200
}

#[test]
fn connections_over_the_cap_are_refused_at_once() {
    let limits = HttpLimits {
        max_connections: 4,
        max_ws_clients: 4,
        max_listeners: 4,
        // Long enough that only the cap can explain what happens here.
        header_timeout: Duration::from_secs(120),
        idle_timeout: Duration::from_secs(120),
    };
    let node = node_with("sec-cap", &[], Some(limits));
    let api = node.http_addr().unwrap();
    let mut idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(api).unwrap()).collect();
    // The server accepts in order, so this one finds every slot taken.
    let mut extra = TcpStream::connect(api).unwrap();
    let reply = wait_closed(&mut extra).expect("a connection over the cap is closed at once");
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 503"),
        "{reply}"
    );
    assert!(!answers(api), "every slot is still taken");
    // One idle client leaves: its slot is free again.
    idle.pop();
    wait_for("a fresh request to be answered", || answers(api));
    drop(idle);
    node.stop().unwrap();
}

#[test]
fn idle_and_slow_connections_are_closed_and_the_api_stays_answerable() {
    let limits = HttpLimits {
        max_connections: 8,
        max_ws_clients: 4,
        max_listeners: 4,
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
    };
    let node = node_with("sec-idle", &[], Some(limits));
    let api = node.http_addr().unwrap();
    let host = api.to_string();
    // A request head that never ends (slowloris), a body that never comes,
    // and more silent connections than the cap.
    let mut slow_head = TcpStream::connect(api).unwrap();
    slow_head
        .write_all(format!("GET /api/state HTTP/1.1\r\nHost: {host}\r\n").as_bytes())
        .unwrap();
    let mut slow_body = TcpStream::connect(api).unwrap();
    slow_body
        .write_all(
            format!("PUT /api/master HTTP/1.1\r\nHost: {host}\r\n{JSON}Content-Length: 100\r\n\r\n{{\"vol")
                .as_bytes(),
        )
        .unwrap();
    let mut streams = vec![slow_head, slow_body];
    streams.extend((0..20).map(|_| TcpStream::connect(api).unwrap()));
    for (i, stream) in streams.iter_mut().enumerate() {
        assert!(
            wait_closed(stream).is_some(),
            "connection {i} was still open after {DEADLINE:?}"
        );
    }
    wait_for("a fresh request to be answered", || answers(api));
    assert_eq!(master(api), 1.0, "the unfinished PUT changed nothing");
    // A keep-alive connection that goes quiet after a request is closed too.
    let mut keep_alive = TcpStream::connect(api).unwrap();
    keep_alive
        .write_all(format!("GET /api/state HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    let reply = wait_closed(&mut keep_alive).expect("an idle keep-alive connection is closed");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    node.stop().unwrap();
}

#[test]
fn websocket_clients_over_the_cap_get_503() {
    let limits = HttpLimits {
        max_ws_clients: 2,
        ..HttpLimits::default()
    };
    let node = node_with("sec-ws-cap", &[], Some(limits));
    let api = node.http_addr().unwrap();
    let connect = || {
        let (mut ws, _) = tungstenite::connect(format!("ws://{api}/ws")).unwrap();
        let first = ws.read().unwrap().into_text().unwrap();
        assert!(first.starts_with(r#"{"type":"state""#));
        ws
    };
    let mut first = connect();
    let _second = connect();
    let (status, body) = open_ws(api, None).expect_err("a third client is refused");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("too many WebSocket clients"), "{body}");
    assert!(answers(api), "REST still works at the WebSocket cap");
    // A client that leaves frees its place.
    first.close(None).unwrap();
    while first.read().is_ok() {}
    wait_for("a place for a new WebSocket client", || {
        open_ws(api, None).is_ok()
    });
    node.stop().unwrap();
}

/// CPU time (user + system) the process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second.max(1))
}

#[test]
fn running_out_of_descriptors_neither_spins_nor_stops_the_server() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let dir = temp_dir("sec-emfile");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_audionode"));
    cmd.env_remove("LISTEN_PORT")
        .env_remove("DEST")
        .env_remove("LOGFILE")
        .env_remove("BUFFER_SIZE")
        .env_remove("AUDIONODE_HTTP_TOKEN")
        .env("RUST_LOG", "info")
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--rt-priority", "0", "--dest", "127.0.0.1:9"])
        .arg("--log-file")
        .arg(dir.join("audionode.log"))
        .stderr(Stdio::piped());
    // 64 descriptors, hard limit too: far fewer than the connection cap
    // (256), so the kernel's limit comes first.
    // SAFETY: between fork and exec the closure only calls setrlimit.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let api: SocketAddr = loop {
        let line = lines.next().expect("the node announces its desk").unwrap();
        if let Some(rest) = line.split("mixing desk on http://").nth(1) {
            break rest.trim_end_matches('/').parse().unwrap();
        }
    };
    // Keep reading the log so that the node never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    // More silent connections than descriptors: the server runs out and
    // the rest wait in the listen queue.
    let held: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect_timeout(&api, Duration::from_secs(1)).ok())
        .collect();
    assert!(held.len() > 64, "only {} connections", held.len());
    let (cpu, wall) = (cpu_time(child.0.id()), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_time(child.0.id()) - cpu;
    assert!(
        used < wall.elapsed() / 2,
        "the node used {used:?} of CPU in {:?} while out of descriptors",
        wall.elapsed()
    );
    // While the silent connections are still open on this side, the
    // server closes them and answers a fresh request.
    wait_for("a fresh request to be answered", || answers_soon(api));
    drop(held);
}

/// A child process that is killed and reaped however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Like `answers`, but gives up on one attempt after a few seconds (a full
/// listen queue would otherwise keep `connect` waiting for minutes).
fn answers_soon(api: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&api, Duration::from_secs(2)) else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = request("GET", "/api/state", &api.to_string(), "", "");
    if stream.write_all(head.as_bytes()).is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply.starts_with(b"HTTP/1.1 200")
}
