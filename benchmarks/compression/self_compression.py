"""Self-compression study (Carannante et al. 2020): a Gaussian BNN against its deterministic twin.

Both networks are LeNet-300-100 (or LeNet-5-Caffe with ``--model lenet-5-caffe``), trained
on MNIST with the same budget: Adam, learning rate 1e-3 with the cosine schedule of
``pyrocompress.fit``, batch 128, ``--epochs`` passes. The BNN is ``bayesianize(net,
Gaussian(1))`` fitted by SVI (local reparametrisation); the twin is the plain network
trained on the cross-entropy.

Then a growing fraction of the parameters of every layer is removed (set to zero) and the
test accuracy recorded, each network ranked by its own signal:

* BNN by signal-to-noise ratio :math:`|\\mu|/\\sigma` (lowest first) — the weights the
  posterior itself marks as indistinguishable from zero;
* BNN by posterior variance (largest first);
* BNN, convolutions only, whole kernels by the Frobenius norm of their mean (smallest
  first; Linear layers then by SNR);
* the twin by magnitude :math:`|w|` (smallest first; Han et al. 2015).

The BNN is evaluated as its posterior-mean network (weights :math:`\\mu`). The fraction is
removed per layer, biases kept.

A second Gaussian BNN is trained with the sampling-free moments objective
(``fit(..., objective="moments")``, Wu et al. 2019) for the same epochs, from the same
initialisation and minibatches. The two objectives are compared per training seed
(``--seeds``) and like for like: each network predicts through its posterior-mean
weights, through the sampling-free probit predictive of its propagated moments, and
through the Monte Carlo predictive (100 weight draws); the paired difference over the
seeds comes with its standard error. For the first seed the moments-trained BNN's
weights are then pruned by SNR like the first, and its *units* (input units of Linear
layers, output channels of Conv2d) are pruned through ``prune`` — a genuinely smaller
network — by the scores of propagated uncertainty (``pyrocompress.analysis.unit_scores``:
output SNR, kernel norm, share of output variance) and by the posterior group SNR: at
fixed fractions (``rule="sparsity"``), and by the automatic rule (largest cut within one
point of validation error).

Writes ``docs/results/self-compression.json``, ``.md`` and ``.png``.

Usage (from the project root; MNIST at ../shared/data/mnist)::

    .venv/bin/python benchmarks/compression/self_compression.py --epochs 20 --seeds 0 1 2
    .venv/bin/python benchmarks/compression/self_compression.py --quick      # 1 epoch, no files
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import pyrocompress as pc  # noqa: E402
from pyrocompress.analysis import predictive_moments  # noqa: E402
from pyrocompress.data import load_dataset  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import MNIST, RESULTS, provenance, write_results  # noqa: E402

FRACTIONS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99)
UNIT_FRACTIONS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9)
UNIT_SCORES = {
    "output SNR (moments)": "output_snr",
    "kernel norm": "kernel_norm",
    "share of output variance (moments)": "variance_share",
    "posterior group SNR": "snr",
}
MC_DRAWS = 100
AUTO_TOLERANCE = 0.01
ARCHS = {"lenet-300-100": pc.lenet_300_100, "lenet-5-caffe": pc.lenet5_caffe}


def train_twin(net: nn.Module, X, y, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    steps = epochs * math.ceil(len(X) / 128)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=1e-5)
    for _ in range(epochs):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 128):
            idx = perm[i : i + 128]
            loss = F.cross_entropy(net(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, X, y) -> float:
    return float((net(X).argmax(-1) == y).float().mean())


def _layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.Linear | nn.Conv2d)]


@torch.no_grad()
def pruned(net: nn.Module, scores: list[torch.Tensor], fraction: float) -> nn.Module:
    """A copy of ``net`` with the ``fraction`` lowest-scoring weights of each layer zeroed
    (``scores[i]`` has the shape of layer i's weight, or one entry per kernel)."""
    out = copy.deepcopy(net)
    for layer, score in zip(_layers(out), scores, strict=True):
        k = int(fraction * score.numel())
        if k == 0:
            continue
        cut = score.flatten().kthvalue(k).values
        keep = score > cut
        w = layer.weight
        w.mul_(keep.reshape(keep.shape + (1,) * (w.dim() - keep.dim())).to(w.dtype))
    return out


def posterior_mean_net(bnn, arch) -> nn.Module:
    net = arch()
    post = pc.Posterior(bnn)
    means = post.weight_mean()
    with torch.no_grad():
        for name, target in zip(bnn.bayesian_layers(), _layers(net), strict=True):
            target.weight.copy_(means[name])
            target.bias.copy_(bnn.guide[name].bias_loc)
    return net.eval()


@torch.no_grad()
def monte_carlo_accuracy(bnn, arch, X, y, draws: int, seed: int) -> float:
    """Accuracy of the Monte Carlo predictive: class probabilities averaged over
    ``draws`` networks whose weights are drawn from the guide."""
    gen = torch.Generator().manual_seed(seed)
    net = arch()
    layers = list(zip(bnn.bayesian_layers(), _layers(net), strict=True))
    probs = torch.zeros(len(X), bnn_out(bnn))
    for _ in range(draws):
        for name, target in layers:
            q = bnn.guide[name]
            for part in ("weight", "bias"):
                loc, log_var = getattr(q, f"{part}_loc"), getattr(q, f"{part}_log_var")
                eps = torch.randn(loc.shape, generator=gen)
                getattr(target, part).copy_(loc + (0.5 * log_var).exp() * eps)
        probs += torch.softmax(net.eval()(X), -1)
    return float((probs.argmax(-1) == y).float().mean())


def bnn_out(bnn) -> int:
    return list(bnn.bayesian_layers().values())[-1].spec.weight_shape[0]


def predictions(bnn, arch, Xt, yt, seed: int) -> dict[str, float]:
    """Test accuracy of one Gaussian BNN, three ways."""
    return {
        "posterior mean": 1 - pc.evaluate(bnn, (Xt, yt)),
        "predictive, moments (probit)": float(
            (predictive_moments(bnn, Xt)["probs"].argmax(-1) == yt).float().mean()
        ),
        f"predictive, Monte Carlo ({MC_DRAWS} draws)": monte_carlo_accuracy(
            bnn, arch, Xt, yt, MC_DRAWS, seed
        ),
    }


def train(arch, X, y, epochs: int, seed: int):
    """The sampled-ELBO BNN, the moments BNN and the twin of one seed, with their times."""
    seconds = {}
    start = time.perf_counter()
    bnn = pc.bayesianize(arch(), prior=pc.Gaussian(1.0), seed=seed)
    pc.fit(bnn, (X, y), epochs=epochs, lr=1e-3, seed=seed, progress=False, tol=None)
    seconds["bnn"] = time.perf_counter() - start
    start = time.perf_counter()
    bnn_m = pc.bayesianize(arch(), prior=pc.Gaussian(1.0), seed=seed)
    pc.fit(bnn_m, (X, y), epochs=epochs, lr=1e-3, seed=seed, objective="moments", tol=None,
           progress=False)  # fmt: skip
    seconds["bnn_moments"] = time.perf_counter() - start
    start = time.perf_counter()
    twin = train_twin(arch(), X, y, epochs, seed)
    seconds["twin"] = time.perf_counter() - start
    return bnn, bnn_m, twin, seconds


def mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def equal_epochs_lines(per_seed: dict, seeds: list[int]) -> list[str]:
    """Per-seed accuracies of both objectives by prediction, and the paired difference."""
    lines = [
        "| objective | prediction | " + " | ".join(f"seed {s}" for s in seeds)
        + " | mean | moments − ELBO (paired mean ± SE) |",
        "|---" * (len(seeds) + 4) + "|",
    ]  # fmt: skip
    first = per_seed[seeds[0]]
    for kind in first["sampled ELBO"]:
        for objective in ("sampled ELBO", "moments"):
            accs = [per_seed[s][objective][kind] for s in seeds]
            cells = " | ".join(f"{100 * a:.2f}" for a in accs)
            diff = ""
            if objective == "moments":
                elbo = [per_seed[s]["sampled ELBO"][kind] for s in seeds]
                d = [a - b for a, b in zip(accs, elbo, strict=True)]
                m, se = mean_se(d)
                diff = f"{100 * m:+.2f} ± {100 * se:.2f}" if len(seeds) > 1 else f"{100 * m:+.2f}"
            mean = 100 * mean_se(accs)[0]
            lines.append(f"| {objective} | {kind} | {cells} | {mean:.2f} | {diff} |")
    twin = [per_seed[s]["deterministic twin"] for s in seeds]
    cells = " | ".join(f"{100 * a:.2f}" for a in twin)
    lines.append(f"| deterministic twin | its weights | {cells} | {100 * mean_se(twin)[0]:.2f} | |")
    return lines


def plot(curves: dict, unit_curves: dict, unit_params: dict, title: str) -> None:
    """Write ``docs/results/self-compression.png``: the weight-pruning curves (left) and the
    unit-pruning curves of the moments-trained BNN (right)."""
    fig, (ax, ax_u) = plt.subplots(1, 2, figsize=(11, 4))
    for rule, acc in curves.items():
        ax.plot([100 * f for f in FRACTIONS], [100 * a for a in acc], marker="o", label=rule)
    ax.set_xlabel("weights removed per layer (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(bottom=max(0, min(100 * min(a) for a in curves.values()) - 5))
    ax.legend(fontsize=8)
    ax.set_title(title)
    for label, acc in unit_curves.items():
        x = [100 * p for p in unit_params[label]]
        ax_u.plot(x, [100 * a for a in acc], marker="o", label=label)
    ax_u.set_xlabel("parameters removed by unit pruning (%)")
    ax_u.set_ylabel("test accuracy (%)")
    ax_u.legend(fontsize=8)
    ax_u.set_title("Units, moments-trained BNN")
    fig.tight_layout()
    png = RESULTS / "self-compression.png"
    fig.savefig(png.with_suffix(".tmp.png"), dpi=120)
    png.with_suffix(".tmp.png").replace(png)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=list(ARCHS), default="lenet-300-100")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--data-dir", type=Path, default=MNIST)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="training seeds; the pruning curves use the first")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="1 epoch on 5000 images, no files")
    args = ap.parse_args()
    arch = ARCHS[args.model]
    seeds = list(args.seeds)
    splits = load_dataset("mnist", data_dir=args.data_dir, seed=seeds[0])
    X, y = splits.train.X, splits.train.y
    Xt, yt = splits.test.X, splits.test.y
    epochs = 1 if args.quick else args.epochs
    if args.quick:
        X, y = X[:5000], y[:5000]

    per_seed, seconds = {}, {}
    for seed in seeds:
        trained = train(arch, X, y, epochs, seed)
        per_seed[seed] = {
            "sampled ELBO": predictions(trained[0], arch, Xt, yt, seed),
            "moments": predictions(trained[1], arch, Xt, yt, seed),
            "deterministic twin": accuracy(trained[2], Xt, yt),
        }
        seconds[seed] = trained[3]
        print(f"seed {seed}: {per_seed[seed]}", flush=True)
        if seed == seeds[0]:
            bnn, bnn_m, twin, _ = trained
    Xv, yv = splits.val.X, splits.val.y
    unit_curves, unit_params = {}, {}
    for label, score in UNIT_SCORES.items():
        accs, removed = [], []
        for f in UNIT_FRACTIONS:
            r = pc.prune(bnn_m, "sparsity", sparsity=f, score=score, validation=(Xv, yv))
            accs.append(accuracy(r.module, Xt, yt))
            removed.append(1 - r.report["params_after"] / r.report["params_before"])
        unit_curves[label], unit_params[label] = accs, removed
    # the rule the library's users run: the scores rank, the validation error decides
    auto_rows = {}
    for label, score in UNIT_SCORES.items():
        r = pc.prune(bnn_m, "auto", score=score, tolerance=AUTO_TOLERANCE, validation=(Xv, yv))
        auto_rows[label] = {
            "architecture": r.report["architecture_after"],
            "params_removed": 1 - r.report["params_after"] / r.report["params_before"],
            "compression": r.report["params_before"] / r.report["params_after"],
            "test_accuracy": accuracy(r.module, Xt, yt),
        }

    mean_net = posterior_mean_net(bnn, arch)
    post = pc.Posterior(bnn)
    names = list(bnn.bayesian_layers())
    mu = post.weight_mean()
    var = post.weight_var()
    snr = [mu[n].abs() / var[n].sqrt() for n in names]
    neg_var = [-var[n] for n in names]
    frob = [
        mu[n].flatten(2).norm(dim=-1) if mu[n].dim() == 4 else s
        for n, s in zip(names, snr, strict=True)
    ]
    post_m = pc.Posterior(bnn_m)
    mu_m, var_m = post_m.weight_mean(), post_m.weight_var()
    rules = {
        "BNN, SNR": (mean_net, snr),
        "BNN (moments), SNR": (
            posterior_mean_net(bnn_m, arch),
            [mu_m[n].abs() / var_m[n].sqrt() for n in names],
        ),
        "BNN, posterior variance": (mean_net, neg_var),
        "twin, magnitude": (twin, [m.weight.abs() for m in _layers(twin)]),
    }
    if any(m.dim() == 4 for m in mu.values()):
        rules["BNN, kernel Frobenius norm"] = (mean_net, frob)
    curves = {
        rule: [accuracy(pruned(net, scores, f), Xt, yt) for f in FRACTIONS]
        for rule, (net, scores) in rules.items()
    }
    sec = seconds[seeds[0]]
    lines = [
        f"# Self-compression: Gaussian BNN against its deterministic twin ({args.model})",
        "",
        f"MNIST, {epochs} epochs each, seeds {', '.join(map(str, seeds))} (seed {seeds[0]}: "
        f"BNN {sec['bnn']:.0f} s, BNN with the moments objective {sec['bnn_moments']:.0f} s, "
        f"twin {sec['twin']:.0f} s).",
        "",
        "Test accuracy (%) at equal epochs — both Gaussian BNNs with the same initialisation, "
        "optimiser, schedule and minibatches, each predicting three ways (the posterior-mean "
        "network; the sampling-free probit predictive of the propagated moments; the Monte "
        f"Carlo predictive, {MC_DRAWS} weight draws):",
        "",
        *equal_epochs_lines(per_seed, seeds),
        "",
        f"Pruning curves below: seed {seeds[0]}.",
        "",
        "Test accuracy (%) after removing a fraction of the weights of every layer:",
        "",
        "| fraction removed | " + " | ".join(curves) + " |",
        "|---" * (len(curves) + 1) + "|",
    ]
    for i, f in enumerate(FRACTIONS):
        cells = " | ".join(f"{100 * c[i]:.2f}" for c in curves.values())
        lines.append(f"| {100 * f:.0f} % | {cells} |")
    lines += [
        "",
        'Unit pruning of the moments-trained BNN (`prune(bnn, "sparsity", score=...)`, '
        "a smaller network): test accuracy (%) and, in brackets, the share of parameters "
        "removed, by fraction of units (input units, channels) removed:",
        "",
        "| units removed | " + " | ".join(unit_curves) + " |",
        "|---" * (len(unit_curves) + 1) + "|",
    ]
    for i, f in enumerate(UNIT_FRACTIONS):
        cells = " | ".join(
            f"{100 * unit_curves[k][i]:.2f} ({100 * unit_params[k][i]:.0f} %)" for k in unit_curves
        )
        lines.append(f"| {100 * f:.0f} % | {cells} |")
    lines += [
        "",
        f'The automatic rule on the moments-trained BNN (`prune(bnn, "auto", score=..., '
        f"tolerance={AUTO_TOLERANCE})`: the scores rank the units, the largest cut within "
        f"{100 * AUTO_TOLERANCE:g} point of validation error is taken):",
        "",
        "| score | architecture | parameters removed | compression | test accuracy (%) |",
        "|---|---|---|---|---|",
        *[
            f"| {k} | {'-'.join(map(str, r['architecture']))} | "
            f"{100 * r['params_removed']:.1f} % | {r['compression']:.1f}× | "
            f"{100 * r['test_accuracy']:.2f} |"
            for k, r in auto_rows.items()
        ],
    ]
    print("\n".join(lines))
    if args.quick:
        return 0
    plot(curves, unit_curves, unit_params, f"Weights, {args.model}, {epochs} epochs")
    result = {
        **provenance(),
        "model": args.model,
        "epochs": epochs,
        "fractions": list(FRACTIONS),
        "accuracy": curves,
        "seeds": seeds,
        "equal_epochs_accuracy": {str(k): v for k, v in per_seed.items()},
        "auto_tolerance": AUTO_TOLERANCE,
        "auto": auto_rows,
        "unit_fractions": list(UNIT_FRACTIONS),
        "unit_accuracy": unit_curves,
        "unit_params_removed": unit_params,
        "seconds": {str(k): v for k, v in seconds.items()},
    }
    prov = f"Command: `{result['command']}` · date {result['date']} · machine: {result['machine']}"
    write_results(
        "self-compression",
        result,
        [lines[0], "", prov, *lines[1:], "", "![curves](self-compression.png)"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
