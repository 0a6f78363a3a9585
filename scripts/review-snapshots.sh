#!/usr/bin/env bash
# Review pending snapshot changes (snapshots/*.snap.new, written by `cargo test` outside CI): a line diff of
# each against the committed snapshot, then accept or reject them all.
#   scripts/review-snapshots.sh            show the diffs
#   scripts/review-snapshots.sh --accept   replace each .snap with its .snap.new
#   scripts/review-snapshots.sh --reject   delete the .snap.new files
# Why not `cargo insta review`: cargo-insta looks for pending snapshots only inside package directories
# and their targets' source directories, and ksnap keeps its snapshots at the workspace root.
set -euo pipefail
cd "$(dirname "$0")/../snapshots"
shopt -s nullglob
pending=(*.snap.new)
if [ ${#pending[@]} -eq 0 ]; then
  echo "no pending snapshots"
  exit 0
fi
for new in "${pending[@]}"; do
  old=${new%.new}
  case "${1:-}" in
    # insta records the assertion's line in pending snapshots only; cargo-insta drops it on accept too.
    --accept) grep -v '^assertion_line: ' "$new" > "$old"; rm "$new"; echo "accepted $old" ;;
    --reject) rm "$new"; echo "rejected $new" ;;
    *)
      # Compare the bodies (after the second `---`); the headers carry the environment, not the claims.
      body() { [ -f "$1" ] && awk 'n >= 2; /^---$/ { n++ }' "$1" || true; }
      diff -u --label "$old (committed)" --label "$new (this run)" <(body "$old") <(body "$new") || true
      ;;
  esac
done
