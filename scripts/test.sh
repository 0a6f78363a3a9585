#!/usr/bin/env bash
# Quick start, part 2 (and what CI runs): install what is missing, then run every test, including the
# ones that boot the default kernels under QEMU. Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo test --workspace "$@"
