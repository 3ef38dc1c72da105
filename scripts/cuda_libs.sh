# Sourced by the scripts that run on a GPU machine without Rust: puts the CUDA 13 libraries of
# that machine's Python packages (cuBLAS, cuRAND, NVRTC wheels) on LD_LIBRARY_PATH; the
# driver's libcuda comes from the system.
safs_cuda_libs="$(python3 - <<'PY'
import glob, os, site
dirs = set()
for root in site.getsitepackages() + [site.getusersitepackages()]:
    for pattern in ("nvidia/cu13/lib", "nvidia/*/lib"):
        dirs.update(d for d in glob.glob(os.path.join(root, pattern)) if os.path.isdir(d))
print(":".join(sorted(dirs)))
PY
)"
export LD_LIBRARY_PATH="$safs_cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
