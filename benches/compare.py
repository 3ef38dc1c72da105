"""Runs the benchmark rows of safs (Rust) and PyTorch interleaved and prints one table.

    python3 benches/compare.py [--rounds 3] [--reps 5] [--threads 2] [--rows REGEX]
                               [--stock] [--torch-python PATH] [--out docs/benchmarks.md]

Each round runs every row once per implementation, alternating which goes first; a run is
one process (so its peak RSS is that row's), timing `reps` repetitions after a warm-up. The
table gives the median over all repetitions of all rounds, and `speed vs torch` =
torch ms / safs ms (above 1: safs is faster). With --stock, Candle's stock ops run too
(`SAFS_KERNELS=stock`). `infer/*/sparse99` rows compare with the same model's dense run.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", default=".", help="regex selecting rows")
    ap.add_argument("--stock", action="store_true", help="also time Candle's stock ops")
    ap.add_argument("--torch-python", default=os.path.expanduser("~/.cache/safs/bench-venv/bin/python"))
    ap.add_argument("--bench-bin", default=None, help="prebuilt safs bench binary")
    ap.add_argument("--out", default=None, help="also write the table as markdown here")
    a = ap.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = a.bench_bin or os.path.join(target, "release", "examples", "bench")
    if not a.bench_bin:
        subprocess.run(["cargo", "build", "--release", "-p", "safs", "--example", "bench"], cwd=ROOT, check=True)
    torch_ok = os.path.exists(a.torch_python)
    if not torch_ok:
        print(f"no PyTorch interpreter at {a.torch_python}: safs rows only (scripts/bench.sh sets one up)",
              file=sys.stderr)

    rows = [r for r in subprocess.run([binary, "--list"], capture_output=True, text=True, check=True)
            .stdout.split() if re.search(a.rows, r)]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    impls = [("safs", [binary], dict(env, SAFS_KERNELS="custom"))]
    if a.stock:
        impls.append(("stock", [binary], dict(env, SAFS_KERNELS="stock")))
    if torch_ok:
        impls.append(("torch", [a.torch_python, "benches/torch_bench.py", "--threads", str(a.threads)], env))

    results = {}
    for rnd in range(a.rounds):
        for row in rows:
            order = impls if rnd % 2 == 0 else impls[::-1]
            for name, cmd, e in order:
                if name != "safs" and row.endswith("/sparse99"):
                    continue
                r = run(cmd + [row, "--reps", str(a.reps)], e)
                acc = results.setdefault((row, name), {"times": [], "rss": [], "params": r["params"], "impl": r["impl"]})
                acc["times"] += r["times_ms"]
                acc["rss"].append(r["peak_rss_mib"] or 0.0)
                print(f"round {rnd + 1} {row:<28} {name:<6} {r['median_ms']:10.2f} ms", file=sys.stderr)

    def med(row, name):
        acc = results.get((row, name))
        return statistics.median(acc["times"]) if acc else None

    head = ["row", "safs ms", "safs img/s", "safs peak MiB"]
    if a.stock:
        head += ["stock ms", "custom vs stock"]
    if torch_ok:
        head += ["torch ms", "torch img/s", "torch peak MiB", "speed vs torch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for row in rows:
        s = med(row, "safs")
        batch = 256 if "lenet5" in row else 64  # as in bench.rs and torch_bench.py
        cells = [row, f"{s:.1f}", f"{batch / s * 1e3:.0f}", f"{max(results[(row, 'safs')]['rss']):.0f}"]
        if a.stock:
            st = med(row, "stock")
            cells += [f"{st:.1f}" if st else "", f"{st / s:.2f}x" if st else ""]
        if torch_ok:
            t = med(row, "torch")
            if row.endswith("/sparse99"):
                dense = med(row.replace("/sparse99", "/dense"), "safs")
                cells += ["", "", "", f"{dense / s:.1f}x vs safs dense" if dense else ""]
            else:
                acc = results[(row, "torch")]
                cells += [f"{t:.1f}", f"{batch / t * 1e3:.0f}", f"{max(acc['rss']):.0f}", f"{t / s:.2f}x"]
                ps, pt = results[(row, "safs")]["params"], acc["params"]
                if ps != pt:
                    notes.append(f"parameter counts differ on {row}: safs {ps}, torch {pt}")
        lines.append("| " + " | ".join(cells) + " |")
    torch_impl = results.get((rows[0], "torch"), {}).get("impl", "no torch") if rows else ""
    header = [
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        f"{a.threads} thread(s) each, {a.rounds} interleaved rounds x {a.reps} repetitions after a warm-up; "
        f"medians. f32. PyTorch: {torch_impl}.",
        "",
    ]
    text = "\n".join(header + lines + [""] + [f"- {n}" for n in notes])
    print(text)
    if a.out:
        with open(os.path.join(ROOT, a.out) if not os.path.isabs(a.out) else a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
