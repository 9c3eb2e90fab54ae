"""ATen operations per SVI step of ``pyrocompress.fit``, for each prior, next to the
hand-written BC-GNJ and deterministic training (issue 5).

On a GPU a small network's step is bound by kernel launches, not arithmetic, so the number
of operations a step issues predicts its time there better than its FLOPs. This counts
them with the torch profiler on the CPU: every ``aten::`` call of an epoch of ``fit``
(forward, backward, the fused Adam step, the variance clipping), composite operations
counted with their parts, without the calls that launch no kernel (views, reshapes,
empty allocations, scalar reads), divided by the number of steps.

Usage (from the project root)::

    .venv/bin/python benchmarks/speed/step_ops.py            # LeNet-300-100 and LeNet-5-Caffe
    .venv/bin/python benchmarks/speed/step_ops.py --quick    # LeNet-300-100 only, nothing written

Writes ``docs/results/step-ops.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import pyrocompress as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import provenance, write_results
from bcgnj_baseline import LeNet5GroupNJ, LeNet300100GroupNJ
from speed import _loop

PRIORS = ("group-nj", "group-horseshoe", "spike-slab", "gaussian")
#: name -> (architecture, hand-written BC-GNJ of benchmarks/speed/bcgnj_baseline.py)
MODELS = {
    "LeNet-300-100": (pc.lenet_300_100, LeNet300100GroupNJ),
    "LeNet-5-Caffe": (pc.lenet5_caffe, LeNet5GroupNJ),
}
COLUMNS = (*PRIORS, "hand-written BC-GNJ", "deterministic")
BATCH, STEPS = 128, 4
#: ATen calls that launch no kernel
NO_KERNEL = {
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::view", "aten::as_strided",
    "aten::reshape", "aten::_reshape_alias", "aten::_unsafe_view", "aten::detach",
    "aten::t", "aten::transpose", "aten::permute", "aten::expand", "aten::unsqueeze",
    "aten::squeeze", "aten::select", "aten::slice", "aten::alias", "aten::lift_fresh",
    "aten::resolve_conj", "aten::resolve_neg", "aten::result_type", "aten::is_nonzero",
    "aten::item", "aten::_local_scalar_dense", "aten::size", "aten::stride",
    "aten::contiguous", "aten::to", "aten::_to_copy",
}  # fmt: skip


def _kernel_calls(prof) -> int:
    return sum(
        e.count
        for e in prof.key_averages()
        if e.key.startswith("aten::") and e.key not in NO_KERNEL
    )


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(BATCH * STEPS, 1, 28, 28, generator=g)
    return X, torch.randint(0, 10, (BATCH * STEPS,), generator=g)


def ops_per_step(arch, prior: str) -> float:
    X, y = _data()
    bnn = pc.bayesianize(arch(), prior, seed=0)
    settings = dict(epochs=1, batch_size=BATCH, progress=False, seed=0, tol=None)
    pc.fit(bnn, (X, y), **settings)  # warm-up: optimiser state, caches
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        pc.fit(bnn, (X, y), **settings)
    return _kernel_calls(prof) / STEPS


def ops_per_plain_step(model, loss_fn) -> float:
    """The same count for a plain training loop (``speed._loop``: a warm-up epoch and a
    timed one, both profiled)."""
    X, y = _data()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _loop(model, loss_fn, X, y, STEPS)
    return _kernel_calls(prof) / (2 * STEPS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="LeNet-300-100 only, nothing written")
    args = ap.parse_args()
    torch.set_num_threads(1)
    models = dict(list(MODELS.items())[:1]) if args.quick else MODELS
    counts = {}
    for m, (arch, baseline) in models.items():
        counts[m] = {p: ops_per_step(arch, p) for p in PRIORS}
        hand, det = baseline(), arch()
        counts[m]["hand-written BC-GNJ"] = ops_per_plain_step(
            hand, lambda xb, yb, hand=hand: hand.loss(xb, yb, BATCH * STEPS)
        )
        counts[m]["deterministic"] = ops_per_plain_step(
            det, lambda xb, yb, det=det: F.cross_entropy(det(xb), yb)
        )
    for model, row in counts.items():
        print(model, ", ".join(f"{p} {n:.0f}" for p, n in row.items()))
    if args.quick:
        return 0
    result = {**provenance(), "batch_size": BATCH, "steps": STEPS, "ops_per_step": counts}
    lines = [
        "# ATen operations per SVI step",
        "",
        f"Command: `{result['command']}` · date {result['date']} · machine: "
        f"{result['machine']}. Counted with the torch profiler on the CPU over an epoch of "
        f"{STEPS} steps of batch {BATCH} (after a warm-up epoch); composite operations "
        "counted with their parts; views, reshapes, allocations and scalar reads left out.",
        "",
        "| network | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for model, row in counts.items():
        lines.append(f"| {model} | " + " | ".join(f"{row[c]:.0f}" for c in COLUMNS) + " |")
    write_results("step-ops", result, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
