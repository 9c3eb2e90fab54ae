"""Steps per second of ``fit`` on a small data set in full batches: the per-epoch overhead.

Issue 22, item 8. With 442 rows in one full batch an epoch is one optimisation step, so
whatever :func:`pyrocompress.fit` does once per epoch (the minibatch permutation, the
loss read from the device, the progress bar, switching the network to training mode) is
paid once per step. This script times the training loop of the current
``pyrocompress/infer/training.py`` ("after") and of the same file at an earlier commit
("before", ``--before``, loaded from ``git show`` as a module beside the current package,
so that everything else is the same code), side by side in one process, alternating which
goes first.

The network is the feature selector's default: an MLP 60-50-20-1 with the spike-and-slab
prior and a Gaussian likelihood, on scikit-learn's diabetes data (442 rows, 10 features)
with 50 N(0, 1) noise columns, standardised; Adam at lr 0.03, full batch. A run's
marginal time per step is ``(min T(E2) - min T(E1)) / (E2 - E1)`` over ``--repeats``
runs of E1 and of E2 epochs, which cancels the fixed costs of a call (setup, the Fisher
information at the end) and, through the fastest run, most of the disturbance of other
work on a shared machine; it is reported with and without the
progress bar (to a non-terminal stream, as in a log file), with one torch thread (the
selector's setting for full batches).

Two more tables back the selector's default budget: the time per step of the current
code with one and with two intra-op threads, and the time of one full-batch step by the
number of rows (synthetic N(0, 1) data with 60 columns), which is why full batches are
used up to 2048 rows.

Writes ``docs/results/small-data.json`` and ``.md`` (nothing with ``--quick``).

Usage (from the project root)::

    .venv/bin/python benchmarks/speed/small_data.py
    .venv/bin/python benchmarks/speed/small_data.py --quick
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import numpy as np
import torch
from sklearn.datasets import load_diabetes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import ROOT, provenance, write_results  # noqa: E402

import pyrocompress as pc  # noqa: E402
from pyrocompress.infer import training as after  # noqa: E402

#: the commit whose training.py is "before": the last one before the per-epoch changes
BEFORE = "2777957"


def load_before(commit: str):
    """Import ``pyrocompress/infer/training.py`` of ``commit`` as a separate module."""
    source = subprocess.run(
        ["git", "show", f"{commit}:pyrocompress/infer/training.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    folder = Path(tempfile.mkdtemp())
    path = folder / "_training_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("pyrocompress.infer._training_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def diabetes_noise(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised diabetes + 50 N(0, 1) columns."""
    X, y = cast(tuple[np.ndarray, np.ndarray], load_diabetes(return_X_y=True))
    rng = np.random.default_rng(seed)
    X = np.hstack([X, rng.normal(size=(len(X), 50))])
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def network(p: int):
    return pc.bayesianize(
        pc.mlp([p, 50, 20, 1]),
        "spike-slab",
        likelihood=pc.distributions.GaussianLikelihood(),
        seed=0,
    )


def timed_fit(module, data, epochs: int, progress: bool) -> float:
    """Seconds of one ``module.fit`` call in full batches (the progress bar to a buffer)."""
    bnn = network(data[0].shape[1])
    sink = io.StringIO()
    with contextlib.redirect_stderr(sink):  # tqdm writes to sys.stderr: not a terminal
        start = time.perf_counter()
        module.fit(
            bnn, data, epochs=epochs, batch_size=len(data[0]), lr=0.03, seed=0, progress=progress
        )
        return time.perf_counter() - start


def per_step(runs: dict[int, list[float]]) -> float:
    """Marginal seconds per step from the fastest run of each length.

    ``(min T(e2) - min T(e1)) / (e2 - e1)``: on a shared machine a run is only ever slowed
    by other work, so the fastest of several repetitions is the least disturbed one.
    """
    (e1, t1), (e2, t2) = sorted(runs.items())
    return (min(t2) - min(t1)) / (e2 - e1)


def timings(module, data, e1: int, e2: int, repeats: int, progress: bool = False) -> float:
    """:func:`per_step` of ``module`` from ``repeats`` runs of each length."""
    runs = {e: [timed_fit(module, data, e, progress) for _ in range(repeats)] for e in (e1, e2)}
    return per_step(runs)


def overhead_table(before, data, e1: int, e2: int, repeats: int) -> list[dict]:
    """Before and after, with and without the progress bar, interleaved run by run."""
    rows = []
    for progress in (False, True):
        runs: dict[str, dict[int, list[float]]] = {
            "before": {e1: [], e2: []},
            "after": {e1: [], e2: []},
        }
        for r in range(repeats):
            order = [("before", before), ("after", after)]
            for e in (e1, e2):
                for name, module in order if r % 2 == 0 else order[::-1]:
                    runs[name][e].append(timed_fit(module, data, e, progress))
        b, a = per_step(runs["before"]), per_step(runs["after"])
        rows.append(
            {
                "progress": progress,
                "before_ms_per_step": round(1e3 * b, 3),
                "after_ms_per_step": round(1e3 * a, 3),
                "before_steps_per_s": round(1 / b, 1),
                "after_steps_per_s": round(1 / a, 1),
                "speed_up": round(b / a, 3),
                "runs_seconds": {
                    k: {str(e): [round(t, 4) for t in ts] for e, ts in v.items()}
                    for k, v in runs.items()
                },
            }
        )
        print({k: v for k, v in rows[-1].items() if k != "runs_seconds"}, flush=True)
    return rows


def threads_table(data, e1: int, e2: int, repeats: int) -> list[dict]:
    """The current code with 1 and with 2 intra-op threads."""
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t = timings(after, data, e1, e2, repeats)
        rows.append({"threads": threads, "ms_per_step": round(1e3 * t, 3)})
        print(rows[-1], flush=True)
    torch.set_num_threads(1)
    return rows


def rows_table(sizes: list[int], e1: int, e2: int, repeats: int) -> list[dict]:
    """Time of one full-batch step by the number of rows (60 N(0, 1) columns)."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for n in sizes:
        X = torch.randn(n, 60, generator=g)
        y = X[:, 0] + torch.randn(n, generator=g)
        t = timings(after, (X, y), e1, e2, repeats)
        rows.append({"rows": n, "ms_per_step": round(1e3 * t, 3)})
        print(rows[-1], flush=True)
    return rows


def markdown(result: dict) -> list[str]:
    prov = result["provenance"]
    e1, e2 = result["epochs"]
    lines = [
        "# Full-batch steps on a small data set: the per-epoch overhead of `fit`",
        "",
        f"Command: `{prov['command']}`  ",
        f"Date: {prov['date']}; machine: {prov['machine']}; commit {prov['commit']}; "
        f"one torch thread unless stated. Load average (1 min) at the start: "
        f"{result['load_average_before']} on {os.cpu_count()} cores (a shared machine: "
        "compare the columns of one table, which ran interleaved, not absolute numbers "
        "across days).",
        "",
        "Selector network (60-50-20-1, spike-and-slab) on diabetes + 50 noise columns (442 "
        f"rows), one full-batch step per epoch, lr 0.03. Marginal time per step from runs "
        f"of {e1} and {e2} epochs, the fastest of {result['repeats']} repetitions of each "
        "(before and after interleaved). *Before*: "
        f"`pyrocompress/infer/training.py` of commit {result['before_commit']}; *after*: "
        "the current file (the epoch's loss read every 16 steps instead of every step, the "
        "minibatch order as a tensor instead of a Python list, the progress bar's numbers "
        "set without a redraw, training mode set once).",
        "",
        "| progress bar | before ms/step | after ms/step | before steps/s | after steps/s | "
        "speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["overhead"]:
        lines.append(
            f"| {'on (to a log)' if r['progress'] else 'off'} | {r['before_ms_per_step']} | "
            f"{r['after_ms_per_step']} | {r['before_steps_per_s']} | {r['after_steps_per_s']} "
            f"| {r['speed_up']}× |"
        )
    lines += [
        "",
        f"## Intra-op threads (current code, progress off, runs of {e1 // 5} and {e2 // 5} epochs)",
        "",
        "| threads | ms/step |",
        "|---|---|",
        *(f"| {r['threads']} | {r['ms_per_step']} |" for r in result["threads"]),
        "",
        f"## One full-batch step by the number of rows (current code, 1 thread, runs of "
        f"{e1 // 5} and {e2 // 5} epochs)",
        "",
        "| rows | ms/step |",
        "|---|---|",
        *(f"| {r['rows']} | {r['ms_per_step']} |" for r in result["rows"]),
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help=f"commit of 'before' ({BEFORE})")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny runs, nothing written")
    args = parser.parse_args()
    e1, e2 = (5, 15) if args.quick else (50, 300)
    repeats = 1 if args.quick else args.repeats
    torch.set_num_threads(1)
    load = round(os.getloadavg()[0], 2)
    before = load_before(args.before)
    data = diabetes_noise()
    timed_fit(after, data, 5, False)  # warm-up: first-call costs out of the measurements
    sizes = [256, 1024] if args.quick else [256, 442, 1024, 2048, 4096, 8192]
    result = {
        "provenance": provenance(),
        "before_commit": args.before,
        "epochs": [e1, e2],
        "repeats": repeats,
        "load_average_before": load,
        "overhead": overhead_table(before, data, e1, e2, repeats),
        "threads": threads_table(data, e1 // 5, e2 // 5, repeats),
        "rows": rows_table(sizes, e1 // 5, e2 // 5, repeats),
    }
    print("\n".join(markdown(result)))
    if not args.quick:
        write_results("small-data", result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
