#!/usr/bin/env bash
# Runs on the GPU machine (no Rust there): the CUDA device check built by
# scripts/build_cuda.sh, with the CUDA 13 libraries of that machine's Python packages
# (cuBLAS, cuRAND, NVRTC wheels) and its driver's libcuda. Writes its output to $OUT
# (or ./device-check-out) as device_check.txt, with nvidia-smi's view of the GPU.
#   scripts/device_check.sh [target dir, default target-cuda]
set -uo pipefail
cd "$(dirname "$0")/.."
target="${1:-target-cuda}"
out="${OUT:-$PWD/device-check-out}"
mkdir -p "$out"
bin="$target/release/examples/device_check"
if [ -f "$target/device_check.gz" ]; then   # what scripts/build_cuda.sh packs for the trip
  bin="$(mktemp -d)/device_check"
  gunzip -c "$target/device_check.gz" > "$bin" && chmod +x "$bin"
fi
source scripts/cuda_libs.sh
{
  date -u +"%Y-%m-%d %H:%M:%S UTC"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  timeout 540 "$bin" cuda
  echo "exit status: $?"
} 2>&1 | tee "$out/device_check.txt"
