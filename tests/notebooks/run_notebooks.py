#!/usr/bin/env python3
"""Execute every notebook through the real evcxr Rust kernel and check its outputs.

evcxr reports a cell that panics or ends in a `?` error as a success, so this runner
fails a notebook on any error or stderr output itself. Each notebook lists the rich
outputs it must produce in its metadata: {"safs": {"expect": ["image/svg+xml", ...]}}.

Usage: run_notebooks.py [--out DIR] [--inplace] [NOTEBOOK ...]
Environment: SAFS_BUDGET (default smoke), EVCXR_TMPDIR (shared build cache).
"""
import argparse
import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def failures(nb):
    """Every output that shows an error, as (cell index, text). Any stderr output counts:
    evcxr prints a cell's `?` error there (and calls the cell a success), and progress
    goes to stdout, so a notebook that works writes nothing to stderr."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append((i, f"{out.ename}: {out.evalue}"))
            elif out.output_type == "stream" and out.name == "stderr":
                found.append((i, out.text.strip()[:2000]))
    return found


def mime_types(nb):
    kinds = set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            kinds.update(out.get("data", {}).keys())
    return kinds


def run(path, out_dir, inplace, timeout):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=os.environ.get("SAFS_KERNEL", "rust"),
        timeout=timeout,
        startup_timeout=timeout,
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.time()
    client.execute()
    seconds = time.time() - start
    target = path if inplace else out_dir / path.name
    nbformat.write(nb, target)
    problems = [f"cell {i}: {t}" for i, t in failures(nb)]
    expect = nb.metadata.get("safs", {}).get("expect", [])
    have = mime_types(nb)
    problems += [f"no {m} output" for m in expect if m not in have]
    return seconds, problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("notebooks", nargs="*", type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "target" / "notebooks")
    ap.add_argument("--inplace", action="store_true", help="write outputs into the notebooks")
    ap.add_argument("--timeout", type=int, default=3600)
    args = ap.parse_args()
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SAFS_BUDGET", "smoke")
    # evcxr runs cargo in its own build folder and loads the result from there.
    os.environ.pop("CARGO_TARGET_DIR", None)
    failed = 0
    for p in paths:
        seconds, problems = run(p.resolve(), args.out, args.inplace, args.timeout)
        status = "ok" if not problems else "FAILED"
        print(f"{p.name}: {status} ({seconds:.0f}s)", flush=True)
        for pr in problems:
            print(f"    {pr}", flush=True)
        failed += bool(problems)
    print(f"{len(paths) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
