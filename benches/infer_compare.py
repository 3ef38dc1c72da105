"""Sparse inference side by side: the safs graph, the safs dense path, PyTorch dense and
PyTorch with torch.sparse CSR weights, for every model, pruning rate and batch size.

    python3 benches/infer_compare.py [--rounds 1] [--reps 10] [--threads 1 2]
                                     [--models REGEX] [--bench-bin PATH] [--out FILE]

Rows come from `bench --list-infer` (`infer/<model>/<impl>/<rate>/b<batch>`); each run is
one process (so its peak RSS is that configuration's), timing `reps` forwards after a
warm-up; the four implementations of a configuration run back to back, their order
alternating from round to round. The table gives medians over all repetitions.
"""

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import ROOT, machine, run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--models", default=".", help="regex selecting models")
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
        print(f"no PyTorch interpreter at {a.torch_python}: safs columns only", file=sys.stderr)

    rows = subprocess.run([binary, "--list-infer"], capture_output=True, text=True, check=True).stdout.split()
    configs = []  # (model, rate, batch) in bench.rs's order
    for r in rows:
        _, model, _, rate, b = r.split("/")
        if re.search(a.models, model) and (model, rate, b) not in configs:
            configs.append((model, rate, b))

    results = {}
    for threads in a.threads:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        impls = [("graph", [binary], "graph"), ("dense", [binary], "dense")]
        if torch_ok:
            torch_cmd = [a.torch_python, "benches/torch_bench.py", "--threads", str(threads)]
            impls += [("torch", torch_cmd, "dense"), ("torch csr", torch_cmd, "csr")]
        for rnd in range(a.rounds):
            for model, rate, b in configs:
                for name, cmd, imp in (impls if rnd % 2 == 0 else impls[::-1]):
                    row = f"infer/{model}/{imp}/{rate}/{b}"
                    r = run(cmd + [row, "--reps", str(a.reps)], env)
                    acc = results.setdefault((threads, model, rate, b, name), {"times": [], "rss": []})
                    acc["times"] += r["times_ms"]
                    acc["rss"].append(r["peak_rss_mib"] or 0.0)
                    print(f"{threads}t round {rnd + 1} {row:<34} {name:<9} {r['median_ms']:9.2f} ms", file=sys.stderr)

    def med(key):
        acc = results.get(key)
        return statistics.median(acc["times"]) if acc else None

    def peak(key):
        acc = results.get(key)
        return max(acc["rss"]) if acc else None

    head = ["model", "pruned", "batch", "threads", "graph ms", "dense ms", "torch ms", "torch csr ms",
            "graph vs dense", "graph vs torch", "graph vs torch csr", "peak MiB graph / dense / torch / csr"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda v: f"{v:.2f}" if v is not None and v < 10 else (f"{v:.1f}" if v is not None else "")
    ratio = lambda num, den: f"{num / den:.1f}x" if num and den else ""
    for model, rate, b in configs:
        for threads in a.threads:
            k = lambda name: (threads, model, rate, b, name)
            g, d, t, c = med(k("graph")), med(k("dense")), med(k("torch")), med(k("torch csr"))
            mem = " / ".join(f"{peak(k(n)):.0f}" if peak(k(n)) else "-" for n in ("graph", "dense", "torch", "torch csr"))
            lines.append("| " + " | ".join([model, f"{rate}%", b.lstrip("b"), str(threads), fmt(g), fmt(d), fmt(t), fmt(c),
                                            ratio(d, g), ratio(t, g), ratio(c, g), mem]) + " |")
    header = [
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        f"{a.rounds} round(s) x {a.reps} repetitions after a warm-up per process; medians; f32.",
        "",
    ]
    text = "\n".join(header + lines)
    print(text)
    if a.out:
        with open(a.out if os.path.isabs(a.out) else os.path.join(ROOT, a.out), "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
