#!/usr/bin/env bash
# A cascade of three nodes on loopback: two sub-mix nodes take two stems
# each (original format, from audiostreamer) and send their stereo mixes as
# RTP to a master node, whose mix an audiorecorder records. The master's
# desk is on http://127.0.0.1:8080/ (each sub-mix appears there as a stereo
# source named after its node); the sub-mixes' desks on 8081 and 8082.
#
#   scripts/cascade.sh
#
# Writes cascade-out/master.wav, the three event logs and the program logs.
# Ctrl-C at any point stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
  "") ;;
  *) echo "cascade.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

out="cascade-out"
bin="target/release"
say() { printf '\033[1mcascade:\033[0m %s\n' "$*"; }

scripts/setup.sh
say "building (release)…"
cargo build --release --workspace --quiet
mkdir -p "$out"
if [ ! -f "$out/stems/drums.wav" ]; then
  say "generating the stems…"
  "$bin/audiostreamer" --generate "$out/stems" >/dev/null
fi
rm -f "$out"/*.log "$out"/*.out

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for _ in $(seq 30); do
    alive=false
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=true; done
    $alive || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'echo; say "interrupted: stopping everything"; cleanup; exit 130' INT TERM
trap cleanup EXIT

# start NAME LOG READY-PATTERN COMMAND...: runs COMMAND in the background and
# waits until its log shows READY-PATTERN (or it dies: then shows why).
start() {
  local name="$1" log="$2" ready="$3"
  shift 3
  "$@" >"$log" 2>&1 &
  pids+=($!)
  local pid=$!
  for _ in $(seq 100); do
    grep -q "$ready" "$log" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "cascade.sh: $name failed to start:" >&2
      sed 's/^/    /' "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "cascade.sh: $name did not become ready; see $log" >&2
  exit 1
}

start recorder "$out/recorder.out" "listening on UDP" \
  "$bin/audiorecorder" "$out/master.wav" 4140 --bind 127.0.0.1 --overwrite --no-playback
start master "$out/master.out" "listening on" \
  "$bin/audionode" --listen 127.0.0.1:4130 --rtp-listen 127.0.0.1:5004 \
  --dest 127.0.0.1:4140 --http 127.0.0.1:8080 --log-file "$out/master.log"
for k in 1 2; do
  start "sub$k" "$out/sub$k.out" "listening on" \
    "$bin/audionode" --listen "127.0.0.1:413$k" --rtp-dest 127.0.0.1:5004 \
    --http "127.0.0.1:808$k" --log-file "$out/sub$k.log"
done
say "master desk: http://127.0.0.1:8080/ (sub-mixes on :8081 and :8082)"

stems=("$out"/stems/*.wav)
streamers=()
for i in "${!stems[@]}"; do
  sub=$(( i % 2 + 1 ))
  say "stem $(basename "${stems[$i]}") → sub-mix $sub"
  "$bin/audiostreamer" "${stems[$i]}" "127.0.0.1:413$sub" >"$out/streamer-$i.out" 2>&1 &
  pids+=($!)
  streamers+=($!)
done
for pid in "${streamers[@]}"; do wait "$pid"; done
say "stems finished; letting the nodes drain…"
for _ in $(seq 40); do
  [ "$(grep -c 'Dropped stream' "$out/master.log" 2>/dev/null || true)" -ge 2 ] && break
  sleep 0.1
done
cleanup
echo
say "done."
echo "  recording:   $out/master.wav"
echo "  event logs:  $out/master.log, $out/sub1.log, $out/sub2.log"
