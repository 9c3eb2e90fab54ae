"""SVI step time of pyrocompress against a hand-written BC-GNJ and deterministic training,
and inference latency of a compact network against the dense one (issue 5).

Measured in one process, methods interleaved, median over repetitions:

* pyrocompress: one SVI step of ``pyrocompress.fit`` (local reparametrisation,
  ``LocalReparamELBO``) on LeNet-300-100 and LeNet-5-Caffe, batch 128, for each prior — the
  time of the second training epoch of ``steps`` minibatches divided by ``steps`` (the
  first warms up; every method is timed after a warm-up epoch);
* the hand-written plain-PyTorch BC-GNJ of ``benchmarks/speed/bcgnj_baseline.py`` (same
  architecture, same batch, the same fused Adam as ``fit``);
* deterministic training of the same architecture (the floor, same optimiser);
* forward latency of a compact LeNet-300-100 with the architecture Louizos et al. (2017)
  report for BC-GNJ (278 of 784 inputs, 98 and 13 hidden units) against the dense network,
  at batch 1 and batch 1000, next to the FLOPs ratio.

The data are random MNIST-shaped tensors: only time is measured.

Usage (from the project root)::

    .venv/bin/python benchmarks/speed/speed.py            # 7 repetitions, about 2 min
    .venv/bin/python benchmarks/speed/speed.py --quick    # 2 repetitions, no files written
    .venv/bin/python benchmarks/speed/speed.py --device cuda   # the same table on a GPU

Writes ``docs/results/speed.json`` and ``.md`` (``speed-cuda.*`` with ``--device cuda``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import pyrocompress as pc
from pyrocompress.compress import SelectFeatures, count_flops

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import provenance, write_results
from bcgnj_baseline import LeNet5GroupNJ, LeNet300100GroupNJ

PRIORS = ("group-nj", "group-horseshoe", "spike-slab", "gaussian")
BATCH = 128
#: name -> (deterministic architecture, hand-written BC-GNJ, share of --steps it runs)
MODELS = {
    "LeNet-300-100": (pc.lenet_300_100, LeNet300100GroupNJ, 1.0),
    "LeNet-5-Caffe": (pc.lenet5_caffe, LeNet5GroupNJ, 1 / 3),
}


def step_pyrocompress(arch, prior: str, X, y, steps: int) -> float:
    """Seconds per step of the second epoch of ``fit`` (the first warms up: optimiser
    state, caches), as in a long run. ``fit`` ends each epoch with a host read of the loss,
    so a GPU epoch is timed to completion."""
    bnn = pc.bayesianize(arch(), prior=prior, seed=0)
    h = pc.fit(
        bnn,
        (X, y),
        epochs=2,
        batch_size=BATCH,
        lr=1e-3,
        seed=0,
        progress=False,
        device=X.device,
        tol=None,
    )
    return h.seconds[1] / steps


def _loop(model: nn.Module, loss_fn, X, y, steps: int) -> float:
    """Seconds per step of a plain training loop, timed after a warm-up epoch."""
    model.to(X.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # as pyrocompress.fit
    for _warm_up_then_timed in range(2):
        perm = torch.randperm(len(X), device=X.device)
        start = time.perf_counter()
        for i in range(steps):
            idx = perm[i * BATCH : (i + 1) * BATCH]
            loss = loss_fn(X[idx], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        loss.item()
    return (time.perf_counter() - start) / steps


def step_baseline(baseline, X, y, steps: int) -> float:
    model = baseline()
    return _loop(model, lambda xb, yb: model.loss(xb, yb, len(X)), X, y, steps)


def step_deterministic(arch, X, y, steps: int) -> float:
    model = arch()
    return _loop(model, lambda xb, yb: F.cross_entropy(model(xb), yb), X, y, steps)


def step_times(arch, baseline, steps: int, repeats: int, device) -> dict[str, list[float]]:
    """Milliseconds per step of each method in each repetition, repetitions interleaved."""
    n = BATCH * steps
    X = torch.rand(n, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    methods = {
        f"pyrocompress {p}": (lambda p=p: step_pyrocompress(arch, p, X, y, steps)) for p in PRIORS
    }
    methods["hand-written BC-GNJ"] = lambda: step_baseline(baseline, X, y, steps)
    methods["deterministic"] = lambda: step_deterministic(arch, X, y, steps)
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(repeats):  # interleaved
        for name, run in methods.items():
            times[name].append(1e3 * run())
    return times


def summarise(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Median step time of each method and the ratios to the hand-written baseline and to
    deterministic training: median and range over repetitions of the ratio within a
    repetition (the methods of one repetition ran back to back, so the ratio cancels the
    slow drifts of a shared machine that the times themselves carry)."""
    out = {}
    for name, ts in times.items():
        row = {"ms": statistics.median(ts)}
        for ref, key in (("hand-written BC-GNJ", "vs_baseline"), ("deterministic", "vs_floor")):
            ratios = [t / r for t, r in zip(ts, times[ref], strict=True)]
            row[key] = statistics.median(ratios)
            row[key + "_min"], row[key + "_max"] = min(ratios), max(ratios)
        out[name] = row
    return out


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
def latency(net: nn.Module, batch: int, device, reps: int = 200) -> float:
    x = torch.randn(batch, 1, 28, 28, device=device)
    net.to(device).eval()
    for _ in range(10):
        net(x)
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        net(x)
    _sync(device)
    return (time.perf_counter() - start) / reps


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=30, help="minibatches per measurement")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--quick", action="store_true", help="2 repetitions, nothing written")
    ap.add_argument(
        "--device",
        default="cpu",
        help="cpu (writes docs/results/speed.*) or cuda (writes docs/results/speed-cuda.*)",
    )
    args = ap.parse_args()
    repeats = 2 if args.quick else args.repeats
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda was given but no CUDA device is available")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    step_ms = {}
    for model, (arch, baseline, share) in MODELS.items():
        raw = step_times(arch, baseline, max(3, round(share * args.steps)), repeats, device)
        step_ms[model] = summarise(raw)
        for name, r in step_ms[model].items():
            print(
                f"{model:14s} {name:28s} {r['ms']:7.2f} ms/step  "
                f"{r['vs_baseline']:5.2f}x baseline ({r['vs_baseline_min']:.2f}-"
                f"{r['vs_baseline_max']:.2f})  {r['vs_floor']:5.2f}x floor"
            )

    dense, compact = pc.lenet_300_100(), compact_lenet300()
    example = torch.randn(1, 1, 28, 28)
    flops_ratio = count_flops(dense, example) / count_flops(compact, example)
    lat = {}
    for batch in (1, 1000):
        d = statistics.median(latency(dense, batch, device) for _ in range(repeats))
        c = statistics.median(latency(compact, batch, device) for _ in range(repeats))
        lat[batch] = {"dense_ms": 1e3 * d, "compact_ms": 1e3 * c, "speedup": d / c}

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
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": args.threads,
        "batch_size": BATCH,
        "repeats": repeats,
        "steps_per_measurement": args.steps,
        "step_ms": step_ms,
        "flops_ratio": flops_ratio,
        "latency": {str(b): r for b, r in lat.items()},
    }
    lines = [
        f"# Speed: SVI step and compact-network latency ({result['device']})",
        "",
        f"Command: `{result['command']}` · date {result['date']} · machine: {result['machine']}"
        f" · {args.threads} threads · median of {repeats} interleaved repetitions of an epoch"
        f" of {args.steps} steps (LeNet-5-Caffe: a third of them), batch {BATCH}; every method"
        " uses the fused Adam of `pyrocompress.fit`",
    ]
    lines += [
        "",
        "Ratios are medians over repetitions of the ratio within one repetition, with their "
        "range in parentheses.",
    ]
    for model, rows in step_ms.items():
        lines += [
            "",
            f"## {model}",
            "",
            "| method | ms / step | × hand-written BC-GNJ | × deterministic |",
            "|---|---|---|---|",
        ]
        for name, r in rows.items():
            lines.append(
                f"| {name} | {r['ms']:.2f} | {r['vs_baseline']:.2f} "
                f"({r['vs_baseline_min']:.2f}–{r['vs_baseline_max']:.2f}) | "
                f"{r['vs_floor']:.2f} ({r['vs_floor_min']:.2f}–{r['vs_floor_max']:.2f}) |"
            )
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
    write_results("speed" if device.type == "cpu" else "speed-cuda", result, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
