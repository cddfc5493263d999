#!/usr/bin/env bash
# Installs the system packages this project needs to build, test and run its demo
# on a Debian/Ubuntu machine. Idempotent: quiet and fast when everything is present.
#
#   libasound2-dev, pkg-config   cpal's ALSA backend (build)
#   pulseaudio, pulseaudio-utils headless playback/capture tests (null sink, parec)
#   libasound2-plugins           ALSA "pulse" plugin so cpal's ALSA default reaches PulseAudio
#   chromium, chromium-driver    the browser tests (desk, Listen and Send pages; driven over WebDriver)
#   xvfb                         a virtual display for the browser tests that play or capture audio
#                                (headless Chromium does not play through PulseAudio)
#   fonts-dejavu-core            the font scripts/bench.sh's PNG plots are labelled with
#   ffmpeg                       third-party RTP sender in the RTP peer tests (ffmpeg -f rtp); FLAC/Ogg/MP3/AIFF fixtures of the streamer format tests
#   gstreamer1.0-tools           gst-launch-1.0, third-party RTP sender/receiver in the RTP peer tests
#   gstreamer1.0-plugins-base    GStreamer's wavparse/audioconvert/rawaudio elements for those tests
#   gstreamer1.0-plugins-good    GStreamer's udpsrc/udpsink, rtpjitterbuffer, rtpL16pay/depay, wavenc
#   libopus-dev                  the Opus codec (RFC 6716) the opus crate links through pkg-config (build)
set -euo pipefail

packages=(
  pkg-config
  libasound2-dev
  pulseaudio
  pulseaudio-utils
  libasound2-plugins
  chromium
  chromium-driver
  xvfb
  fonts-dejavu-core
  ffmpeg
  gstreamer1.0-tools
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  libopus-dev
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup.sh: cargo is not installed; install Rust from https://rustup.rs first" >&2
fi

install_cmd="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  runner=(sh -c)
elif command -v sudo >/dev/null 2>&1; then
  runner=(sudo sh -c)
else
  echo "setup.sh: missing packages: ${missing[*]}" >&2
  echo "setup.sh: run as root: sh -c '$install_cmd'" >&2
  exit 1
fi

echo "setup.sh: installing ${missing[*]}" >&2
"${runner[@]}" "$install_cmd" >/dev/null
