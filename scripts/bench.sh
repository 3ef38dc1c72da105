#!/usr/bin/env bash
# One command for the benchmark harness: a PyTorch venv (CPU use of the PyPI wheel), the
# release build of the safs bench, then benches/compare.py with any extra arguments, e.g.
#   scripts/bench.sh --rounds 3 --stock --out docs/benchmarks.md
# or, with `infer` first, benches/infer_compare.py (sparse inference side by side), e.g.
#   scripts/bench.sh infer --threads 1 2 --out target/infer.md
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
VENV="${SAFS_BENCH_VENV:-$HOME/.cache/safs/bench-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  python3 -m venv "$VENV"
  # PyPI's Linux wheel pulls the CUDA runtime packages too; the benchmark only uses the CPU.
  "$VENV/bin/pip" install --quiet torch
fi
SCRIPT=benches/compare.py
if [ "${1:-}" = infer ]; then
  SCRIPT=benches/infer_compare.py
  shift
fi
exec python3 "$SCRIPT" --torch-python "$VENV/bin/python" "$@"
