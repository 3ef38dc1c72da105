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
libs="$(python3 - <<'PY'
import glob, os, site
dirs = set()
for root in site.getsitepackages() + [site.getusersitepackages()]:
    for pattern in ("nvidia/cu13/lib", "nvidia/*/lib"):
        dirs.update(d for d in glob.glob(os.path.join(root, pattern)) if os.path.isdir(d))
print(":".join(sorted(dirs)))
PY
)"
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  date -u +"%Y-%m-%d %H:%M:%S UTC"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  timeout 540 "$bin" cuda
  echo "exit status: $?"
} 2>&1 | tee "$out/device_check.txt"
