#!/usr/bin/env bash
# One-command notebook setup: the evcxr Rust kernel, a Jupyter client, and a shared build
# cache so a notebook's second start does not recompile safs, candle and polars.
#   bash scripts/setup_kernel.sh            # kernel + nbclient (headless runs)
#   bash scripts/setup_kernel.sh --lab      # also JupyterLab, to open the notebooks
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
# Outside the home folder: evcxr's rpath to the toolchain breaks when both are under $HOME.
cache="${EVCXR_TMPDIR:-/var/tmp/safs-evcxr-$(id -un)}"

if ! command -v evcxr_jupyter >/dev/null; then
  echo "installing evcxr_jupyter (about 20 minutes on 2 cores)..."
  env -u CARGO_TARGET_DIR cargo install --locked evcxr_jupyter
fi
rustup component add rust-src >/dev/null 2>&1 || true   # evcxr's type inference
python3 -m pip install -q nbclient nbformat jupyter_client
if [ "${1:-}" = "--lab" ]; then python3 -m pip install -q jupyterlab; fi

evcxr_jupyter --install >/dev/null
# Give the kernel a fixed build folder (one kernel at a time may use it).
spec="$(python3 -c 'import jupyter_client.kernelspec as k; print(k.KernelSpecManager().get_kernel_spec("rust").resource_dir)')"
python3 - "$spec/kernel.json" "$cache" <<'PY'
import json, sys
path, cache = sys.argv[1], sys.argv[2]
spec = json.load(open(path))
spec.setdefault("env", {})["EVCXR_TMPDIR"] = cache
spec["display_name"] = "Rust (evcxr, SAFS cache)"
json.dump(spec, open(path, "w"), indent=2)
PY
mkdir -p "$cache"
echo "kernel 'rust' ready; build cache $cache"
