#!/usr/bin/env bash
# Quick start, part 1: install what is missing, then run every suite on the default kernels and print
# the results. Arguments go to `ksnap run` (e.g. --kernel 6.12 --suite env).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --quiet --release --package ksnap -- run "$@"
