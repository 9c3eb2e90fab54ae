"""Rerun the measured runs quoted in the README (issue: core pipeline).

Runs the CLI as a user would, one command after another, and writes
``docs/results/core/<name>/report.json`` plus ``docs/results/core-runs.md`` with the
machine, the date and each command.

Usage (from the project root, after ``make test`` or ``make demo`` created .venv)::

    .venv/bin/python benchmarks/core/core_runs.py               # demo + LeNet-300-100 runs
    .venv/bin/python benchmarks/core/core_runs.py --only demo   # one of them
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import MNIST, RESULTS, ROOT, machine

OUT = RESULTS / "core"
RUNS = {
    "demo": ["demo"],
    "lenet-300-100-group-nj": [
        "compress", "--model", "lenet-300-100", "--prior", "group-nj", "--dataset", "mnist",
        "--data-dir", str(MNIST), "--epochs", "10", "--tol", "off",
    ],
    "lenet-300-100-group-horseshoe": [
        "compress", "--model", "lenet-300-100", "--prior", "group-horseshoe", "--dataset",
        "mnist", "--data-dir", str(MNIST), "--epochs", "10", "--tol", "off",
    ],
}  # fmt: skip


def row(name: str, r: dict, command: str, wall: float) -> str:
    arch = lambda a: "-".join(map(str, a))  # noqa: E731
    return (
        f"| {name} | {arch(r['architecture_before'])} → {arch(r['architecture_after'])} "
        f"| {r['params_before']:,} → {r['params_after']:,} "
        f"| {r['compression_rate_params']:.1f}× | {r['compression_rate_bits']:.1f}× "
        f"| {r['flops_before']:,} → {r['flops_after']:,} "
        f"| {100 * r['test_error_bayes']:.2f} % | {100 * r['test_error_compact']:.2f} % "
        f"| {wall:.0f} s |"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=list(RUNS), action="append")
    args = p.parse_args()
    names = args.only or list(RUNS)
    OUT.mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).with_name("pyrocompress"))
    results_file = OUT / "runs.json"
    runs = json.loads(results_file.read_text()) if results_file.exists() else {}
    for name in names:
        out = OUT / name
        cmd = [exe, *RUNS[name], "--out", str(out), "--quiet"]
        shown = "pyrocompress " + " ".join(
            shlex.quote(a if a != str(MNIST) else "../shared/data/mnist") for a in RUNS[name]
        )
        print(f"running: {shown}", flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        wall = time.perf_counter() - start
        report = json.loads((out / "report.json").read_text())
        runs[name] = {
            "command": shown,
            "date": dt.date.today().isoformat(),
            "machine": machine(),
            "wall_seconds": wall,
            "report": {k: v for k, v in report.items() if k != "history"},
        }
        results_file.write_text(json.dumps(runs, indent=2) + "\n")
    lines = [
        "# Measured runs of the core pipeline",
        "",
        "Written by `benchmarks/core/core_runs.py`; rerun it to reproduce. Each row: one CLI "
        "command (below), the automatic pruning rule (tolerance 1 point of validation "
        "error), test errors on the held-out test split.",
        "",
        "| run | architecture | parameters | compression (params) | compression (bits) "
        "| FLOPs | test error, posterior mean | test error, compact | wall time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        lines.append(row(name, run["report"], run["command"], run["wall_seconds"]))
    lines += ["", "| run | command | date | machine |", "|---|---|---|---|"]
    for name, run in runs.items():
        lines.append(f"| {name} | `{run['command']}` | {run['date']} | {run['machine']} |")
    (RESULTS / "core-runs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
