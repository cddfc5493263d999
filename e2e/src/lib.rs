//! End-to-end tests of the pipeline live in `tests/`: real programs (their
//! libraries in-process, or their binaries where a process must be killed
//! or write its files on exit) talking over 127.0.0.1 with ephemeral
//! ports, checked against WAV files and event logs. This crate has no code
//! of its own.
