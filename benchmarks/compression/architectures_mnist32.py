r"""CIFAR-style architectures on MNIST-32: VGG-BN and ResNet-20 with group priors (issue 23).

The CIFAR VGG-like network of Louizos, Ullrich & Welling (2017; 13 convolutions with
BatchNorm, 2 fully connected layers) and ResNet-20 (He et al. 2016) are trained with the
group horseshoe and the group normal-Jeffreys prior on MNIST zero-padded to 1x32x32 (CIFAR-10
is not on these machines), pruned by the automatic rule (validation error within
``--tolerance`` of the unpruned posterior-mean network) with each layer's fixed-point bits,
and exported to their own classes. Each row: test error of the posterior-mean and of the
compact network, architecture, compression by parameters and with bits, FLOPs before and
after, and CPU latency of the compact network against the dense posterior-mean network
(median of ``--repeats`` timed forward passes of a batch of ``--latency-batch``, measured
side by side in this process).

Usage (from the project root; MNIST at ../shared/data/mnist)::

    .venv/bin/python benchmarks/compression/architectures_mnist32.py \
        --train-size 20000 --epochs 2

``--quick`` runs a few hundred examples for one epoch and writes nothing. Writes
``docs/results/architectures-mnist32.json`` and ``.md``. The Louizos et al. CIFAR-10 run is
the same command with ``--dataset cifar10 --data-dir DIR`` of the CLI (see the .md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import pyrocompress as pc
from pyrocompress.compress import dense_module
from pyrocompress.data.loaders import load_mnist32

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import MNIST, RESULTS, provenance, write_results

MODELS = {"resnet20": pc.resnet20, "vgg-bn-cifar": pc.vgg_bn_cifar}
PRIORS = ("group-horseshoe", "group-nj")


def latency(module: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward pass of ``x`` (after two warm-up passes)."""
    module.eval()
    times = []
    with torch.no_grad():
        for i in range(repeats + 2):
            start = time.perf_counter()
            module(x)
            if i >= 2:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(model: str, prior: str, splits, args) -> dict:
    g = torch.Generator().manual_seed(args.seed)
    train = splits.train
    idx = torch.randperm(len(train.X), generator=g)[: args.train_size]
    X, y = train.X[idx], train.y[idx]
    val = (splits.val.X[: args.val_size], splits.val.y[: args.val_size])
    test = (splits.test.X[: args.test_size], splits.test.y[: args.test_size])
    net = MODELS[model](num_classes=10, in_channels=1)
    bnn = pc.bayesianize(net, prior, seed=args.seed)
    start = time.perf_counter()
    pc.fit(
        bnn,
        (X, y),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        progress=False,
        tol=None,
    )
    fit_s = time.perf_counter() - start
    result = pc.prune(
        bnn, "auto", validation=val, test=test, tolerance=args.tolerance, quantize=True
    )
    rep = result.report
    x = test[0][: args.latency_batch]
    dense = dense_module(bnn)
    t_dense = latency(dense, x, args.repeats)
    t_compact = latency(result.module, x, args.repeats)
    return {
        "model": model,
        "prior": prior,
        "class": type(result.module).__name__,
        "train_size": len(X),
        "epochs": args.epochs,
        "fit_seconds": fit_s,
        "test_error_bayes": rep["test_error_bayes"],
        "test_error_compact": rep["test_error_compact"],
        "architecture_before": rep["architecture_before"],
        "architecture_after": rep["architecture_after"],
        "params_before": rep["params_before"],
        "params_after": rep["params_after"],
        "compression_rate_params": rep["compression_rate_params"],
        "compression_rate_bits": rep["compression_rate_bits"],
        "flops_before": rep["flops_before"],
        "flops_after": rep["flops_after"],
        "latency_dense_s": t_dense,
        "latency_compact_s": t_compact,
        "speedup": t_dense / t_compact,
    }


def markdown(result: dict) -> list[str]:
    lines = [
        "# CIFAR-style architectures on MNIST-32 (issue 23)",
        "",
        "MNIST training images zero-padded to 1x32x32; pruning by the automatic rule (the "
        "largest pruning whose validation error stays within the tolerance of the unpruned "
        "posterior-mean network), weights rounded to each layer's bits; the compact network "
        "is an instance of the model's own class. Latency: median of timed forward passes "
        "of one batch on the CPU, the dense posterior-mean network and the compact network "
        "timed side by side in one process. Each row's command, date, commit, machine and "
        "budget are listed under the table.",
        "",
        "| model | prior | train images × epochs | test error (Bayes) | test error (compact) "
        "| params before → after | × params | × bits | MFLOPs before → after "
        "| latency dense / compact (ms) | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} ({r['class']}) | {r['prior']} | {r['train_size']} × {r['epochs']} "
            f"| {100 * r['test_error_bayes']:.2f} % "
            f"| {100 * r['test_error_compact']:.2f} % | {r['params_before']:,} → "
            f"{r['params_after']:,} | {r['compression_rate_params']:.1f} "
            f"| {r['compression_rate_bits']:.1f} | {r['flops_before'] / 1e6:.1f} → "
            f"{r['flops_after'] / 1e6:.1f} | {1e3 * r['latency_dense_s']:.1f} / "
            f"{1e3 * r['latency_compact_s']:.1f} | {r['speedup']:.2f} |"
        )
    lines += [
        "",
        "Architectures (channels of each layer in data order, input first):",
        "",
    ]
    for r in result["rows"]:
        lines.append(
            f"- {r['model']}, {r['prior']}: {r['architecture_before']} → {r['architecture_after']}"
        )
    lines += ["", "Runs:", ""]
    for r in result["rows"]:
        p, st = r.get("provenance", {}), r.get("settings", {})
        lines.append(
            f"- {r['model']}, {r['prior']}: `{p.get('command')}` · {p.get('date')} · commit "
            f"{p.get('commit')} · {p.get('machine')} · batch {st.get('batch_size')}, lr "
            f"{st.get('lr')}, tolerance {st.get('tolerance')} on {st.get('val_size')} "
            f"validation images, test error on {st.get('test_size')} test images, latency "
            f"batch {st.get('latency_batch')} × {st.get('repeats')} repeats; fit "
            f"{r['fit_seconds']:.0f} s"
        )
    lines += [
        "",
        "Louizos et al. (2017) on CIFAR-10 (not on these machines): BC-GNJ 8.6 % error, 14× "
        "by pruning, 56× with bits; BC-GHS 9.0 %, 18×, 59×. The same pipeline on CIFAR-10: "
        "`pyrocompress compress --model vgg-bn-cifar --dataset cifar10 --data-dir DIR "
        "--prior group-nj --epochs 200 --out runs/vgg-cifar10` (DIR holding the binary "
        "batches `data_batch_1.bin` … `test_batch.bin`).",
    ]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--priors", nargs="+", choices=PRIORS, default=list(PRIORS))
    ap.add_argument("--data-dir", type=Path, default=MNIST)
    ap.add_argument("--train-size", type=int, default=20000)
    ap.add_argument("--val-size", type=int, default=2000)
    ap.add_argument("--test-size", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--latency-batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny run, nothing written")
    args = ap.parse_args()
    if args.quick:
        args.train_size, args.val_size, args.test_size, args.epochs = 256, 128, 256, 1
        args.repeats = 2
    splits = load_mnist32(args.data_dir)
    rows = []
    for model in args.models:
        for prior in args.priors:
            row = run(model, prior, splits, args)
            print(row, flush=True)
            rows.append(row)
    settings = {
        k: getattr(args, k)
        for k in (
            "train_size",
            "val_size",
            "test_size",
            "epochs",
            "batch_size",
            "lr",
            "tolerance",
            "latency_batch",
            "repeats",
            "seed",
        )
    }
    prov = provenance()
    for row in rows:
        row["settings"], row["provenance"] = settings, prov
    if args.quick:
        print("\n".join(markdown({"rows": rows})))
        return 0
    # rows of other commands (another model, another budget) are kept
    path = RESULTS / "architectures-mnist32.json"
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    ours = {(r["model"], r["prior"]) for r in rows}
    rows = [r for r in old if (r["model"], r["prior"]) not in ours] + rows
    result = {"rows": rows}
    write_results("architectures-mnist32", result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
