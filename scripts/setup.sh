#!/usr/bin/env bash
# Install what ksnap needs on a Debian/Ubuntu machine: QEMU, the tools that build guest binaries, C probes
# and kernels from source, and fresh apt package lists (kernels are fetched through the system's apt
# sources).
# As root it installs; otherwise it prints the exact command to run. Idempotent and quick when done.
set -euo pipefail

# program → package that provides it
declare -A needed=(
  [qemu-system-x86_64]=qemu-system-x86
  [musl-gcc]=musl-tools
  [cpio]=cpio
  [gcc]=gcc
  [as]=binutils
  [apt-get]=apt
  # Building kernels from source (`source =` kernels in ksnap.toml).
  [make]=make
  # Builds of one source with different fragments share objects through it (vm/src/build.rs).
  [ccache]=ccache
  [flex]=flex
  [bison]=bison
  [bc]=bc
  [lz4]=lz4
)

missing=()
for program in "${!needed[@]}"; do
  command -v "$program" >/dev/null 2>&1 || missing+=("${needed[$program]}")
done
# qboot makes boots faster; Debian ships it with qemu-system-x86 (in qemu-system-data).
[ -f /usr/share/qemu/qboot.rom ] || missing+=(qemu-system-data)
# objtool, built with every x86_64 kernel, needs libelf's headers.
[ -f /usr/include/libelf.h ] || missing+=(libelf-dev)
# The kernel selftests (`[selftests]` in ksnap.toml) link these statically, and run under a static busybox.
[ -f /usr/include/numa.h ] || missing+=(libnuma-dev)
[ -f /usr/include/sys/capability.h ] || missing+=(libcap-dev)
[ -f /usr/include/liburing.h ] || missing+=(liburing-dev)
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)

# Kernels are resolved through apt: the package lists must know the kernel metapackages.
lists_ok=true
apt-cache show --no-all-versions linux-image-cloud-amd64 >/dev/null 2>&1 || lists_ok=false

if [ ${#missing[@]} -eq 0 ] && $lists_ok; then
  exit 0
fi

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "ksnap setup: run this as root (or with sudo), then try again:" >&2
  echo "  apt-get update${missing:+ && apt-get install -y --no-install-recommends ${missing[*]}}" >&2
  exit 1
fi

echo "ksnap setup: apt-get update" >&2
apt-get update -q >&2
if [ ${#missing[@]} -gt 0 ]; then
  echo "ksnap setup: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
