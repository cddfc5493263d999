#!/usr/bin/env bash
# The demo: four generated stems streamed by four audiostreamers into one
# audionode (web mixing desk on http://127.0.0.1:8080/), mixed and sent to an
# audiorecorder that plays it (when this machine has a sound card) and
# records it. `--impair` sends the streams through audioimpair (5 % loss,
# 5 % reorder, 1 % duplicates, 10 ms jitter) first.
#
#   scripts/demo.sh [--impair]
#
# Ports can be moved with NODE_PORT (4030), REC_PORT (4040), HTTP_PORT (8080)
# and IMPAIR_PORT (4029). Ctrl-C at any point stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

impair=false
for arg in "$@"; do
  case "$arg" in
    --impair) impair=true ;;
    -h|--help)
      cat <<'USAGE'
Usage: scripts/demo.sh [--impair]

The demo: four generated stems streamed by four audiostreamers into one
audionode (web mixing desk on http://127.0.0.1:8080/), mixed and sent to an
audiorecorder that plays it (when this machine has a sound card) and records
it to demo-out/mix.wav. Ctrl-C at any point stops everything it started.

Options:
  --impair    send the streams through audioimpair first (5 % loss,
              5 % reorder, 1 % duplicates, 10 ms jitter)
  -h, --help  print this help

Environment: NODE_PORT (4030), REC_PORT (4040), HTTP_PORT (8080) and
IMPAIR_PORT (4029) move the ports.
USAGE
      exit 0 ;;
    *) echo "demo.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

NODE_PORT="${NODE_PORT:-4030}"
REC_PORT="${REC_PORT:-4040}"
HTTP_PORT="${HTTP_PORT:-8080}"
IMPAIR_PORT="${IMPAIR_PORT:-4029}"
out="demo-out"
bin="target/release"

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }

scripts/setup.sh
say "building (release)…"
cargo build --release --workspace --quiet

mkdir -p "$out"
if [ ! -f "$out/stems/drums.wav" ]; then
  say "generating the demo stems…"
  "$bin/audiostreamer" --generate "$out/stems" >/dev/null
fi
rm -f "$out"/*.log "$out"/*.out "$out/ground-truth.json"

pids=()
names=()
cleanup() {
  trap - INT TERM EXIT
  # Recorder first (it finalises the WAV), then everything else.
  for i in "${!pids[@]}"; do kill -INT "${pids[$i]}" 2>/dev/null || true; done
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

# start NAME LOGFILE READY-PATTERN COMMAND...: runs COMMAND in the background
# and waits until its log shows READY-PATTERN (or it dies: then show why).
start() {
  local name="$1" log="$2" ready="$3"
  shift 3
  "$@" >"$log" 2>&1 &
  pids+=($!)
  names+=("$name")
  local pid=$!
  for _ in $(seq 100); do
    grep -q "$ready" "$log" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo.sh: $name failed to start:" >&2
      sed 's/^/    /' "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "demo.sh: $name did not become ready; see $log" >&2
  exit 1
}

# Play through the sound card only where there is one (or a sound server).
playback=(--no-playback)
if grep -qE '^ *[0-9]+ \[' /proc/asound/cards 2>/dev/null || pactl info >/dev/null 2>&1; then
  playback=()
  say "playing through the sound card and recording to $out/mix.wav"
else
  say "no sound card found: recording only, to $out/mix.wav"
fi

start recorder "$out/recorder.out" "listening on UDP" \
  "$bin/audiorecorder" "$out/mix.wav" "$REC_PORT" --bind 127.0.0.1 --overwrite "${playback[@]}"
# Through the impairment proxy the jitter buffer adapts to what it measures.
jitter=20
$impair && jitter=auto
start node "$out/node.out" "listening on" \
  "$bin/audionode" --listen "127.0.0.1:$NODE_PORT" --dest "127.0.0.1:$REC_PORT" \
  --http "127.0.0.1:$HTTP_PORT" --log-file "$out/audionode.log" --jitter-ms "$jitter"
target="127.0.0.1:$NODE_PORT"
if $impair; then
  start impair "$out/impair.out" "listening" \
    "$bin/audioimpair" --listen "127.0.0.1:$IMPAIR_PORT" --forward "$target" \
    --loss 0.05 --reorder 0.05 --duplicate 0.01 --jitter 10 --seed 1 --summary "$out/ground-truth.json"
  target="127.0.0.1:$IMPAIR_PORT"
  say "streams go through audioimpair (5 % loss, 5 % reorder, 1 % duplicates, 10 ms jitter); jitter buffer on auto"
fi
say "mixing desk: http://127.0.0.1:$HTTP_PORT/   (open it while the demo plays)"

stems=("$out"/stems/*.wav)
say "streaming ${#stems[@]} stems ($(basename -a "${stems[@]}" | tr '\n' ' '))…"
streamers=()
for f in "${stems[@]}"; do
  "$bin/audiostreamer" "$f" "$target" >"$out/streamer-$(basename "$f" .wav).out" 2>&1 &
  pids+=($!)
  streamers+=($!)
done
for pid in "${streamers[@]}"; do wait "$pid"; done

say "streams finished; letting the node drain and drop them…"
for _ in $(seq 40); do
  [ "$(grep -c 'Dropped stream' "$out/audionode.log" 2>/dev/null || true)" -ge "${#stems[@]}" ] && break
  sleep 0.1
done
cleanup
summary="$(grep -h 'audiorecorder: recorded\|audiorecorder: .*frames' "$out/recorder.out" | tail -1 || true)"
echo
say "done."
echo "  recording:   $out/mix.wav"
[ -n "$summary" ] && echo "               ${summary#audiorecorder: }"
echo "  event log:   $out/audionode.log ($(wc -l <"$out/audionode.log") events)"
$impair && echo "  ground truth of the impairments: $out/ground-truth.json"
echo "  program logs: $out/*.out"
