//! Scrapes the node's `/metrics` (Prometheus text) over plain HTTP/1.0 and
//! sums the counters the capacity run reports.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The counters of one scrape (per-source counters summed over sources).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scrape {
    /// `audionode_packets_total`.
    pub packets: f64,
    /// `audionode_deadline_misses_total`.
    pub deadline_misses: f64,
    /// `audionode_blocks_mixed_total`.
    pub blocks: f64,
    /// `audionode_refused_datagrams_total`.
    pub refused: f64,
    /// `audionode_active_sources`.
    pub active_sources: f64,
    /// Sum of `audionode_source_received_total`.
    pub received: f64,
    /// Sum of `audionode_source_late_total`.
    pub late: f64,
    /// Sum of `audionode_source_lost_total`.
    pub lost: f64,
    /// Sum of `audionode_source_overflow_total`.
    pub overflow: f64,
}

impl Scrape {
    /// Sums the metrics of a Prometheus text exposition.
    pub fn parse(text: &str) -> Self {
        let mut s = Scrape::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let name = name.split('{').next().unwrap_or(name);
            let field = match name {
                "audionode_packets_total" => &mut s.packets,
                "audionode_deadline_misses_total" => &mut s.deadline_misses,
                "audionode_blocks_mixed_total" => &mut s.blocks,
                "audionode_refused_datagrams_total" => &mut s.refused,
                "audionode_active_sources" => &mut s.active_sources,
                "audionode_source_received_total" => &mut s.received,
                "audionode_source_late_total" => &mut s.late,
                "audionode_source_lost_total" => &mut s.lost,
                "audionode_source_overflow_total" => &mut s.overflow,
                _ => continue,
            };
            *field += value;
        }
        s
    }

    /// Field-wise `self − earlier` (counters over a window).
    pub fn since(&self, earlier: &Scrape) -> Scrape {
        Scrape {
            packets: self.packets - earlier.packets,
            deadline_misses: self.deadline_misses - earlier.deadline_misses,
            blocks: self.blocks - earlier.blocks,
            refused: self.refused - earlier.refused,
            active_sources: self.active_sources,
            received: self.received - earlier.received,
            late: self.late - earlier.late,
            lost: self.lost - earlier.lost,
            overflow: self.overflow - earlier.overflow,
        }
    }
}

/// `GET /metrics` from `addr`, returning the body.
pub fn fetch(addr: SocketAddr) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.to_string())
        }
        _ => Err(io::Error::other(format!(
            "unexpected /metrics response: {}",
            response.lines().next().unwrap_or("")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_per_source_counters() {
        let text = "# HELP x\naudionode_packets_total 300\naudionode_deadline_misses_total 2\n\
            audionode_source_late_total{source=\"127.0.0.1:1\"} 1\n\
            audionode_source_late_total{source=\"127.0.0.1:2\"} 4\n\
            audionode_source_lost_total{source=\"127.0.0.1:2\"} 3\n\
            audionode_active_sources 2\n# EOF\n";
        let s = Scrape::parse(text);
        assert_eq!(s.packets, 300.0);
        assert_eq!(s.deadline_misses, 2.0);
        assert_eq!(s.late, 5.0);
        assert_eq!(s.lost, 3.0);
        assert_eq!(s.active_sources, 2.0);
        let d = s.since(&Scrape {
            packets: 100.0,
            late: 1.0,
            ..Scrape::default()
        });
        assert_eq!((d.packets, d.late), (200.0, 4.0));
    }
}
