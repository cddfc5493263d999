//! CPU time and memory of a process or thread, read from `/proc` (Linux).

use std::io;

/// Clock ticks per second of the times in `/proc/.../stat`.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU seconds from the text of a `/proc/.../stat` file.
pub fn parse_cpu_seconds(stat: &str, ticks_per_second: f64) -> Option<f64> {
    // The command name (field 2) may hold spaces; fields restart after ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11, 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second)
}

/// User + system CPU seconds of process `pid` (all its threads).
pub fn process_cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_seconds(&stat, clock_ticks_per_second())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc stat"))
}

/// CPU seconds of thread `tid` of this process: from `schedstat` (the
/// scheduler's own nanosecond count) where the kernel has it, since a
/// bare loop at a few % of a core runs only tens of clock ticks in a
/// window; else user + system from `stat`, in clock ticks.
pub fn thread_cpu_seconds(tid: i32) -> io::Result<f64> {
    if let Some(s) = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .as_deref()
        .and_then(parse_schedstat_seconds)
    {
        return Ok(s);
    }
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))?;
    parse_cpu_seconds(&stat, clock_ticks_per_second())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc stat"))
}

/// CPU seconds of process `pid`, all its threads: the sum of their
/// `schedstat` run times (nanoseconds, so a receiver at a fraction of a
/// percent of a core still measures), or user + system from `stat` in
/// clock ticks where the kernel has no `schedstat`. Threads that have
/// exited are not counted, so use it on processes whose threads live for
/// the whole window.
pub fn process_run_seconds(pid: u32) -> io::Result<f64> {
    let mut total = 0.0;
    let mut read = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread that exited between the listing and the read is skipped.
        if let Some(s) = std::fs::read_to_string(task?.path().join("schedstat"))
            .ok()
            .as_deref()
            .and_then(parse_schedstat_seconds)
        {
            total += s;
            read += 1;
        }
    }
    if read == 0 {
        return process_cpu_seconds(pid);
    }
    Ok(total)
}

/// Seconds on the CPU from the text of a `/proc/.../schedstat` file
/// (`run_ns wait_ns timeslices`).
pub fn parse_schedstat_seconds(schedstat: &str) -> Option<f64> {
    let ns: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// A `kB` field (`VmRSS`, `VmHWM`) of `/proc/PID/status`, in bytes.
pub fn status_bytes(pid: u32, field: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_bytes(&status, field)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no {field}")))
}

/// A `kB` field of the text of a `/proc/PID/status` file, in bytes.
pub fn parse_status_bytes(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Machine-wide CPU time from the `cpu` line of `/proc/stat`, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineCpu {
    /// All ticks (every state, every core).
    pub total: f64,
    /// Idle and iowait ticks.
    pub idle: f64,
    /// Softirq ticks (loopback UDP delivery is mostly charged here, not to
    /// the sending or receiving process).
    pub softirq: f64,
}

impl MachineCpu {
    /// Parses the text of `/proc/stat`.
    pub fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest* are in user).
        let total = v.iter().take(8).sum();
        Some(Self {
            total,
            idle: v.get(3)? + v.get(4).unwrap_or(&0.0),
            softirq: *v.get(6).unwrap_or(&0.0),
        })
    }

    /// Reads `/proc/stat` now.
    pub fn now() -> io::Result<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat")?)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/stat"))
    }

    /// Percentages (idle, softirq) of all cores' time between `earlier`
    /// and `self`.
    pub fn since(&self, earlier: &Self) -> (f64, f64) {
        let total = (self.total - earlier.total).max(1.0);
        (
            100.0 * (self.idle - earlier.idle) / total,
            100.0 * (self.softirq - earlier.softirq) / total,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "1234 (audio node) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0";
        assert_eq!(parse_cpu_seconds(stat, 100.0), Some(3.0));
    }

    #[test]
    fn parses_schedstat() {
        assert_eq!(parse_schedstat_seconds("2500000000 84007 12\n"), Some(2.5));
        assert_eq!(parse_schedstat_seconds(""), None);
        assert!(thread_cpu_seconds(unsafe { libc::gettid() }).unwrap() >= 0.0);
    }

    #[test]
    fn parses_status_fields() {
        let status = "Name:\taudionode\nVmHWM:\t   10240 kB\nVmRSS:\t    8192 kB\n";
        assert_eq!(parse_status_bytes(status, "VmRSS"), Some(8 << 20));
        assert_eq!(parse_status_bytes(status, "VmHWM"), Some(10 << 20));
        assert_eq!(parse_status_bytes(status, "VmSwap"), None);
    }

    #[test]
    fn parses_machine_cpu() {
        let stat = "cpu  100 0 50 800 50 0 25 0 0 0\ncpu0 1 2 3\n";
        let m = MachineCpu::parse(stat).unwrap();
        assert_eq!((m.total, m.idle, m.softirq), (1025.0, 850.0, 25.0));
        let later = MachineCpu {
            total: 2025.0,
            idle: 1350.0,
            softirq: 125.0,
        };
        assert_eq!(later.since(&m), (50.0, 10.0));
    }

    #[test]
    fn reads_this_process() {
        assert!(process_cpu_seconds(std::process::id()).unwrap() >= 0.0);
        assert!(process_run_seconds(std::process::id()).unwrap() > 0.0);
        assert!(status_bytes(std::process::id(), "VmRSS").unwrap() > 0);
    }
}
