//! The result files the report reads, and the one schema no bench module
//! owns: the mixer's, extracted from criterion's `estimates.json` /
//! `benchmark.json` files. (Latency results are
//! [`crate::latency::LatencyReport`].)

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::quality::QualityReport;
use crate::capacity::CapacityReport;
use crate::latency::LatencyReport;
use crate::memory::MemoryReport;
use crate::pacing::PacingReport;
use crate::stats;

/// One criterion benchmark's estimate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MixerBench {
    /// Criterion's full id, e.g. `mixer/unity/256`.
    pub id: String,
    /// The source count N (the id's last part), if numeric.
    pub sources: Option<usize>,
    /// Time per iteration (criterion's slope estimate, else its mean), ns.
    pub time_ns: f64,
    /// Lower bound of its 95 % confidence interval, ns.
    pub lower_ns: f64,
    /// Upper bound, ns.
    pub upper_ns: f64,
    /// Elements per iteration (source-samples for `mixer/*`), if declared.
    pub elements: Option<f64>,
}

impl MixerBench {
    /// Elements per second, if the bench declares a throughput.
    pub fn per_second(&self) -> Option<f64> {
        self.elements
            .filter(|_| self.time_ns > 0.0)
            .map(|e| e * 1e9 / self.time_ns)
    }
}

/// One `cargo bench` run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MixerRun {
    /// When it was extracted.
    pub date_utc: String,
    /// Every bench found, sorted by id.
    pub benches: Vec<MixerBench>,
}

/// `mixer.json`: several criterion runs of `audionode/benches/mixer.rs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MixerReport {
    /// The command each run was.
    pub command: String,
    /// The runs.
    pub runs: Vec<MixerRun>,
}

impl MixerReport {
    /// Every bench id, sorted (mixer/unity/16 before mixer/unity/256 etc.
    /// by N within the same prefix).
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<(String, usize, String)> = Vec::new();
        for b in self.runs.iter().flat_map(|r| &r.benches) {
            if !ids.iter().any(|(_, _, id)| id == &b.id) {
                let prefix =
                    b.id.rsplit_once('/')
                        .map_or(b.id.clone(), |(p, _)| p.into());
                ids.push((prefix, b.sources.unwrap_or(0), b.id.clone()));
            }
        }
        ids.sort();
        ids.into_iter().map(|(_, _, id)| id).collect()
    }

    /// The runs' estimates of bench `id`.
    pub fn of(&self, id: &str) -> Vec<&MixerBench> {
        self.runs
            .iter()
            .filter_map(|r| r.benches.iter().find(|b| b.id == id))
            .collect()
    }

    /// Median time (ns) and median throughput (per s) of bench `id`.
    pub fn median(&self, id: &str) -> Option<(f64, Option<f64>)> {
        let of = self.of(id);
        let time = stats::median(&of.iter().map(|b| b.time_ns).collect::<Vec<_>>())?;
        let rate: Vec<f64> = of.iter().filter_map(|b| b.per_second()).collect();
        Some((time, stats::median(&rate)))
    }
}

/// Reads every `new/benchmark.json` + `new/estimates.json` pair under a
/// criterion output directory (`$CARGO_TARGET_DIR/criterion`), skipping
/// estimates written before `since` (left there by earlier runs).
pub fn scan_criterion(dir: &Path, since: Option<SystemTime>) -> anyhow::Result<Vec<MixerBench>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if d == dir => anyhow::bail!("cannot read {}: {e}", dir.display()),
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if !p.is_dir() {
                continue;
            }
            if p.file_name().is_some_and(|n| n == "new") {
                let fresh = since.is_none_or(|t| {
                    std::fs::metadata(p.join("estimates.json"))
                        .and_then(|m| m.modified())
                        .is_ok_and(|m| m >= t)
                });
                if let Some(b) = read_criterion_pair(&p).filter(|_| fresh) {
                    out.push(b);
                }
            } else if p.file_name().is_none_or(|n| n != "report") {
                stack.push(p);
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// One bench from criterion's `benchmark.json` and `estimates.json` texts.
pub fn parse_criterion(benchmark: &str, estimates: &str) -> Option<MixerBench> {
    let b: serde_json::Value = serde_json::from_str(benchmark).ok()?;
    let e: serde_json::Value = serde_json::from_str(estimates).ok()?;
    let id = b.get("full_id")?.as_str()?.to_string();
    let est = e
        .get("slope")
        .filter(|s| !s.is_null())
        .or_else(|| e.get("mean"))?;
    let ci = est.get("confidence_interval")?;
    Some(MixerBench {
        sources: id.rsplit('/').next().and_then(|n| n.parse().ok()),
        time_ns: est.get("point_estimate")?.as_f64()?,
        lower_ns: ci.get("lower_bound")?.as_f64()?,
        upper_ns: ci.get("upper_bound")?.as_f64()?,
        elements: b.pointer("/throughput/Elements").and_then(|v| v.as_f64()),
        id,
    })
}

fn read_criterion_pair(new_dir: &Path) -> Option<MixerBench> {
    let b = std::fs::read_to_string(new_dir.join("benchmark.json")).ok()?;
    let e = std::fs::read_to_string(new_dir.join("estimates.json")).ok()?;
    parse_criterion(&b, &e)
}

/// Where in a results directory the quality bench's results are.
const QUALITY: &str = "quality/quality.json";

/// Everything found in a results directory; a missing file is `None`, an
/// unreadable one is listed in `problems` (the report says so, it does not
/// fail).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `capacity.json`.
    pub capacity: Option<CapacityReport>,
    /// `mixer.json`.
    pub mixer: Option<MixerReport>,
    /// `latency.json`.
    pub latency: Option<LatencyReport>,
    /// `pacing.json`.
    pub pacing: Option<PacingReport>,
    /// `memory.json`.
    pub memory: Option<MemoryReport>,
    /// `quality/quality.json`, where `scripts/quality-bench.py --out
    /// DIR/quality` writes it.
    pub quality: Option<QualityReport>,
    /// Files that exist but could not be read, with the reason.
    pub problems: Vec<String>,
}

impl Inputs {
    /// Loads the result files of `dir`.
    pub fn load(dir: &Path) -> Self {
        let mut problems = Vec::new();
        let mut get = |name: &str| -> Option<String> {
            let path: PathBuf = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) => Some(s),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    problems.push(format!("{name}: {e}"));
                    None
                }
            }
        };
        let texts = [
            get("capacity.json"),
            get("mixer.json"),
            get("latency.json"),
            get("pacing.json"),
            get("memory.json"),
            get(QUALITY),
        ];
        let mut inputs = Inputs::default();
        let [capacity, mixer, latency, pacing, memory, quality] = texts;
        inputs.capacity = parse("capacity.json", capacity, &mut problems);
        inputs.mixer = parse("mixer.json", mixer, &mut problems);
        inputs.latency = parse("latency.json", latency, &mut problems);
        inputs.pacing = parse("pacing.json", pacing, &mut problems);
        inputs.memory = parse("memory.json", memory, &mut problems);
        inputs.quality = parse(QUALITY, quality, &mut problems);
        inputs.problems = problems;
        inputs
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    name: &str,
    text: Option<String>,
    problems: &mut Vec<String>,
) -> Option<T> {
    match serde_json::from_str(&text?) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(format!("{name}: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BENCH: &str = r#"{"group_id":"mixer","function_id":"ramp/256","value_str":null,"throughput":{"Elements":56320},"full_id":"mixer/ramp/256","directory_name":"mixer/ramp_256","title":"mixer/ramp/256"}"#;
    const EST: &str = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":44426.0,"upper_bound":44566.9},"point_estimate":44494.1,"standard_error":36.0},"slope":{"confidence_interval":{"confidence_level":0.95,"lower_bound":44444.2,"upper_bound":44610.5},"point_estimate":44526.9,"standard_error":42.5}}"#;

    #[test]
    fn parses_criterion_files() {
        let b = parse_criterion(BENCH, EST).unwrap();
        assert_eq!(b.id, "mixer/ramp/256");
        assert_eq!(b.sources, Some(256));
        assert_eq!(
            (b.time_ns, b.lower_ns, b.upper_ns),
            (44526.9, 44444.2, 44610.5)
        );
        assert!((b.per_second().unwrap() - 56320.0 * 1e9 / 44526.9).abs() < 1.0);
        // No slope (flat sampling): the mean.
        let est = EST.replace(r#""slope":{"#, r#""slope":null,"x":{"#);
        assert_eq!(parse_criterion(BENCH, &est).unwrap().time_ns, 44494.1);
        assert_eq!(parse_criterion("{}", EST), None);
        assert_eq!(parse_criterion("not json", EST), None);
    }

    #[test]
    fn scans_a_criterion_tree() {
        let dir = std::env::temp_dir().join(format!("benchreport-scan-{}", std::process::id()));
        let new = dir.join("mixer/ramp_256/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::create_dir_all(dir.join("report")).unwrap();
        std::fs::write(new.join("benchmark.json"), BENCH).unwrap();
        std::fs::write(new.join("estimates.json"), EST).unwrap();
        let found = scan_criterion(&dir, None).unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(3600);
        let stale = scan_criterion(&dir, Some(later)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 1);
        assert!(stale.is_empty());
        assert!(scan_criterion(Path::new("/nonexistent/criterion"), None).is_err());
    }

    #[test]
    fn mixer_medians_over_runs() {
        let bench = |t: f64| MixerBench {
            id: "mixer/unity/256".into(),
            sources: Some(256),
            time_ns: t,
            elements: Some(56320.0),
            ..MixerBench::default()
        };
        let run = |t| MixerRun {
            date_utc: String::new(),
            benches: vec![bench(t)],
        };
        let r = MixerReport {
            command: String::new(),
            runs: vec![run(10_000.0), run(12_000.0), run(11_000.0)],
        };
        let (t, rate) = r.median("mixer/unity/256").unwrap();
        assert_eq!(t, 11_000.0);
        assert!((rate.unwrap() - 56320.0 / 11e-6).abs() < 1.0);
        assert_eq!(r.median("nothing"), None);
    }

    #[test]
    fn loads_a_results_dir_and_names_bad_files() {
        let dir = std::env::temp_dir().join(format!("benchreport-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let latency = LatencyReport {
            profiles: vec![crate::latency::ProfileResult {
                name: "default".into(),
                budget_ms: 85.0,
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = serde_json::to_string(&latency).unwrap();
        std::fs::write(dir.join("latency.json"), json).unwrap();
        std::fs::write(dir.join("pacing.json"), "{ broken").unwrap();
        std::fs::create_dir_all(dir.join("quality")).unwrap();
        let quality = r#"{"commit": "acbb0e7", "results": []}"#;
        std::fs::write(dir.join(QUALITY), quality).unwrap();
        let inputs = Inputs::load(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(inputs.latency.unwrap().profiles[0].budget_ms, 85.0);
        assert_eq!(inputs.quality.unwrap().commit, "acbb0e7");
        assert!(inputs.capacity.is_none() && inputs.pacing.is_none());
        assert_eq!(inputs.problems.len(), 1);
        assert!(inputs.problems[0].starts_with("pacing.json: "));
    }
}
