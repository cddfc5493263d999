#!/usr/bin/env bash
# Starts (idempotently) a private PulseAudio daemon with a null sink, and an
# ALSA configuration whose default device plays into it, so cpal's ALSA
# backend runs its real playback path on a machine without a sound card.
# What was played can be captured from the sink's monitor:
#
#   eval "$(scripts/headless-audio.sh)"     # exports the variables below
#   audiorecorder rec.wav 4040 &            # plays into the null sink
#   parec -d audiomix_null.monitor --format=s16le --rate=48000 --channels=2 out.raw
#
# The daemon is private: its own runtime directory and socket (it never
# touches a desktop's PulseAudio), no idle exit, anonymous access. It works
# as root (CI containers): PulseAudio only warns that it runs as root in
# user mode; HOME is pointed at the private directory so its cookie and
# state files land there. ~/.asoundrc is not touched: ALSA reads our file
# through ALSA_CONFIG_PATH, which first includes the system configuration.
#
# Prints shell `export` lines on stdout; logs go to stderr.
#   AUDIOMIX_PULSE_DIR   where everything lives (default /tmp/audiomix-pulse-<uid>)
#   --stop               stops the daemon started here
set -euo pipefail

dir="${AUDIOMIX_PULSE_DIR:-/tmp/audiomix-pulse-$(id -u)}"
sink=audiomix_null
rate=48000
socket="$dir/native"
asound="$dir/asound.conf"

say() { echo "headless-audio: $*" >&2; }

for tool in pulseaudio pactl parec; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    say "$tool is missing; run scripts/setup.sh (pulseaudio, pulseaudio-utils, libasound2-plugins)"
    exit 1
  fi
done
plugin_found=
for f in /usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so /usr/lib/alsa-lib/libasound_module_pcm_pulse.so /usr/lib64/alsa-lib/libasound_module_pcm_pulse.so; do
  [ -e "$f" ] && plugin_found=1
done
if [ -z "$plugin_found" ]; then
  say "the ALSA pulse plugin is missing; run scripts/setup.sh (libasound2-plugins)"
  exit 1
fi

mkdir -p "$dir"
chmod 700 "$dir"

pulse_env=(env HOME="$dir" XDG_RUNTIME_DIR="$dir" XDG_CONFIG_HOME="$dir/config" PULSE_SERVER="unix:$socket")

running() {
  "${pulse_env[@]}" pactl info >/dev/null 2>&1
}

if [ "${1:-}" = "--stop" ]; then
  if running; then
    "${pulse_env[@]}" pactl exit >/dev/null 2>&1 || true
    say "stopped the daemon at $socket"
  fi
  exit 0
fi

if ! running; then
  # Not answering: a stale socket or pid file (a killed daemon, possibly
  # still a zombie) must not block the new one.
  rm -f "$socket" "$dir/pulse/pid"
  # The server's default rate is the sink's: clients that open a stream at
  # the server's default (Chromium does) then play without resampling.
  mkdir -p "$dir/config/pulse"
  printf 'default-sample-rate = %s\n' "$rate" > "$dir/config/pulse/daemon.conf"
  # -n: no default.pa (no hardware probing, nothing else loaded).
  # --exit-idle-time=-1: stay up between test runs.
  # Its exit status is not trusted; whether the server answers is.
  (cd "$dir" && "${pulse_env[@]}" PULSE_CONFIG="$dir/config/pulse/daemon.conf" pulseaudio -n --daemonize=yes --exit-idle-time=-1 \
    --use-pid-file=yes --log-target="file:$dir/pulse.log" \
    --load="module-null-sink sink_name=$sink rate=$rate channels=2 sink_properties=device.description=audiomix-null" \
    --load="module-native-protocol-unix socket=$socket auth-anonymous=1") || true
  for _ in $(seq 1 50); do
    running && break
    sleep 0.1
  done
  if ! running; then
    say "PulseAudio did not come up; its log ($dir/pulse.log):"
    tail -n 20 "$dir/pulse.log" >&2 || true
    exit 1
  fi
  say "started PulseAudio at $socket with null sink $sink ($rate Hz)"
fi
"${pulse_env[@]}" pactl set-default-sink "$sink"

# ALSA: the system configuration, then our default pcm/ctl on the daemon.
cat >"$asound.tmp" <<EOF
# Written by scripts/headless-audio.sh: ALSA default -> private PulseAudio null sink.
</usr/share/alsa/alsa.conf>
pcm.!default { type pulse server "unix:$socket" device "$sink" }
ctl.!default { type pulse server "unix:$socket" }
EOF
mv "$asound.tmp" "$asound"

cat <<EOF
export PULSE_SERVER=unix:$socket
export ALSA_CONFIG_PATH=$asound
export AUDIOMIX_NULL_SINK=$sink
export AUDIOMIX_NULL_SINK_RATE=$rate
EOF
