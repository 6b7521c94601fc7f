#!/usr/bin/env bash
# Runs every fuzz target for $1 seconds (default 30). Uses a nightly toolchain when one is
# installed, else the stable one with RUSTC_BOOTSTRAP=1 (libFuzzer needs -Z flags).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  run() { cargo +nightly fuzz run "$@"; }
else
  run() { RUSTC_BOOTSTRAP=1 cargo fuzz run "$@"; }
fi
for target in chunk_decoder amf0_decoder; do
  echo "== fuzzing $target for ${seconds}s"
  run "$target" -- -max_total_time="$seconds"
done
