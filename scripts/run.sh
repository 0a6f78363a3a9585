#!/usr/bin/env bash
# Quick start, part 1: install what is missing, then run every suite on the default kernels and print
# the results. Arguments go to `ksnap run` (e.g. --kernel 6.12 --suite env).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Not --quiet: the first build takes minutes, and cargo's own progress says what it is doing.
echo "scripts/run.sh: building ksnap (cargo build --release: about 2 minutes the first time)" >&2
exec cargo run --release --package ksnap -- run "$@"
