#!/usr/bin/env bash
# Counts the system calls of the node's mixing thread in steady state and
# checks them against its real-time contract: only recvmmsg, ppoll,
# sendto/sendmmsg, the clock (clock_gettime, usually in the vDSO and then
# invisible) and clock_nanosleep; never write, futex, mmap, mprotect, brk
# or anything else that can block, allocate or wake another thread.
#
#   scripts/strace-mix.sh [--sources N] [--seconds S] [--warmup S] [--out DIR]
#
#   --sources N   audioload sources (default 256)
#   --seconds S   how long strace counts (default 10)
#   --warmup S    load before counting starts (default 5)
#   --out DIR     keep the logs and the strace table here (default: a
#                 temporary directory, removed at the end)
#
# It starts the release audionode (free ports, --http and --tcp-listen on
# 127.0.0.1), a UDP audiorecorder as its --dest and a TCP audiorecorder
# connected to --tcp-listen (both --no-playback, recording to WAV files in
# DIR), and audioload; finds the thread named `mix` in
# /proc/PID/task/*/comm and runs `strace -c -p TID` on that thread alone
# (no -f: with -p, -f would attach every thread of the process). If a
# call outside the contract shows up, a second pass with `strace -k`
# prints where it comes from. Exit status: 0 contract kept, 1 broken,
# 2 usage or start-up error, 3 skipped (no strace and not root to install
# it). Needs ptrace rights on the node (root, or ptrace_scope 0).
# CARGO_TARGET_DIR is honoured; the binaries are built if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

sources=256
seconds=10
warmup=5
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sources) sources="${2:?--sources needs a number}"; shift ;;
    --seconds) seconds="${2:?--seconds needs a number}"; shift ;;
    --warmup) warmup="${2:?--warmup needs a number}"; shift ;;
    --out) out="${2:?--out needs a directory}"; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "strace-mix.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf 'strace-mix: %s\n' "$*" >&2; }

if ! command -v strace >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing strace (apt-get install -y strace)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
  else
    say "SKIPPED: strace is not installed (Debian: sudo apt-get install strace)"
    exit 3
  fi
fi

bin="${CARGO_TARGET_DIR:-target}/release"
if [ ! -x "$bin/audionode" ] || [ ! -x "$bin/audiorecorder" ] || [ ! -x "$bin/audioload" ]; then
  say "building release binaries"
  cargo build --release --quiet -p audionode -p audiorecorder -p bench
fi

keep=true
if [ -z "$out" ]; then
  out="$(mktemp -d)"
  keep=false
fi
mkdir -p "$out"

pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  $keep || rm -rf "$out"
}
trap cleanup EXIT

# Waits up to 10 s for a line matching the sed expression $2 in file $1
# and prints the captured group.
wait_for() {
  local file="$1" expr="$2" i v
  for i in $(seq 100); do
    v="$(sed -n "$expr" "$file" 2>/dev/null | head -1)"
    if [ -n "$v" ]; then printf '%s\n' "$v"; return 0; fi
    sleep 0.1
  done
  say "gave up waiting for $expr in $file:"; tail -5 "$file" >&2
  return 1
}

# A UDP recorder on a free port is the node's --dest, so every block the
# mixing thread sends has a receiver.
RUST_LOG=info "$bin/audiorecorder" --bind 127.0.0.1 --no-playback --overwrite \
  "$out/udp.wav" 0 >"$out/recorder-udp.out" 2>"$out/recorder-udp.log" &
pids+=($!)
udp_dest="$(wait_for "$out/recorder-udp.log" 's/.*listening on UDP \([0-9.:]*\).*/\1/p')" || exit 2

RUST_LOG=info "$bin/audionode" --listen 127.0.0.1:0 --dest "$udp_dest" \
  --http 127.0.0.1:0 --tcp-listen 127.0.0.1:0 --max-sources "$sources" \
  --log-file "$out/node-events.log" 2>"$out/node.log" &
node=$!
pids+=("$node")
listen="$(wait_for "$out/node.log" 's/.*listening on \([0-9.:]*\),.*/\1/p')" || exit 2
tcp="$(wait_for "$out/node.log" 's/.*serving the mix over TCP on \([0-9.:]*\).*/\1/p')" || exit 2

RUST_LOG=info "$bin/audiorecorder" --tcp "$tcp" --no-playback --overwrite \
  "$out/tcp.wav" >"$out/recorder-tcp.out" 2>"$out/recorder-tcp.log" &
pids+=($!)
wait_for "$out/recorder-tcp.log" 's/.*\(connected to TCP server\).*/\1/p' >/dev/null || exit 2

"$bin/audioload" --sources "$sources" --dest "$listen" \
  --seconds "$((warmup + 2 * seconds + 10))" >"$out/load.log" 2>&1 &
pids+=($!)

tid=""
for t in /proc/"$node"/task/*; do
  if [ "$(cat "$t/comm" 2>/dev/null)" = mix ]; then tid="${t##*/}"; fi
done
[ -n "$tid" ] || { say "no thread named mix in node $node"; exit 2; }

say "node $node (mix thread $tid) on $listen, TCP $tcp, UDP dest $udp_dest; $sources sources"
say "warm-up ${warmup} s, then strace -c -p $tid for ${seconds} s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
sleep "$warmup"

# strace prints its summary when it detaches on SIGINT.
strace -c -S calls -p "$tid" -o "$out/strace.txt" 2>"$out/strace.err" &
st=$!
sleep "$seconds"
kill -INT "$st" 2>/dev/null || true
wait "$st" || true
[ -s "$out/strace.txt" ] || { say "strace wrote no table:"; cat "$out/strace.err" >&2; exit 2; }

echo "strace -c -S calls -p $tid (the node's mix thread), ${seconds} s, $sources sources, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
cat "$out/strace.txt"
echo

# The syscall names of the table: the last column of every row between the
# dashed rule and the total.
calls="$(awk '/^-+ /{rule++; next} rule==1 && NF>=4 {print $NF}' "$out/strace.txt")"
# restart_syscall is the call the thread was inside when strace attached
# (its ppoll or clock_nanosleep), resumed: an artifact of attaching.
allowed=" recvmmsg ppoll sendto sendmmsg clock_gettime clock_nanosleep restart_syscall "
bad=()
for c in $calls; do
  [[ "$allowed" == *" $c "* ]] || bad+=("$c")
done

if [ ${#bad[@]} -eq 0 ]; then
  echo "contract kept: only $(echo $calls | tr ' ' ',')"
  exit 0
fi

echo "CONTRACT BROKEN: the mix thread made ${bad[*]}"
if strace -k -e trace=none true >/dev/null 2>&1; then
  list="$(IFS=,; echo "${bad[*]}")"
  say "where from: strace -k -e trace=$list -p $tid for ${seconds} s"
  strace -k -e trace="$list" -p "$tid" -o "$out/strace-stacks.txt" 2>>"$out/strace.err" &
  st=$!
  sleep "$seconds"
  kill -INT "$st" 2>/dev/null || true
  wait "$st" || true
  echo
  echo "first stacks (strace -k -e trace=$list; all of them in $out/strace-stacks.txt):"
  head -80 "$out/strace-stacks.txt" || true
else
  echo "(this strace has no -k; no stacks)"
fi
exit 1
