#!/usr/bin/env bash
# The project's test command (README, CI): set-up, formatting, lints, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== headless audio (PulseAudio null sink for the playback tests)" >&2
# Exports PULSE_SERVER and ALSA_CONFIG_PATH. Under CI=true a missing audio
# stack fails here (and the playback tests would fail too); elsewhere the
# playback tests print why they skip.
if audio_env="$(scripts/headless-audio.sh)"; then
  eval "$audio_env"
elif [ "${CI:-}" = "true" ]; then
  echo "test.sh: the headless audio set-up failed under CI" >&2
  exit 1
fi
echo "== cargo test" >&2
cargo test --workspace
