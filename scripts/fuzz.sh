#!/usr/bin/env bash
# The long fuzz campaign of tests/fuzz.rs: every parser of outside data gets N mutated
# inputs (default 100000) under seed S (default the fixed CI seed), one parser at a time;
# prints, per parser, the inputs tried, how many were accepted and rejected, the largest
# single allocation, the largest input, the slowest parse and the wall time.
#   scripts/fuzz.sh [--inputs N] [--seed S] [--only PARSER] [--threads T]
# A failure prints the seed, the iteration, a hex dump and the replay command, and saves the
# input under $CARGO_TARGET_DIR/tmp/fuzz-failures/. docs/fuzzing.md has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

INPUTS=100000
SEED=""
ONLY=""
THREADS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --inputs) INPUTS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "scripts/fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -w /work ]; then export CARGO_TARGET_DIR=/work/target; fi

export SAFS_FUZZ_INPUTS="$INPUTS"
if [ -n "$SEED" ]; then export SAFS_FUZZ_SEED="$SEED"; fi
if [ -n "$ONLY" ]; then export SAFS_FUZZ_ONLY="$ONLY"; fi
LOG="$(mktemp -t safs-fuzz.XXXXXX)"
CMD="SAFS_FUZZ_INPUTS=$INPUTS${SEED:+ SAFS_FUZZ_SEED=$SEED}${ONLY:+ SAFS_FUZZ_ONLY=$ONLY} cargo test --release --test fuzz -- --nocapture --test-threads=$THREADS"
echo "$CMD"
start=$(date +%s)
status=0
cargo test --release --test fuzz -- --nocapture --test-threads="$THREADS" 2>&1 | tee "$LOG" || status=$?
wall=$(( $(date +%s) - start ))

echo
echo "| parser | inputs | accepted | rejected | largest allocation (bytes) | largest input (bytes) | slowest parse (ms) | wall (s) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
# With --nocapture a stats line may follow libtest's "test NAME ... " on the same line.
{ grep -a -o 'fuzz-stats .*' "$LOG" || true; } | sed 's/^fuzz-stats //' | awk '{
  delete v
  for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", v["parser"], v["inputs"], v["accepted"],
    v["rejected"], v["largest_alloc"], v["largest_input"], v["slowest_ms"], v["wall_s"]
}'
seed_used=$(grep -a -o -m1 'seed=[0-9]*' "$LOG" | cut -d= -f2 || true)
echo
echo "seed ${seed_used:-?}, $wall s in all (build included); full log: $LOG"
if [ "$status" -ne 0 ]; then
  echo "scripts/fuzz.sh: the campaign FAILED (exit $status); see the replay line above" >&2
fi
exit "$status"
