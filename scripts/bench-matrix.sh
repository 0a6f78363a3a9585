#!/usr/bin/env bash
# Boot once per machine, restore per cell: what it saves, measured side by side in one run. For each kernel
# (default: every kernel of the default matrix), `ksnap run --kernel KERNEL` is timed four ways, ROUNDS
# times each, the four alternating:
#   booted   serial    --boot-every-cell --jobs 1
#   restored serial    --jobs 1           (from the machines the warm-up run saved)
#   booted   parallel  --boot-every-cell --jobs 2
#   restored parallel  --jobs 2
# It prints each kernel's medians, their sums (the matrix), the ratios restored / booted, the medians of
# the time from QEMU's start to init getting its plan (a boot, or a restore), each suite's cell time summed
# over the serial runs, and the floor: what the booted serial runs took less the time their cells spent
# booting, over what they took — the ratio restoring could reach if a restore took no time at all.
# Usage: scripts/bench-matrix.sh [-r ROUNDS] [-k LOGDIR] [KERNEL...] [-- MORE ksnap run ARGUMENTS, e.g. --suite env]
#   -k LOGDIR  keep every run's log in LOGDIR (default: a temporary directory, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=1
keep=
kernels=()
while [ $# -gt 0 ]; do
  case $1 in
    -r) rounds=$2; shift 2 ;;
    -k) keep=$2; shift 2 ;;
    --) shift; break ;;
    *) kernels+=("$1"); shift ;;
  esac
done
extra=("$@")

scripts/setup.sh
cargo build --quiet --release --package ksnap
ksnap=target/release/ksnap
$ksnap kernels --fetch >/dev/null
if [ ${#kernels[@]} -eq 0 ]; then
  # Every kernel of ksnap.toml but those with `default = false`.
  mapfile -t kernels < <(awk '
    /^\[kernels\./ { if (name != "" && !off) print name; name = $0; sub(/^\[kernels\."?/, "", name); sub(/"?\]$/, "", name); off = 0; next }
    /^\[/ { if (name != "" && !off) print name; name = ""; next }
    name != "" && /^default *= *false/ { off = 1 }
    END { if (name != "" && !off) print name }' ksnap.toml)
fi
if [ -n "$keep" ]; then
  mkdir -p "$keep"
  work=$(cd "$keep" && pwd)
  # An earlier run's files would be counted with this one's.
  rm -f "$work"/*.times "$work"/*.ready "$work"/*.log
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
# seconds LOG ARGS...: run `ksnap run ARGS` (output to LOG) and print its wall time.
seconds() {
  local log=$1 start; shift
  start=$(date +%s%N)
  $ksnap run "$@" "${extra[@]}" --accel tcg > "$log" 2>&1 || true
  echo "scale=3; ($(date +%s%N) - $start) / 1000000000" | bc
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# ready LOG: the "init ready after Ns" of every booted cell in LOG (restored ones: ready LOG restored), one per line.
ready() { grep -o "${2:-}, init ready after [0-9.]*s" "$1" | grep -o '[0-9.]*s$' | tr -d s || true; }
# cells LOG...: "SUITE SECONDS" for every cell that completed in the LOGs (KERNEL::VARIANT::SUITE: completed …
# in 1.2s…).
cells() { sed -n 's/^[^ ]*::\([^ :]*\): completed ([0-9]* probes) in \([0-9.]*\)s.*/\1 \2/p' "$@"; }
sum() { awk '{ s += $1 } END { printf "%.1f", s }'; }
modes=(booted-serial restored-serial booted-parallel restored-parallel)
args_of() {
  case $1 in
    booted-serial) echo "--boot-every-cell --jobs 1" ;;
    restored-serial) echo "--jobs 1" ;;
    booted-parallel) echo "--boot-every-cell --jobs 2" ;;
    restored-parallel) echo "--jobs 2" ;;
  esac
}
for kernel in "${kernels[@]}"; do
  # Warm-up: probes built, kernel fetched, every machine of the kernel saved.
  seconds "$work/warm.log" --kernel "$kernel" --jobs 2 >/dev/null
  for round in $(seq "$rounds"); do
    for mode in "${modes[@]}"; do
      # shellcheck disable=SC2046
      seconds "$work/$kernel.$mode.$round.log" --kernel "$kernel" $(args_of "$mode") >> "$work/$kernel.$mode.times"
      case $mode in
        booted-serial) ready "$work/$kernel.$mode.$round.log" >> "$work/$kernel.boot.ready" ;;
        restored-serial) ready "$work/$kernel.$mode.$round.log" restored >> "$work/$kernel.restore.ready" ;;
      esac
    done
  done
done

printf '%s, TCG, %s round(s), medians in seconds%s\n' "$($ksnap --version 2>/dev/null || echo ksnap)" "$rounds" \
  "${extra:+ (ksnap run ${extra[*]})}"
printf '%-14s %9s %9s %6s   %9s %9s %6s\n' KERNEL booted restored ratio booted restored ratio
printf '%-14s %9s %9s %6s   %9s %9s %6s\n' "" serial serial "" parallel parallel ""
declare -A total
for kernel in "${kernels[@]}"; do
  row=()
  for mode in "${modes[@]}"; do
    m=$(median < "$work/$kernel.$mode.times")
    row+=("$m")
    total[$mode]=$(echo "${total[$mode]:-0} + $m" | bc)
  done
  printf '%-14s %9s %9s %6s   %9s %9s %6s\n' "$kernel" "${row[0]}" "${row[1]}" \
    "$(echo "scale=2; ${row[1]} / ${row[0]}" | bc)" "${row[2]}" "${row[3]}" "$(echo "scale=2; ${row[3]} / ${row[2]}" | bc)"
done
printf '%-14s %9s %9s %6s   %9s %9s %6s\n' "matrix" "${total[booted-serial]}" "${total[restored-serial]}" \
  "$(echo "scale=2; ${total[restored-serial]} / ${total[booted-serial]}" | bc)" \
  "${total[booted-parallel]}" "${total[restored-parallel]}" \
  "$(echo "scale=2; ${total[restored-parallel]} / ${total[booted-parallel]}" | bc)"
echo
echo "QEMU start to init's plan, median over the cells of the serial runs (booted cells; restored cells):"
printf '%-14s %9s %9s %6s\n' KERNEL boot restore ratio
for kernel in "${kernels[@]}"; do
  boot=$(median < "$work/$kernel.boot.ready")
  restore=$(median < "$work/$kernel.restore.ready")
  printf '%-14s %9s %9s %6s\n' "$kernel" "$boot" "$restore" "$(echo "scale=2; $restore / $boot" | bc 2>/dev/null || echo -)"
done
echo
echo "Cell time per suite, summed over every kernel's serial runs (all rounds):"
printf '%-18s %9s %9s %6s\n' SUITE booted restored ratio
cells "$work"/*.booted-serial.*.log | awk '{ print $1 }' | sort -u | while read -r suite; do
  booted=$(cells "$work"/*.booted-serial.*.log | awk -v s="$suite" '$1 == s { print $2 }' | sum)
  restored=$(cells "$work"/*.restored-serial.*.log | awk -v s="$suite" '$1 == s { print $2 }' | sum)
  printf '%-18s %9s %9s %6s\n' "$suite" "$booted" "$restored" "$(echo "scale=2; $restored / $booted" | bc 2>/dev/null || echo -)"
done
echo
echo "The floor: booted serial wall time less its cells' time to init's plan, over that wall time"
printf '%-14s %9s %9s %6s\n' KERNEL wall booting floor
walls=0 boots=0
for kernel in "${kernels[@]}"; do
  wall=$(sum < "$work/$kernel.booted-serial.times")
  booting=$(sum < "$work/$kernel.boot.ready")
  walls=$(echo "$walls + $wall" | bc) boots=$(echo "$boots + $booting" | bc)
  printf '%-14s %9s %9s %6s\n' "$kernel" "$wall" "$booting" "$(echo "scale=2; ($wall - $booting) / $wall" | bc)"
done
printf '%-14s %9s %9s %6s\n' matrix "$walls" "$boots" "$(echo "scale=2; ($walls - $boots) / $walls" | bc)"
