//! The ways to give the control surface its token, through the real
//! binary: a file or the environment (a command line is readable by every
//! user in `ps`), the flag with a warning, and a bad token file as a
//! one-line start-up error.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use common::{http, temp_dir, DEADLINE};

/// The binary with a clean environment and ephemeral ports.
fn node(dir: &std::path::Path) -> Command {
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
        .arg(dir.join("audionode.log"));
    cmd
}

/// A running node: its control surface's address and the program log up
/// to the line that announced it.
struct Running {
    child: Child,
    api: SocketAddr,
    log: Vec<String>,
}

impl Running {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = Vec::new();
        loop {
            let Ok(line) = rx.recv_timeout(DEADLINE) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the node did not announce its desk: {log:?}");
            };
            if let Some(rest) = line.split("mixing desk on http://").nth(1) {
                let api = rest.trim_end_matches('/').parse().unwrap();
                log.push(line);
                return Self { child, api, log };
            }
            log.push(line);
        }
    }

    fn warned_about_argv(&self) -> bool {
        self.log
            .iter()
            .any(|l| l.contains("--http-token is visible"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of GET /api/state with `token` as a bearer token, if any.
fn status(api: SocketAddr, token: Option<&str>) -> u16 {
    let header = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = header
        .as_deref()
        .map(|h| vec![("Authorization", h)])
        .unwrap_or_default();
    http(api, "GET", "/api/state", None, &headers).0
}

fn token_file(dir: &std::path::Path, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("token");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn a_token_file_guards_the_api() {
    let dir = temp_dir("token-file");
    let path = token_file(&dir, "  file-s3cret\n");
    let mut cmd = node(&dir);
    cmd.arg("--http-token-file").arg(&path);
    let node = Running::start(cmd);
    assert_eq!(status(node.api, None), 401);
    assert_eq!(status(node.api, Some("wrong")), 401);
    assert_eq!(status(node.api, Some("file-s3cret")), 200);
    assert!(!node.warned_about_argv(), "{:?}", node.log);
}

#[test]
fn the_environment_variable_guards_the_api() {
    let dir = temp_dir("token-env");
    let mut cmd = node(&dir);
    cmd.env("AUDIONODE_HTTP_TOKEN", "env-s3cret");
    let node = Running::start(cmd);
    assert_eq!(status(node.api, None), 401);
    assert_eq!(status(node.api, Some("env-s3cret")), 200);
    assert!(!node.warned_about_argv(), "{:?}", node.log);
}

#[test]
fn a_token_on_the_command_line_still_works_but_warns() {
    let dir = temp_dir("token-argv");
    let mut cmd = node(&dir);
    cmd.args(["--http-token", "argv-s3cret"]);
    let node = Running::start(cmd);
    assert_eq!(status(node.api, Some("argv-s3cret")), 200);
    assert!(node.warned_about_argv(), "{:?}", node.log);
    let warning = node
        .log
        .iter()
        .find(|l| l.contains("--http-token is visible"))
        .unwrap();
    assert!(warning.contains("--http-token-file"), "{warning}");
}

/// Runs `cmd` to its exit: (exit code, stderr). A node that is still
/// running after the deadline is killed and reported with no code.
fn run_to_exit(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let start = std::time::Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
    (code, stderr)
}

#[test]
fn a_missing_or_empty_token_file_is_a_one_line_error() {
    let dir = temp_dir("token-bad");
    let missing = dir.join("no-such-token");
    let empty = token_file(&dir, " \n");
    let cases = [
        (missing.clone(), "cannot read --http-token-file"),
        (empty, "is empty"),
        (dir.clone(), "cannot read --http-token-file"),
    ];
    for (path, want) in cases {
        let mut cmd = node(&dir);
        cmd.arg("--http-token-file").arg(&path);
        let (code, stderr) = run_to_exit(cmd);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("audionode:"))
            .collect();
        assert_eq!(code, Some(1), "{path:?}: {stderr}");
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(want), "{path:?}: {stderr}");
        assert!(errors[0].contains(&path.display().to_string()), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
