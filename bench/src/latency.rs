//! End-to-end latency: click tracks, probe files and the per-profile results (filled in by the latency bench work).
