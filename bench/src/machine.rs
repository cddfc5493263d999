//! The machine a measurement ran on (CPU model, cores, memory, kernel,
//! rustc, load average, UTC date) and the process plumbing the benches
//! share: reaping a child with its exact CPU time and peak RSS (`wait4`).

use std::process::{Child, Command};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A description of the machine, taken when a bench starts or a report is
/// written; the machine is shared, so the load average goes with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// `model name` of the first CPU in `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// `MemTotal` of `/proc/meminfo`, in GiB.
    pub memory_gib: f64,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// `rustc --version`, or "unknown".
    pub rustc: String,
    /// The three load averages of `/proc/loadavg`.
    pub loadavg: String,
    /// When this was taken, `YYYY-MM-DD HH:MM:SS UTC`.
    pub date_utc: String,
}

impl MachineInfo {
    /// Describes this machine now. Missing sources give empty fields, never
    /// an error: a report without a kernel version is still a report.
    pub fn now() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let rustc = Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu_model: parse_cpu_model(&read("/proc/cpuinfo")).unwrap_or_default(),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: parse_mem_total_kib(&read("/proc/meminfo"))
                .map_or(0.0, |k| k as f64 / (1 << 20) as f64),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            rustc,
            loadavg: loadavg(),
            date_utc: utc_now(),
        }
    }
}

/// The first `model name` of the text of `/proc/cpuinfo`.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// `MemTotal` in KiB from the text of `/proc/meminfo`.
pub fn parse_mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The 1, 5 and 15 minute load averages, space-separated ("" if unreadable).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The current time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_utc(unix_secs: u64) -> String {
    let t = proto::civil::UtcTime::from_unix_secs(unix_secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// How a reaped child ended and what it used, from `wait4(2)`: exact for
/// all its threads, even after it exited (when `/proc/PID` is gone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChildUsage {
    /// The raw wait status; see [`ChildUsage::success`].
    pub status: i32,
    /// User + system CPU time.
    pub cpu: Duration,
    /// Peak resident set size (`ru_maxrss`), in bytes.
    pub max_rss_bytes: u64,
}

impl ChildUsage {
    /// Whether the child exited with code 0.
    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    /// "exit code N" or "signal N", for error messages.
    pub fn describe(&self) -> String {
        if libc::WIFEXITED(self.status) {
            format!("exit code {}", libc::WEXITSTATUS(self.status))
        } else if libc::WIFSIGNALED(self.status) {
            format!("signal {}", libc::WTERMSIG(self.status))
        } else {
            format!("wait status {}", self.status)
        }
    }
}

/// Waits for `child` with `wait4(2)` and returns its status and usage.
/// Consumes the `Child` so it cannot be waited for twice.
pub fn wait_with_usage(child: Child) -> std::io::Result<ChildUsage> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; pid is our unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    Ok(ChildUsage {
        status,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_bytes: (usage.ru_maxrss as u64) * 1024,
    })
}

/// Sends `signal` to `child` (ignored if it already exited).
pub fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
}

/// The release binary `name` next to the running one (the bench tools
/// drive the real programs built beside them).
pub fn sibling_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} not found (build it: cargo build --release -p audionode -p audiostreamer -p audiorecorder -p bench)",
        path.display()
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_795_262_733), "2026-11-21 12:05:33 UTC");
    }

    #[test]
    fn parses_cpuinfo_and_meminfo() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(parse_cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(parse_cpu_model(""), None);
        let meminfo = "MemTotal:       24683520 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_mem_total_kib(meminfo), Some(24_683_520));
    }

    #[test]
    fn reaps_a_child_with_its_usage() {
        let child = Command::new("true").spawn().unwrap();
        let u = wait_with_usage(child).unwrap();
        assert!(u.success(), "{}", u.describe());
        let child = Command::new("false").spawn().unwrap();
        let u = wait_with_usage(child).unwrap();
        assert_eq!(u.describe(), "exit code 1");
    }
}
