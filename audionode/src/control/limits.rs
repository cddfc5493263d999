//! How much the control surface may hold open at once, and for how long:
//! the connection and WebSocket caps and the timeouts that close idle or
//! slow connections, plus raising the process's open-file limit so that
//! these caps, not the kernel, decide when a client is refused.
//!
//! The defaults leave room under the common 1024-descriptor soft limit:
//! 256 connections (WebSockets included) plus the node's own sockets and
//! files.

use std::time::Duration;

/// Default cap on concurrent HTTP connections (`--http-max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default cap on concurrent WebSocket clients (`--http-max-ws-clients`).
pub const DEFAULT_MAX_WS_CLIENTS: usize = 64;
/// Default time a client has to send a whole request head, counted from
/// the moment the server waits for one (also between keep-alive requests).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a connection may go without reading or writing a byte,
/// and the longest a request (its body included) may take.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Caps and timeouts of the control surface's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections open at once, WebSocket clients included; more are
    /// answered 503 and closed at once.
    pub max_connections: usize,
    /// Most WebSocket clients at once; more get 503 before the upgrade.
    pub max_ws_clients: usize,
    /// Most listeners of the mix (`/ws/listen`) at once, counted apart
    /// from `max_ws_clients`; more get 503 before the upgrade.
    pub max_listeners: usize,
    /// Time allowed for a request head (idle keep-alive connections close
    /// after this too).
    pub header_timeout: Duration,
    /// Time a connection may make no progress, and the longest a request
    /// may take; WebSockets are exempt once upgraded.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_ws_clients: DEFAULT_MAX_WS_CLIENTS,
            max_listeners: super::listen::DEFAULT_MAX_LISTENERS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The largest soft limit asked for when the hard limit is unlimited (the
/// kernel refuses more than `fs.nr_open`, 1 048 576 by default).
const UNLIMITED_TARGET: libc::rlim_t = 1 << 20;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so that a burst of
/// clients meets the control surface's caps before the kernel's limit.
/// Logs what it did; a failure is logged and otherwise ignored (the caps
/// still hold).
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and pass by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        log::debug!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        UNLIMITED_TARGET
    } else {
        limit.rlim_max
    };
    if limit.rlim_cur >= target {
        log::debug!(
            "open-file limit {} (hard {})",
            limit.rlim_cur,
            limit.rlim_max
        );
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        log::debug!("open-file limit raised from {} to {target}", limit.rlim_cur);
    } else {
        log::info!(
            "open-file limit stays at {} (cannot raise it to {target}: {})",
            limit.rlim_cur,
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_under_a_1024_descriptor_limit() {
        let limits = HttpLimits::default();
        assert!(limits.max_ws_clients <= limits.max_connections);
        // Desk clients and listeners at their caps together still fit
        // under the connection cap.
        assert!(limits.max_ws_clients + limits.max_listeners <= limits.max_connections);
        // Every WebSocket is also a connection, so the connection cap is
        // the control surface's whole share of descriptors.
        assert!(limits.max_connections + 64 < 1024);
    }
}
