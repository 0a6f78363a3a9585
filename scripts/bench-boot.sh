#!/usr/bin/env bash
# Where does a kernel's boot time go under TCG? For each kernel of the matrix:
#   1. the median time from QEMU's start to power-off with a trivial init (ROUNDS boots);
#   2. one boot with `initcall_debug loglevel=8`: the slowest initcalls, and the longest gaps between
#      console lines with the lines around them (a gap is where something slow ran without printing).
# Initcalls are named only in kernels with CONFIG_KALLSYMS (Debian's); ksnap's minimal ones show addresses.
# The machine is ksnap's (-machine pc, qboot, qemu64, one CPU, -m of suite env), so times compare with
# `ksnap run`'s per-cell VM times. Kernels built from source are built first if needed (minutes).
# Usage: scripts/bench-boot.sh [KERNEL...] (default: every kernel)  Env: ROUNDS (7), KSNAP_CONFIG (ksnap.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-7}
config=${KSNAP_CONFIG:-ksnap.toml}

scripts/setup.sh
cargo build --quiet --release --package ksnap
ksnap() { target/release/ksnap --config "$config" "$@"; }
ksnap kernels --fetch >/dev/null
kernels=("$@")
if [ ${#kernels[@]} -eq 0 ]; then
  mapfile -t kernels < <(ksnap kernels | awk 'NR > 1 { print $1 }')
fi
memory=$(awk '/^\[suites.env\]/ {s=1} s && /^memory_mib/ {print $3; exit}' "$config")

source scripts/bench-lib.sh

for name in "${kernels[@]}"; do
  image=$(ksnap kernels | awk -v k="$name" '$1 == k { print $NF }')
  [ -f "$image" ] || { echo "no image for kernel $name" >&2; exit 1; }
  : > "$work/times.txt"
  for _ in $(seq "$rounds"); do seconds bare_boot "$image" >> "$work/times.txt"; done
  echo "== kernel $name ($(basename "$image")): boot to power-off, median of $rounds: $(median < "$work/times.txt") s"
  echo "   [$(tr '\n' ' ' < "$work/times.txt")]"
  bare_boot "$image" "initcall_debug loglevel=8"
  echo "-- slowest initcalls (µs):"
  sed -n 's/.*initcall \([^ ]*\) returned .* after \([0-9]*\) usecs.*/\2 \1/p' "$work/console.log" | sort -rn | awk 'NR <= 10'
  echo "-- longest gaps between console lines (ms), with the line before and after:"
  awk '/^\[ *[0-9]+\.[0-9]+\]/ {
         t = substr($0, 2, index($0, "]") - 2) + 0
         if (NR > 1) printf "%6.0f  %s\n        %s\n", (t - prev) * 1000, substr(last, 1, 110), substr($0, 1, 110)
         prev = t; last = $0 }' "$work/console.log" | paste - - | sort -rn | awk 'NR <= 10' | tr '\t' '\n'
done
