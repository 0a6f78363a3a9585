#!/usr/bin/env bash
# Use ksnap as a user would, outside this workspace: install it into a temporary root; copy
# examples/jit-patch/ to a temporary directory, build its probe, `ksnap run` it and `cargo test` it (its
# snapshots written, then matched); and start a project with `ksnap init`, run and test it the same way.
# Needs what scripts/setup.sh installs (QEMU, gcc).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cargo install --quiet --locked --path harness --root "$scratch/root"
ksnap=$scratch/root/bin/ksnap
# Both projects' `cargo test` build ksnap as a dependency: once, in one target directory.
export CARGO_TARGET_DIR=$scratch/target

# cargo test in a project: snapshots written (new), then a second run under CI=true must match them.
test_project() {
  env -u CI INSTA_UPDATE=always cargo test --quiet --test ksnap
  CI=true cargo test --quiet --test ksnap
  ls snapshots/*.snap >/dev/null
}

echo "example: jit-patch (a prebuilt probe)"
cp -r examples/jit-patch "$scratch/jit-patch"
cd "$scratch/jit-patch"
# A user's Cargo.toml names ksnap's git repository; CI has no network but the registries, so the
# dependency points at this checkout instead.
sed -i "s|ksnap = { git = \"https://github.com/ksnap/ksnap\" }|ksnap = { path = \"$repo/harness\" }|" Cargo.toml
grep -q "path = \"$repo/harness\"" Cargo.toml
gcc -static -O2 -o jit-probe probe.c
COLUMNS=200 "$ksnap" run | tee "$scratch/out"
grep -qx 'jit.patch_read_only_code.write: ok; force-never: Input/output error' "$scratch/out"
grep -qx 'jit.patch_read_only_code.call: returned; force-never: -' "$scratch/out"
test_project
grep -qx 'jit.patch_read_only_code.write = Input/output error' snapshots/jit@6.12+force-never.snap

echo "example: ksnap init (a Rust probe of the project's own crate)"
"$ksnap" init "$scratch/fresh" --name fresh --ksnap-path "$repo"
cd "$scratch/fresh"
# What its author runs once, before committing: pin the kernels (under CI the lock may not change).
env -u CI "$ksnap" lock
COLUMNS=200 "$ksnap" run --kernel 6.12 | tee "$scratch/out"
grep -qx 'fresh.punch_through.write: ok; force-never: EIO' "$scratch/out"
grep -qx '  no snapshot yet: fresh@6.12, fresh@6.12+force-never' "$scratch/out"
test_project
grep -qx 'fresh.punch_through.write = ok' snapshots/fresh@6.12.snap
grep -qx 'fresh.punch_through.write = EIO' snapshots/fresh@6.12+force-never.snap
# Run again: now `ksnap run` answers against the snapshots cargo test recorded.
COLUMNS=200 "$ksnap" run --kernel 6.12 | tee "$scratch/out"
grep -qx 'snapshots: all 2 cells match snapshots/' "$scratch/out"
echo "example: ok (an installed ksnap ran, and cargo test snapshotted, two projects of their own)"
