"""SVI step time of pyrocompress against a hand-written BC-GNJ and deterministic training,
and inference latency of a compact network against the dense one (issue 5).

Measured in one process, methods interleaved, median over repetitions:

* pyrocompress: one SVI step of ``pyrocompress.fit`` (local reparametrisation,
  TraceMeanField_ELBO) on LeNet-300-100, batch 128, for each prior — the time of one
  training epoch of ``steps`` minibatches divided by ``steps``;
* the hand-written plain-PyTorch BC-GNJ of ``benchmarks/bcgnj_baseline.py`` (same
  architecture, same batch, Adam);
* deterministic training of the same architecture (the floor);
* forward latency of a compact LeNet-300-100 with the architecture Louizos et al. (2017)
  report for BC-GNJ (278 of 784 inputs, 98 and 13 hidden units) against the dense network,
  at batch 1 and batch 1000, next to the FLOPs ratio.

The data are random MNIST-shaped tensors: only time is measured. LeNet-5-Caffe is not in
this script yet.

Usage (from the project root)::

    .venv/bin/python benchmarks/speed.py            # 7 repetitions, about 2 min
    .venv/bin/python benchmarks/speed.py --quick    # 2 repetitions, no files written

Writes ``docs/results/speed.json`` and ``docs/results/speed.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from _common import provenance, write_results
from bcgnj_baseline import LeNet300100GroupNJ
from torch import nn

import pyrocompress as pc
from pyrocompress.export import SelectFeatures, count_flops

PRIORS = ("group-nj", "group-horseshoe", "spike-slab", "gaussian")
BATCH = 128


def step_pyrocompress(prior: str, X, y, steps: int) -> float:
    bnn = pc.bayesianize(pc.lenet_300_100(), prior=prior, seed=0)
    h = pc.fit(bnn, (X, y), epochs=1, batch_size=BATCH, lr=1e-3, seed=0, progress=False)
    return h.seconds[0] / steps


def _loop(model: nn.Module, loss_fn, X, y, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(X))
    start = time.perf_counter()
    for i in range(steps):
        idx = perm[i * BATCH : (i + 1) * BATCH]
        loss = loss_fn(X[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    loss.item()
    return (time.perf_counter() - start) / steps


def step_baseline(X, y, steps: int) -> float:
    model = LeNet300100GroupNJ()
    return _loop(model, lambda xb, yb: model.loss(xb, yb, len(X)), X, y, steps)


def step_deterministic(X, y, steps: int) -> float:
    model = pc.lenet_300_100()
    return _loop(model, lambda xb, yb: F.cross_entropy(model(xb), yb), X, y, steps)


def compact_lenet300() -> nn.Sequential:
    """The BC-GNJ architecture of Louizos et al. (2017), Table 1: 278-98-13."""
    keep = torch.randperm(784)[:278].sort().values
    return nn.Sequential(
        nn.Flatten(),
        SelectFeatures(keep, 784),
        nn.Linear(278, 98),
        nn.ReLU(),
        nn.Linear(98, 13),
        nn.ReLU(),
        nn.Linear(13, 10),
    )


@torch.no_grad()
def latency(net: nn.Module, batch: int, reps: int = 200) -> float:
    x = torch.randn(batch, 1, 28, 28)
    net.eval()
    for _ in range(10):
        net(x)
    start = time.perf_counter()
    for _ in range(reps):
        net(x)
    return (time.perf_counter() - start) / reps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=30, help="minibatches per measurement")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--quick", action="store_true", help="2 repetitions, nothing written")
    args = ap.parse_args()
    repeats = 2 if args.quick else args.repeats
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = BATCH * args.steps
    X = torch.rand(n, 1, 28, 28)
    y = torch.randint(0, 10, (n,))
    methods = {
        f"pyrocompress {p}": (lambda p=p: step_pyrocompress(p, X, y, args.steps)) for p in PRIORS
    }
    methods["hand-written BC-GNJ"] = lambda: step_baseline(X, y, args.steps)
    methods["deterministic"] = lambda: step_deterministic(X, y, args.steps)
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(repeats):  # interleaved
        for name, run in methods.items():
            times[name].append(run())
    step_ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}

    dense, compact = pc.lenet_300_100(), compact_lenet300()
    example = torch.randn(1, 1, 28, 28)
    flops_ratio = count_flops(dense, example) / count_flops(compact, example)
    lat = {}
    for batch in (1, 1000):
        d = statistics.median(latency(dense, batch) for _ in range(repeats))
        c = statistics.median(latency(compact, batch) for _ in range(repeats))
        lat[batch] = {"dense_ms": 1e3 * d, "compact_ms": 1e3 * c, "speedup": d / c}

    base, floor = step_ms["hand-written BC-GNJ"], step_ms["deterministic"]
    for name, ms in step_ms.items():
        print(f"{name:28s} {ms:7.2f} ms/step  {ms / base:5.2f}x baseline  {ms / floor:5.2f}x floor")
    for batch, r in lat.items():
        print(
            f"latency batch {batch}: dense {r['dense_ms']:.3f} ms, "
            f"compact {r['compact_ms']:.3f} ms, "
            f"speed-up {r['speedup']:.2f}x (FLOPs ratio {flops_ratio:.1f}x, "
            f"{r['speedup'] / flops_ratio:.2f} of it)"
        )
    if args.quick:
        return 0
    result = {
        **provenance(),
        "device": "cpu",
        "threads": args.threads,
        "batch_size": BATCH,
        "repeats": repeats,
        "steps_per_measurement": args.steps,
        "step_ms": step_ms,
        "flops_ratio": flops_ratio,
        "latency": {str(b): r for b, r in lat.items()},
    }
    lines = [
        "# Speed: SVI step and compact-network latency (LeNet-300-100, CPU)",
        "",
        f"Command: `{result['command']}` · date {result['date']} · machine: {result['machine']}"
        f" · {args.threads} threads · median of {repeats} interleaved repetitions of "
        f"{args.steps} steps, batch {BATCH}",
        "",
        "| method | ms / step | × hand-written BC-GNJ | × deterministic |",
        "|---|---|---|---|",
    ]
    for name, ms in step_ms.items():
        lines.append(f"| {name} | {ms:.2f} | {ms / base:.2f} | {ms / floor:.2f} |")
    lines += [
        "",
        f"Compact network: 278-98-13 (Louizos et al. 2017, BC-GNJ) against 784-300-100; "
        f"FLOPs ratio {flops_ratio:.1f}×.",
        "",
        "| batch | dense ms | compact ms | speed-up | speed-up / FLOPs ratio |",
        "|---|---|---|---|---|",
    ]
    for batch, r in lat.items():
        lines.append(
            f"| {batch} | {r['dense_ms']:.3f} | {r['compact_ms']:.3f} | {r['speedup']:.2f}× "
            f"| {r['speedup'] / flops_ratio:.2f} |"
        )
    write_results("speed", result, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
