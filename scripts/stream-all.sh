#!/usr/bin/env bash
# Streams every WAV in DIR to DEST at once (one audiostreamer per file) and
# waits for all of them; Ctrl-C stops them all.
#
#   scripts/stream-all.sh DIR [DEST] [extra audiostreamer flags...]
#   scripts/stream-all.sh demo-out/stems 127.0.0.1:4030 --loop
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${1:?usage: scripts/stream-all.sh DIR [DEST] [audiostreamer flags...]}"
dest="${2:-127.0.0.1:4030}"
shift $(( $# >= 2 ? 2 : 1 ))
bin="${AUDIOMIX_BIN:-target/release}/audiostreamer"
[ -x "$bin" ] || cargo build --release --quiet -p audiostreamer

shopt -s nullglob
files=("$dir"/*.wav)
[ "${#files[@]}" -gt 0 ] || { echo "stream-all.sh: no WAV files in $dir" >&2; exit 1; }

pids=()
stop_all() { for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done; }
trap 'stop_all; wait; exit 130' INT TERM

for f in "${files[@]}"; do
  "$bin" "$f" "$dest" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit "$status"
