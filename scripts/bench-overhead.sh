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

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/init.c" <<'C'
#include <sys/reboot.h>
#include <unistd.h>
int main(void) { sync(); return reboot(RB_POWER_OFF); }
C
musl-gcc -static -O2 -o "$work/root-init" "$work/init.c"
mkdir -p "$work/root"
cp "$work/root-init" "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet > "$work/initrd.cpio")

bare() {
  qemu-system-x86_64 -machine pc -accel tcg -cpu qemu64 -m "${memory}M" -smp 1 -nodefaults -no-user-config \
    -display none -net none -no-reboot -bios /usr/share/qemu/qboot.rom \
    -chardev file,id=console,path="$work/console.log" -serial chardev:console \
    -kernel "$image" -initrd "$work/initrd.cpio" -append "console=ttyS0 panic=-1 loglevel=5" </dev/null
}
with_ksnap() {
  $ksnap run --kernel "$kernel_name" --suite env --accel tcg >/dev/null 2>&1
}
seconds() { local start=$(date +%s%N); "$@"; echo "scale=3; ($(date +%s%N) - $start) / 1000000000" | bc; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

with_ksnap  # warm the caches (guest binaries, initramfs, apt resolution)
: > "$work/bare.txt"; : > "$work/ksnap.txt"
for _ in $(seq "$rounds"); do
  seconds bare >> "$work/bare.txt"
  seconds with_ksnap >> "$work/ksnap.txt"
done
bare_median=$(median < "$work/bare.txt")
ksnap_median=$(median < "$work/ksnap.txt")
echo "kernel $kernel_name ($(basename "$image")), TCG, -m ${memory}M, $rounds rounds each, medians:"
echo "  bare QEMU boot to power-off:          ${bare_median} s   [$(tr '\n' ' ' < "$work/bare.txt")]"
echo "  ksnap run --suite env (whole process): ${ksnap_median} s   [$(tr '\n' ' ' < "$work/ksnap.txt")]"
echo "  ratio ksnap / bare: $(echo "scale=3; $ksnap_median / $bare_median" | bc)"
