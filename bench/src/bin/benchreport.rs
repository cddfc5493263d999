//! `benchreport`: turns a results directory (the JSON files of
//! `audiocapacity`, `audiolatency`, `audiopacing`, `audiomemory`,
//! `scripts/quality-bench.py` and the mixer's criterion runs) into
//! `report.md` and PNG plots beside it. With `--extract-mixer`, it instead
//! appends one criterion run to the directory's `mixer.json` (run it after
//! each `cargo bench`, since criterion keeps only the latest estimates);
//! with `--quality`, it draws only the quality plot of one `quality.json`
//! (a run kept under docs/bench/ rather than in the results directory).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;

use bench::machine::{self, MachineInfo};
use bench::report::inputs::{self, MixerReport, MixerRun};
use bench::report::quality::QualityReport;
use bench::report::{plot, Inputs};

/// Writes the benchmark report from a directory of results.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Directory holding capacity.json, mixer.json, latency.json,
    /// pacing.json, memory.json and quality/quality.json (whichever exist).
    #[arg(long, default_value = "bench-out")]
    dir: PathBuf,
    /// Report file [default: DIR/report.md]; the PNGs go next to it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// TrueType font for the plots' text.
    #[arg(long, default_value = plot::DEFAULT_FONT)]
    font: PathBuf,
    /// Append the estimates under this criterion directory (e.g.
    /// $CARGO_TARGET_DIR/criterion) as one run to DIR/mixer.json, then exit.
    #[arg(long, value_name = "CRITERION_DIR")]
    extract_mixer: Option<PathBuf>,
    /// With --extract-mixer: ignore estimates older than this (seconds since
    /// the Unix epoch, e.g. `date +%s` before `cargo bench`).
    #[arg(long, value_name = "UNIX_SECONDS")]
    since: Option<u64>,
    /// With --extract-mixer: the command that ran the benches (for the report).
    #[arg(long, default_value = "cargo bench -p audionode --bench mixer")]
    mixer_command: String,
    /// Draw the quality plot of this quality.json (scripts/quality-bench.py's)
    /// into --quality-png, then exit.
    #[arg(long, value_name = "QUALITY_JSON")]
    quality: Option<PathBuf>,
    /// With --quality: the PNG [default: quality.png beside QUALITY_JSON].
    #[arg(long, value_name = "PNG", requires = "quality")]
    quality_png: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchreport: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(json) = &args.quality {
        return quality(&args, json);
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    if let Some(criterion) = &args.extract_mixer {
        return extract_mixer(&args, criterion);
    }
    let inputs = Inputs::load(&args.dir);
    for p in &inputs.problems {
        eprintln!("benchreport: skipping {p}");
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.dir.join("report.md"));
    let out_dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let plots =
        match plot::register_font(&args.font).and_then(|()| plot::write_all(&inputs, &out_dir)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("benchreport: no plots: {e:#}");
                Vec::new()
            }
        };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let md = bench::report::render(&inputs, &MachineInfo::now(), &command, &plots);
    std::fs::write(&out, md).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "benchreport: wrote {}{}",
        out.display(),
        plots
            .iter()
            .map(|p| format!(", {}", out_dir.join(&p.file).display()))
            .collect::<String>()
    );
    Ok(())
}

fn extract_mixer(args: &Args, criterion: &std::path::Path) -> anyhow::Result<()> {
    let since = args
        .since
        .map(|t| std::time::UNIX_EPOCH + std::time::Duration::from_secs(t));
    let benches = inputs::scan_criterion(criterion, since)?;
    anyhow::ensure!(
        !benches.is_empty(),
        "no criterion estimates under {}{}",
        criterion.display(),
        if since.is_some() {
            " newer than --since"
        } else {
            ""
        }
    );
    let path = args.dir.join("mixer.json");
    let mut report: MixerReport = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not a mixer report", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => MixerReport::default(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    report.command = args.mixer_command.clone();
    let n = benches.len();
    report.runs.push(MixerRun {
        date_utc: machine::utc_now(),
        benches,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "benchreport: {n} benches appended to {} (run {})",
        path.display(),
        report.runs.len()
    );
    Ok(())
}

fn quality(args: &Args, json: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(json).with_context(|| format!("cannot read {}", json.display()))?;
    let report: QualityReport = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a quality report", json.display()))?;
    let png = args
        .quality_png
        .clone()
        .unwrap_or_else(|| json.with_file_name("quality.png"));
    plot::register_font(&args.font)?;
    plot::quality_plot(&report, &png).with_context(|| png.display().to_string())?;
    eprintln!("benchreport: wrote {}", png.display());
    Ok(())
}
