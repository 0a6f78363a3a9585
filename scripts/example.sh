#!/usr/bin/env bash
# Use ksnap as a user would, outside this workspace: install it into a temporary root, copy
# examples/jit-patch/ to a temporary directory, build its probe there and `ksnap run` it. Checks the
# facts the two columns must show. Needs what scripts/setup.sh installs (QEMU, gcc).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cargo install --quiet --locked --path harness --root "$scratch/root"
cp -r examples/jit-patch "$scratch/project"
cd "$scratch/project"
gcc -static -O2 -o jit-probe probe.c
COLUMNS=200 "$scratch/root/bin/ksnap" run | tee "$scratch/out"
grep -Eq '^jit\.patch_read_only_code\.write +ok +Input/output error$' "$scratch/out"
grep -Eq '^jit\.patch_read_only_code\.call +returned +-$' "$scratch/out"
echo "example: ok (ksnap installed into a temporary root ran a project of its own)"
