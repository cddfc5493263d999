#!/usr/bin/env bash
# Streams every audio file in DIR to DEST at once (one audiostreamer per
# file) and waits for all of them; Ctrl-C stops them all.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/stream-all.sh DIR [DEST] [audiostreamer flags...]

Streams every audio file in DIR (WAV, FLAC, MP3, Ogg, AIFF) to DEST at once,
one audiostreamer per file, and waits for all of them; Ctrl-C stops them all.
DIR is relative to the current directory. DEST defaults to 127.0.0.1:4030
(a local audionode). Flags after DEST are passed to every audiostreamer.

Example:
  scripts/stream-all.sh demo-out/stems 127.0.0.1:4030 --loop

Environment: AUDIOMIX_BIN, the directory holding audiostreamer
(default: the repository's target/release, built if missing).
USAGE
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
dir="$1"
if [ ! -d "$dir" ]; then
  echo "stream-all.sh: $dir is not a directory" >&2
  echo "Try 'scripts/stream-all.sh --help'." >&2
  exit 2
fi
dest="${2:-127.0.0.1:4030}"
case "$dest" in
  -*) dest="127.0.0.1:4030"; shift ;;  # flags right after DIR: default DEST
  *) shift $(( $# >= 2 ? 2 : 1 )) ;;
esac

shopt -s nullglob nocaseglob
files=("$dir"/*.wav "$dir"/*.flac "$dir"/*.mp3 "$dir"/*.ogg "$dir"/*.aif "$dir"/*.aiff)
shopt -u nocaseglob
[ "${#files[@]}" -gt 0 ] || { echo "stream-all.sh: no audio files in $dir" >&2; exit 1; }

# Paths given by the caller stay relative to the caller's directory; only
# the default binary is found through the repository.
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${AUDIOMIX_BIN:-$root/target/release}/audiostreamer"
if [ ! -x "$bin" ]; then
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p audiostreamer
fi

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
