#!/usr/bin/env bash
# What does ksnap add on top of booting a kernel? Times, side by side in one run:
#   bare:  qemu-system-x86_64 -kernel … -initrd … with a trivial init that powers off at once
#   ksnap: ksnap run --kernel KERNEL --suite env --accel tcg   (whole process: resolve, initramfs, boot, probe)
# Same kernel, same machine options, alternating, ROUNDS times each; prints the medians and their ratio.
# Usage: scripts/bench-overhead.sh [KERNEL] [ROUNDS]     (defaults: 6.1, 7)
set -euo pipefail
cd "$(dirname "$0")/.."
kernel_name=${1:-6.1}
rounds=${2:-7}

scripts/setup.sh
cargo build --quiet --release --package ksnap
ksnap=target/release/ksnap
$ksnap kernels --fetch >/dev/null
image=$($ksnap kernels | awk -v k="$kernel_name" '$1 == k { print $NF }')
[ -f "$image" ] || { echo "no image for kernel $kernel_name" >&2; exit 1; }
memory=$(awk '/^\[suites.env\]/ {s=1} s && /^memory_mib/ {print $3; exit}' ksnap.toml)

source scripts/bench-lib.sh
with_ksnap() {
  $ksnap run --kernel "$kernel_name" --suite env --accel tcg >/dev/null 2>&1
}

with_ksnap  # warm the caches (guest binaries, initramfs, apt resolution)
: > "$work/bare.txt"; : > "$work/ksnap.txt"
for _ in $(seq "$rounds"); do
  seconds bare_boot "$image" >> "$work/bare.txt"
  seconds with_ksnap >> "$work/ksnap.txt"
done
bare_median=$(median < "$work/bare.txt")
ksnap_median=$(median < "$work/ksnap.txt")
echo "kernel $kernel_name ($(basename "$image")), TCG, -m ${memory}M, $rounds rounds each, medians:"
echo "  bare QEMU boot to power-off:          ${bare_median} s   [$(tr '\n' ' ' < "$work/bare.txt")]"
echo "  ksnap run --suite env (whole process): ${ksnap_median} s   [$(tr '\n' ' ' < "$work/ksnap.txt")]"
echo "  ratio ksnap / bare: $(echo "scale=3; $ksnap_median / $bare_median" | bc)"
