#!/usr/bin/env bash
# Runs every fuzz target of this directory for $1 seconds (default 30), then prints how many
# inputs each ran. Uses a nightly toolchain when one is installed, else the stable one with
# RUSTC_BOOTSTRAP=1 (libFuzzer needs -Z flags). Corpora and crash artifacts stay in corpus/ and
# artifacts/ (ignored by git); exits non-zero if any target failed.
set -uo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked || exit 1
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz() { cargo +nightly fuzz "$@"; }
else
  fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fi
fuzz build || exit 1
mkdir -p logs
summary=()
failed=0
for target in $(fuzz list); do
  echo "== fuzzing $target for ${seconds}s"
  if fuzz run "$target" -- -max_total_time="$seconds" 2>&1 | tee "logs/$target.log"; then
    status=ok
  else
    status=FAILED
    failed=1
  fi
  runs=$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "logs/$target.log" | tail -n 1)
  summary+=("$(printf '%-18s %-6s %s' "$target" "$status" "${runs:-no summary (see fuzz/logs/$target.log)}")")
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
