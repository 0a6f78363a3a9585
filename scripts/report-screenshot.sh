#!/usr/bin/env bash
# Render `ksnap report` in a real browser (headless Chromium) and save a screenshot, to look at the page
# as a person would. Usage: scripts/report-screenshot.sh [OUT.png]   (default target/ksnap/report/screenshot.png)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/ksnap/report/screenshot.png}
if ! command -v chromium >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || { echo "install chromium first: apt-get install chromium" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2
fi
page=$(cargo run --quiet --package ksnap -- report)
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# No network at all: the page must be self-contained; these flags keep Chromium from trying to phone home.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
  --window-size=1280,2400 --screenshot="$(realpath -m "$out")" "file://$page" 2>/dev/null
echo "$out"
