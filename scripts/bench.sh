#!/usr/bin/env bash
# The benchmark suite: builds release, runs the mixer micro-benchmark
# (criterion), node capacity (audiocapacity: the node beside the batched
# and blocking bare loops), the mixing thread's system calls
# (scripts/strace-mix.sh), end-to-end latency (audiolatency), streamer
# pacing (audiopacing) and recorder memory (audiomemory) one after
# another, each writing JSON or Markdown into the output directory, then
# benchreport turns those into report.md and PNG plots there.
#
#   scripts/bench.sh [--quick] [--only NAME[,NAME…]] [--out DIR] [--publish]
#
#   --quick      short settings for a smoke run (about 5 minutes)
#   --only       run only these steps: mixer, capacity, syscalls, latency,
#                pacing, memory (the report is always written from what is
#                in DIR)
#   --out DIR    output directory (default bench-out/, git-ignored)
#   --publish    copy report.md and the PNGs into docs/bench/
#
# The full suite takes about 45 minutes; it measures a shared machine, so
# run it when nothing else is busy. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
only=""
out="bench-out"
publish=false
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=true ;;
    --only) only="${2:?--only needs a list of steps}"; shift ;;
    --out) out="${2:?--out needs a directory}"; shift ;;
    --publish) publish=true ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
for step in ${only//,/ }; do
  case "$step" in
    mixer|capacity|syscalls|latency|pacing|memory|report) ;;
    *) echo "bench.sh: unknown step $step (mixer, capacity, syscalls, latency, pacing, memory)" >&2; exit 2 ;;
  esac
done

target="${CARGO_TARGET_DIR:-target}"
bin="$target/release"
suite_start=$(date +%s)
failed=()

say() { printf '\033[1mbench:\033[0m %s\n' "$*" >&2; }
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
elapsed() { local s=$(( $(date +%s) - $1 )); printf '%d min %02d s' $((s / 60)) $((s % 60)); }

# Runs step $1 (function step_$1) unless --only excludes it; a failing step
# is reported and the suite goes on with the next one.
run_step() {
  local name="$1" t0
  want "$name" || return 0
  t0=$(date +%s)
  say "── $name ($(date -u '+%H:%M:%S UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg))"
  rm -f "$out/$name.json"
  if "step_$name"; then
    say "$name done in $(elapsed "$t0")"
  else
    say "$name FAILED after $(elapsed "$t0")"
    failed+=("$name")
  fi
}

# Criterion keeps only each bench's latest estimates, so every run is
# extracted right after it; --since skips estimates left by older runs.
step_mixer() {
  local runs=3 filter="" times=(--warm-up-time 1 --measurement-time 3) i since cmd
  if $quick; then runs=1; filter='mixer/|engine_block'; times=(--warm-up-time 1 --measurement-time 1); fi
  cmd="cargo bench -p audionode --bench mixer -- ${filter:+'$filter' }${times[*]}"
  for i in $(seq "$runs"); do
    say "mixer run $i/$runs: $cmd"
    since=$(date +%s)
    cargo bench -q -p audionode --bench mixer -- ${filter:+"$filter"} "${times[@]}" \
      >"$out/mixer-run$i.log" 2>&1 || { tail -20 "$out/mixer-run$i.log" >&2; return 1; }
    "$bin/benchreport" --dir "$out" --extract-mixer "$target/criterion" \
      --since "$since" --mixer-command "$cmd" || return 1
  done
}

step_capacity() {
  local args=()
  if $quick; then args=(--sources 100,500 --runs 1 --seconds 5 --warmup 2); fi
  "$bin/audiocapacity" "${args[@]}" --json "$out/capacity.json" | tee "$out/capacity.md"
}

# strace -c of the node's mixing thread under 256 sources; fails when the
# thread makes a call outside its real-time contract. The script installs
# strace when run as root and it is missing.
step_syscalls() {
  local args=()
  if $quick; then args=(--seconds 5 --warmup 3); fi
  scripts/strace-mix.sh "${args[@]}" --out "$out/syscalls" | tee "$out/syscalls.md"
}

step_latency() {
  if [ ! -x "$bin/audiolatency" ]; then
    say "SKIPPED latency: $bin/audiolatency does not exist (bench/src/bin/audiolatency.rs not built yet)"
    return 1
  fi
  # The recorder plays through the sound card; on a machine without one
  # (or without a sound server) use the same private PulseAudio null sink
  # as the tests.
  if [ -z "${PULSE_SERVER:-}" ]; then
    eval "$(scripts/headless-audio.sh)"
  fi
  local args=()
  if $quick; then args=(--runs 1 --seconds 10); fi
  "$bin/audiolatency" "${args[@]}" --json "$out/latency.json" | tee "$out/latency.md"
}

step_pacing() {
  local args=(--seconds 600 --runs 3)
  if $quick; then args=(--seconds 30 --runs 3); fi
  "$bin/audiopacing" "${args[@]}" --json "$out/pacing.json" | tee "$out/pacing.md"
}

step_memory() {
  local args=(--minutes 60 --runs 3 --speed 20)
  if $quick; then args=(--minutes 5 --runs 1 --speed 20); fi
  "$bin/audiomemory" "${args[@]}" --json "$out/memory.json" | tee "$out/memory.md"
}

scripts/setup.sh
mkdir -p "$out"
say "building (release)…"
cargo build --release --quiet -p audionode -p audiostreamer -p audiorecorder -p bench

run_step mixer
run_step capacity
run_step syscalls
run_step latency
run_step pacing
run_step memory

say "── report"
"$bin/benchreport" --dir "$out"
if $publish; then
  mkdir -p docs/bench
  cp "$out/report.md" docs/bench/report.md
  find "$out" -maxdepth 1 -name '*.png' -exec cp {} docs/bench/ \;
  say "published to docs/bench/ (report.md and plots)"
fi
say "total $(elapsed "$suite_start")${failed[*]:+; FAILED: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
