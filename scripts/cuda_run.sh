#!/usr/bin/env bash
# Runs the CUDA build of the `safs` CLI on a GPU machine that has no Rust toolchain: the
# stripped, gzipped binary that scripts/build_cuda.sh leaves in target-cuda/safs.gz travels,
# the CUDA 13 libraries come from that machine's Python packages (scripts/cuda_libs.sh).
#   scripts/cuda_run.sh run experiments/lenet5_mnist.toml --budget cpu --device cuda
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${SAFS_CUDA_BIN:-target-cuda/release/safs}"
if [ -f target-cuda/safs.gz ]; then
  bin="$(mktemp -d)/safs"
  gunzip -c target-cuda/safs.gz > "$bin" && chmod +x "$bin"
fi
source scripts/cuda_libs.sh
exec "$bin" "$@"
