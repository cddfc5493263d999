#!/usr/bin/env bash
# The main job: builds the three programs and runs the demo pipeline.
# (Until the streamer, node and recorder are complete this builds them and shows their interfaces.)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --workspace --quiet
for program in audiostreamer audionode audiorecorder; do
  echo "==================== $program --help"
  "target/release/$program" --help
done
