#!/usr/bin/env bash
# The long chaos campaign: every scenario of tests/chaos.rs with N kills each (SIGKILL at
# random moments of a smoke-budget LeNet-5 / MNIST run, full fidelity and successive halving
# on two workers, resumed after each kill and compared with an uninterrupted run; and kills
# during checkpoint saves, log appends and report writes). CI runs the same test with 20.
#
#   bash scripts/chaos.sh [--kills N] [--seed S]     (defaults: 200 kills, seed 14)
#
# Prints one figure line per scenario ("chaos ...: N kills, ..."); any lost or changed
# evaluation, torn file or different result fails it. Needs real MNIST (safs data fetch).
set -euo pipefail
cd "$(dirname "$0")/.."
kills=200
seed=14
while [ $# -gt 0 ]; do
    case "$1" in
        --kills) kills="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        *) echo "usage: $0 [--kills N] [--seed S]" >&2; exit 2 ;;
    esac
done
case "$kills$seed" in *[!0-9]*) echo "chaos: --kills and --seed take whole numbers" >&2; exit 2 ;; esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
log=$(mktemp /tmp/safs-chaos.XXXXXX.log)
start=$(date +%s)
set +e
SAFS_CHAOS_KILLS="$kills" SAFS_CHAOS_SEED="$seed" \
    cargo test --release --test chaos -- --nocapture --test-threads=1 2>&1 \
    | tee "$log" | grep --line-buffered -E '^chaos |^test |panicked'
status=${PIPESTATUS[0]}
set -e
echo "chaos: $kills kills per scenario, seed $seed, $(( $(date +%s) - start )) s in all (log: $log)"
exit "$status"
