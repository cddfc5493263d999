//! The benchmark report `scripts/bench.sh` writes: reads
//! whichever result files exist in a results directory (`capacity.json`,
//! `mixer.json`, `latency.json`, `pacing.json`, `memory.json`,
//! `quality/quality.json`), renders one
//! Markdown document (a summary of every benchmark target, the machine, the
//! detail tables with the command behind each) and draws PNG plots.
//!
//! - [`inputs`]: loading the files; the latency and mixer schemas.
//! - [`quality`]: the quality bench's scores, as the plot groups them.
//! - [`targets`]: the benchmark targets and their verdicts.
//! - [`markdown`]: the document.
//! - [`plot`]: the PNG plots (plotters).

pub mod inputs;
pub mod markdown;
pub mod plot;
pub mod quality;
pub mod targets;

pub use inputs::Inputs;
pub use markdown::render;
