#!/usr/bin/env bash
# Fuzz the parsers that read guest output (KTAP, console, result channel) with cargo-fuzz/libFuzzer.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 30; CI runs a short round)
# The seed corpus in fuzz/corpus/ is committed (real kselftest/KUnit output, real kernel panics, protocol
# transcripts); what libFuzzer finds goes to a scratch directory (KSNAP_FUZZ_KEEP=1 adds it to the seeds).
# A crash leaves its input in fuzz/artifacts/TARGET/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
# cargo-fuzz needs unstable compiler flags (sanitizer coverage); the machine has only a stable toolchain,
# and RUSTC_BOOTSTRAP lets it accept them.
export RUSTC_BOOTSTRAP=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in ktap console channel kselftest; do
  echo "fuzzing $target for ${seconds}s" >&2
  mkdir -p "$scratch/$target"
  new_inputs="$scratch/$target"
  [ "${KSNAP_FUZZ_KEEP:-0}" = 1 ] && new_inputs="fuzz/corpus/$target"
  # libFuzzer writes new inputs to the first directory. Inputs up to 64 KiB, at most 512 MiB of memory:
  # the parsers must stay bounded.
  cargo fuzz run --fuzz-dir fuzz "$target" "$new_inputs" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=512 -print_final_stats=1 2>&1 | tail -n 3
done
