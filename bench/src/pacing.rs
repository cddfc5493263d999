//! Streamer pacing over long tracks (filled in by the pacing bench work).
