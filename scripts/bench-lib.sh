# Shared by the benchmark scripts (sourced, not run). Sets up $work, a scratch directory removed on exit,
# holding $work/initrd.cpio: an initramfs whose /init powers off at once (static musl), the baseline a
# kernel's bare boot is measured with. `memory` (MiB) must be set before calling bare_boot.

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

# bare_boot IMAGE [EXTRA-CMDLINE]: boot to power-off on ksnap's machine (see vm/src/machine/qemu.rs), the
# console in $work/console.log.
bare_boot() {
  qemu-system-x86_64 -machine pc -accel tcg -cpu qemu64 -m "${memory}M" -smp 1 -nodefaults -no-user-config \
    -display none -net none -no-reboot -bios /usr/share/qemu/qboot.rom \
    -chardev file,id=console,path="$work/console.log" -serial chardev:console \
    -kernel "$1" -initrd "$work/initrd.cpio" -append "console=ttyS0 panic=-1 loglevel=5 ${2:-}" </dev/null
}
seconds() { local start=$(date +%s%N); "$@"; echo "scale=3; ($(date +%s%N) - $start) / 1000000000" | bc; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
