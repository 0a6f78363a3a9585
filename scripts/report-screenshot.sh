#!/usr/bin/env bash
# Render `ksnap report` in a real browser (headless Chromium) at 1280 and 1920 px and save screenshots of
# the top of the page, to look at it as a person would (the README shows them).
# Usage: scripts/report-screenshot.sh [DIR]   (default docs/: report-1280.png, report-1920.png)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-docs}
if ! command -v chromium >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "install chromium first: apt-get install chromium" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2
fi
page=$(cargo run --quiet --package ksnap -- report)
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$dir"
for width in 1280 1920; do
  out=$(realpath -m "$dir/report-$width.png")
  # No network at all: the page must be self-contained; these flags keep Chromium from trying to phone home.
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
    --window-size="$width,2000" --screenshot="$out" "file://$page" 2>/dev/null
  echo "$out"
done
