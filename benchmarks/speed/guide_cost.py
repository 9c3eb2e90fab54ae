"""The cost of the conditional-weights guide against the mean-field one (issue 22, item 3).

``bayesianize(..., guide="conditional")`` makes a gated layer's weights Gaussian given
their group's gate (``pyrocompress/priors/conditional.py``): one more parameter per group,
a quadrature over the gate for the KL, and the same locally reparametrised pre-activations.
This script times one SVI step of each guide, side by side in one process (repetitions
alternate which goes first, so slow drifts of a shared machine cancel in the ratio), on:

* LeNet-300-100 (MNIST-shaped random inputs, batch 128, group horseshoe);
* the Bai et al. selection network (p = 200 inputs, 7-7-7-1, batch 256, group horseshoe).

A step's time is that of ``fit``'s second epoch divided by its steps (the first warms up).
It also records the time of ``Posterior.inclusion_probabilities`` (its default draws) for each,
once (first repetition).

Usage (from the project root)::

    .venv/bin/python benchmarks/speed/guide_cost.py             # 3 repetitions
    .venv/bin/python benchmarks/speed/guide_cost.py --quick     # tiny, nothing written

Writes ``docs/results/guide-cost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import pyrocompress as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import provenance, write_results

GUIDES = ("mean-field", "conditional")


def problems(steps: int) -> dict[str, tuple]:
    """Each problem: a model factory, data, batch size and likelihood."""
    g = torch.Generator().manual_seed(0)
    lenet = (
        pc.lenet_300_100,
        torch.rand(128 * steps, 1, 28, 28, generator=g),
        torch.randint(0, 10, (128 * steps,), generator=g),
        128,
        "categorical",
    )
    bai = (
        lambda: pc.mlp([200, 7, 7, 7, 1]),
        torch.rand(256 * steps, 200, generator=g) * 2 - 1,
        torch.randn(256 * steps, generator=g),
        256,
        "gaussian",
    )
    return {"LeNet-300-100": lenet, "Bai et al. 200-7-7-7-1": bai}


def step_ms(make, X, y, batch, likelihood, guide, pips: bool) -> tuple[float, float]:
    """Return the milliseconds of one SVI step and of the inclusion probabilities (or NaN)."""
    bnn = pc.bayesianize(make(), "group-horseshoe", likelihood=likelihood, guide=guide, seed=0)
    h = pc.fit(bnn, (X, y), epochs=2, batch_size=batch, lr=1e-3, seed=0, progress=False, tol=None)
    steps = len(X) // batch
    if not pips:
        return 1e3 * h.seconds[1] / steps, float("nan")
    start = time.perf_counter()
    pc.Posterior(bnn).inclusion_probabilities()
    return 1e3 * h.seconds[1] / steps, 1e3 * (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40, help="SVI steps per timed epoch")
    ap.add_argument("--quick", action="store_true", help="1 repetition of 3 steps, no files")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.steps = 1, 3
    torch.set_num_threads(1)
    rows = {}
    for name, (make, X, y, batch, lik) in problems(args.steps).items():
        times: dict[str, list[float]] = {g: [] for g in GUIDES}
        pip_ms: dict[str, list[float]] = {g: [] for g in GUIDES}
        ratios = []
        for r in range(args.repeats):
            order = GUIDES if r % 2 == 0 else GUIDES[::-1]
            now = {}
            for guide in order:
                now[guide], pip = step_ms(make, X, y, batch, lik, guide, pips=r == 0)
                times[guide].append(now[guide])
                if r == 0:  # (the inclusion probabilities are timed once)
                    pip_ms[guide].append(pip)
            ratios.append(now["conditional"] / now["mean-field"])
        rows[name] = {
            "step_ms": {g: statistics.median(v) for g, v in times.items()},
            "pip_ms": {g: statistics.median(v) for g, v in pip_ms.items()},
            "ratio_median": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
        }
        print(name, rows[name])
    lines = [
        "# The conditional-weights guide: cost per SVI step",
        "",
        f"One thread; median over {args.repeats} repetitions, each timing {args.steps} steps "
        "of each guide back to back (alternating order); group horseshoe prior.",
        "",
        "| network | mean-field ms/step | conditional ms/step | ratio (median, range) | "
        "PIPs, mean-field ms | PIPs, conditional ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lo, hi = row["ratio_range"]
        lines.append(
            f"| {name} | {row['step_ms']['mean-field']:.2f} | {row['step_ms']['conditional']:.2f}"
            f" | {row['ratio_median']:.2f} ({lo:.2f}–{hi:.2f}) | "
            f"{row['pip_ms']['mean-field']:.0f} | {row['pip_ms']['conditional']:.0f} |"
        )
    print("\n".join(lines))
    if args.quick:
        return 0
    result = {**provenance(), "settings": vars(args), "rows": rows}
    prov = f"Command: `{result['command']}` · date {result['date']} · machine: {result['machine']}"
    write_results("guide-cost", result, [lines[0], "", prov, *lines[1:]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
