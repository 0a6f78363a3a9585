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
  # Builds of one source with different fragments share objects through it (vm/src/kernel/build/mod.rs).
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
[ ${#missing[@]} -gt 0 ] || exit 0

# Installing must never remove or replace what the user installed. apt's plan is simulated first; a plan
# that removes a package is not carried out.
apt_options=()
qemu=() others=()
for package in "${missing[@]}"; do
  case $package in qemu-*) qemu+=("$package") ;; *) others+=("$package") ;; esac
done

# QEMU's packages must be of one release: a newer qemu-utils (from backports, say) Breaks an older
# qemu-system-common, so installing the suite's qemu-system-x86 beside it would remove it. Ask for the
# installed release instead, from where it came: the system's sources, or the system's backports suite.
# (dpkg-query exits 1 when one of them is unknown to dpkg: not an error here.)
qemu_release=$({ dpkg-query -W -f '${db:Status-Abbrev} ${Version}\n' qemu-utils qemu-system-common qemu-block-extra 2>/dev/null ||
  true; } | awk '$1 == "ii" { print $2; exit }')
if [ -n "$qemu_release" ]; then
  for i in "${!qemu[@]}"; do qemu[$i]="${qemu[$i]}=$qemu_release"; done
  if [ ${#qemu[@]} -gt 0 ] && [[ $qemu_release == *~bpo* ]] && ! apt-cache madison qemu-system-x86 | grep -qF " $qemu_release "; then
    # The system's sources no longer list backports: a private apt configuration adds the suite for this
    # one install (the system's sources and package lists are left as they are). A sources file that is
    # not there (no deb822 file, no sources.list) is no error: `|| true` under pipefail.
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    entry=$(awk -v c="$codename" '
      /^(URIs|Suites|Signed-By):/ { f[$1] = $0; sub(/^[^:]*: */, "", f[$1]) }
      /^$/ { if (f["Suites:"] ~ "(^| )" c "( |$)") { print f["URIs:"] "|" f["Signed-By:"]; exit } delete f }
      END { if (f["Suites:"] ~ "(^| )" c "( |$)") print f["URIs:"] "|" f["Signed-By:"] }' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
    [ -n "$entry" ] || entry=$(awk -v c="$codename" '$1 == "deb" && $0 ~ " " c " " {
        for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i "|"; exit } }' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1 || true)
    if [ -n "$codename" ] && [ -n "$entry" ]; then
      private=$(mktemp -d)
      trap 'rm -rf "$private"' EXIT
      chmod 755 "$private"
      mkdir -p "$private/parts" "$private/lists/partial"
      cp /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list "$private/parts/" 2>/dev/null || true
      uri=${entry%%|*} keyring=${entry#*|}
      echo "deb ${keyring:+[signed-by=$keyring] }${uri%% *} $codename-backports main" > "$private/parts/ksnap-backports.list"
      apt_options=(-o "Dir::Etc::SourceParts=$private/parts" -o "Dir::State::Lists=$private/lists"
        -t "$codename-backports")
      echo "ksnap setup: QEMU $qemu_release is installed (from $codename-backports): installing QEMU of that release" >&2
      apt-get "${apt_options[@]:0:4}" update -q >&2
    fi
  fi
fi

# Install one group of packages with the given apt options, unless apt's plan removes something.
install() {
  local -n options=$1
  shift
  [ $# -gt 0 ] || return 0
  mapfile -t removed < <(apt-get "${options[@]}" install -s -q --no-install-recommends "$@" 2>/dev/null |
    sed -n 's/^Remv \([^ ]*\).*/\1/p')
  if [ ${#removed[@]} -gt 0 ]; then
    {
      echo "ksnap setup: installing $* would remove ${removed[*]}, which this machine has; nothing was"
      echo "installed. Install these in versions that fit the installed ones (apt-get install -s $* shows"
      echo "what apt would remove), then run setup again."
      [[ " $* " != *" qemu-"* ]] || echo "Or give ksnap a QEMU of your own: KSNAP_QEMU=PATH."
    } >&2
    exit 1
  fi
  echo "ksnap setup: installing $*" >&2
  DEBIAN_FRONTEND=noninteractive apt-get "${options[@]}" install -y -q --no-install-recommends "$@" >&2
}
system=()
install system "${others[@]}"
install apt_options "${qemu[@]}"
