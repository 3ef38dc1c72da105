#!/usr/bin/env bash
# Builds the CUDA binaries (`safs` and the `device_check` example) on a machine with no GPU
# and no system CUDA: the CUDA 13.0 toolkit pieces come from PyPI wheels, compiled for
# compute capability 9.0 (H100/H200), whose driver 580 runs CUDA 13.0.
#
#   scripts/build_cuda.sh   # -> target-cuda/release/safs, target-cuda/{device_check,safs}.gz
#
# Knobs: SAFS_CUDA_PREFIX (where the toolkit is unpacked, default ~/.cache/safs/cuda13),
# CUDA_COMPUTE_CAP (default 90), SAFS_CUDA_TARGET (cargo target dir, default target-cuda).
# The CPU-only build and CI never run this; it needs about 20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
prefix="${SAFS_CUDA_PREFIX:-$HOME/.cache/safs/cuda13}"
cuda="$prefix/nvidia/cu13"
# Versions of the CUDA 13.0 release (the H200 driver's CUDA version); curand has its own.
wheels=(
  "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" "nvidia-cuda-runtime==13.0.96"
  "nvidia-cuda-cccl==13.0.85" "nvidia-cuda-nvrtc==13.0.88" "nvidia-cublas==13.0.2.14"
  "nvidia-curand==10.4.5.25" "nvidia-cuda-crt==13.0.88"
)
if [ ! -x "$cuda/bin/nvcc" ]; then
  mkdir -p "$prefix/wheels"
  python3 -m pip download --no-deps --dest "$prefix/wheels" "${wheels[@]}"
  for w in "$prefix"/wheels/*.whl; do python3 -m zipfile -e "$w" "$prefix"; done
  chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/* 2>/dev/null || true
fi

# The linker wants unversioned names; the wheels ship only the sonames.
for lib in cublas cublasLt nvrtc curand cudart; do
  so="$(ls "$cuda"/lib/lib$lib.so.* 2>/dev/null | head -1)"
  [ -n "$so" ] && ln -sf "$(basename "$so")" "$cuda/lib/lib$lib.so"
done
# libcuda.so is the driver's and ships with no wheel: link against a stub with its soname,
# one empty function per driver symbol cudarc declares; the real library loads at run time.
# On a fresh machine the registry is empty until cargo fetches the locked crates.
cargo fetch --locked
cudarc_version="$(grep -A1 '^name = "cudarc"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
cudarc="$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-"$cudarc_version" | head -1)"
if [ ! -f "$cuda/lib/stubs/libcuda.so" ]; then
  mkdir -p "$cuda/lib/stubs"
  grep -o 'pub unsafe fn cu[A-Za-z0-9_]*' "$cudarc/src/driver/sys/mod.rs" | sed 's/pub unsafe fn //' | sort -u \
    | awk '{ print "void " $1 "(void) {}" }' > "$cuda/lib/stubs/cuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cuda/lib/stubs/libcuda.so" "$cuda/lib/stubs/cuda_stub.c"
fi

export CUDA_ROOT="$cuda" CUDA_PATH="$cuda" PATH="$cuda/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export LIBRARY_PATH="$cuda/lib:$cuda/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$cuda/lib -L native=$cuda/lib/stubs"
export CARGO_TARGET_DIR="${SAFS_CUDA_TARGET:-$PWD/target-cuda}"
nvcc --version | tail -2
cargo build --release --locked -p safs --features cuda --bin safs --example device_check
# What travels to the GPU machine (64 MiB limit): the stripped, gzipped device check
# (about 19 MB; the embedded PTX kernels make it 77 MB unpacked).
# The CLI likewise, for scripts/cuda_run.sh.
for bin in release/examples/device_check release/safs; do
  strip -o "$CARGO_TARGET_DIR/$(basename "$bin")" "$CARGO_TARGET_DIR/$bin"
  gzip -9 -f "$CARGO_TARGET_DIR/$(basename "$bin")"
done
ls -la "$CARGO_TARGET_DIR/release/safs" "$CARGO_TARGET_DIR/device_check.gz" "$CARGO_TARGET_DIR/safs.gz"
