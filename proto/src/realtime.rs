//! Real-time scheduling (`--rt-priority`) for the node's mixing thread and
//! the recorder's audio callback thread.
//!
//! The mixing thread must render a block every 5 ms, and the audio callback
//! must fill the device's buffer within one device period. At normal
//! priority a busy machine (the node's own sources, compilers, other
//! services) can keep either off the CPU for longer than that: the block
//! goes out late, the device runs dry (an xrun). Audio servers (JACK,
//! PipeWire) run their processing threads under `SCHED_FIFO` for this
//! reason; so do these programs when the system allows it (root,
//! `CAP_SYS_NICE`, or an `RLIMIT_RTPRIO` of at least the priority, as the
//! `audio` group usually has). Both threads sleep between their deadlines,
//! and the kernel's real-time throttling (`sched_rt_runtime_us`) leaves the
//! rest of the system at least 5 % of every CPU in any case.

use std::io;

/// Puts the calling thread under `SCHED_FIFO` at `priority` (1–99).
#[cfg(target_os = "linux")]
pub fn promote_current_thread(priority: u8) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: pthread_self() is the calling thread; param is a valid struct.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Real-time scheduling is only implemented for Linux.
#[cfg(not(target_os = "linux"))]
pub fn promote_current_thread(_priority: u8) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "real-time scheduling is only implemented on Linux",
    ))
}

/// The calling thread's scheduling policy and priority, as `sched(7)` names
/// them (e.g. `SCHED_FIFO 10`, `SCHED_OTHER`).
#[cfg(target_os = "linux")]
pub fn current_policy() -> String {
    let mut policy = 0;
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: both out-pointers are valid for writes.
    let rc = unsafe { libc::pthread_getschedparam(libc::pthread_self(), &mut policy, &mut param) };
    match (rc, policy) {
        (0, libc::SCHED_FIFO) => format!("SCHED_FIFO {}", param.sched_priority),
        (0, libc::SCHED_RR) => format!("SCHED_RR {}", param.sched_priority),
        (0, libc::SCHED_OTHER) => "SCHED_OTHER".to_string(),
        (0, other) => format!("policy {other}"),
        _ => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn promotion_either_takes_effect_or_reports_why() {
        // Run on a thread of its own so the test harness's threads keep
        // their policy. Whether it is permitted depends on the machine.
        std::thread::spawn(|| match promote_current_thread(5) {
            Ok(()) => assert_eq!(current_policy(), "SCHED_FIFO 5"),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
                assert_eq!(current_policy(), "SCHED_OTHER");
            }
        })
        .join()
        .unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_invalid_priority_is_an_error_not_a_panic() {
        std::thread::spawn(|| {
            assert!(promote_current_thread(100).is_err());
            assert_eq!(current_policy(), "SCHED_OTHER");
        })
        .join()
        .unwrap();
    }
}
