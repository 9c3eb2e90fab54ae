r"""Spike-and-slab on MNIST: where the trained posterior sits, and why (issue 6).

The node spike-and-slab prior (Saha, Liu & Liang 2024) errs far more on MNIST
LeNet-300-100 than the other priors. This script reads the trained posterior that
``benchmarks/compression/mnist_compression.py --checkpoint-root DIR`` keeps for the
``lenet-300-100-spike-slab`` run and measures:

* the inclusion probabilities :math:`\pi_g` by layer (quantiles, counts above 1/2);
* the negative ELBO per training example split into its expected negative log-likelihood
  and its KL term, each estimated over training minibatches with the estimator ``fit``
  uses (the same noise for both terms: the KL is the difference between the loss at KL
  weight 1 and at 1/2);
* the final negative ELBO of the Gaussian-prior run (same network, epochs and recipe, from
  its ``report.json``), and from it the negative ELBO the spike-and-slab model attains
  without any training trap: with every :math:`\pi_g \to 1` it is the Gaussian model
  (the structured KL of a group becomes the Gaussian KL of its weights) plus
  :math:`\mathrm{KL}(\mathrm{Bern}(1) \| \mathrm{Bern}(\lambda)) = \log(1/\lambda)` per
  group, i.e. :math:`G \log(1/\lambda) / N` per example for :math:`G` groups;
* the test error of the posterior-mean network (weights :math:`\pi\mu`), of the network
  with every group switched on given inclusion (:math:`\mu`), and of the
  median-probability model (groups with :math:`\pi \ge 1/2`, weights given inclusion).

Usage (from the project root; MNIST at ../shared/data/mnist)::

    .venv/bin/python benchmarks/compression/mnist_compression.py --only lenet-300-100-spike-slab \
        --only lenet-300-100-gaussian --checkpoint-root runs/cpu-ckpt
    .venv/bin/python benchmarks/compression/spike_slab_mnist.py --checkpoint-root runs/cpu-ckpt

Writes ``docs/results/spike-slab-mnist.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import torch

import pyrocompress as pc
from pyrocompress import data as datasets
from pyrocompress.infer import LocalReparamELBO
from pyrocompress.infer.checkpoint import CHECKPOINT_NAME, safe_load
from pyrocompress.infer.training import _ELBOLoss

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import RESULTS, provenance, write_results
from mnist_compression import MNIST
from pruning_rules import load_run

RUN = "lenet-300-100-spike-slab"
TWIN = "lenet-300-100-gaussian"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@torch.no_grad()
def elbo_split(bnn, X, y, batches: int, batch_size: int, seed: int) -> dict[str, float]:
    """Negative ELBO per example, its expected NLL and KL parts (MC over minibatches)."""
    loss_fn = _ELBOLoss(bnn, LocalReparamELBO())
    n = len(X)
    g = torch.Generator().manual_seed(seed)
    total = kl = 0.0
    bnn.train()
    for b in range(batches):
        idx = torch.randperm(n, generator=g)[:batch_size]
        values = []
        for scale in (1.0, 0.5):
            torch.manual_seed(seed + b)  # the same noise at both KL weights
            values.append(loss_fn(X[idx], y[idx], idx, n, scale).item())
        total += values[0]
        kl += 2.0 * (values[0] - values[1])
    bnn.eval()
    total, kl = total / batches, kl / batches
    return {"neg_elbo": total, "kl": kl, "nll": total - kl}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint-root", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, default=MNIST)
    ap.add_argument("--batches", type=int, default=40, help="minibatches for the ELBO split")
    ap.add_argument("--quick", action="store_true", help="4 minibatches, nothing written")
    args = ap.parse_args()
    ckpt = args.checkpoint_root / RUN / CHECKPOINT_NAME
    if not ckpt.exists():
        ap.error(f"no checkpoint {ckpt}: train it with mnist_compression.py --checkpoint-root")
    splits = datasets.load_dataset("mnist", data_dir=args.data_dir, seed=0, flatten=False)
    bnn = load_run(RUN, args.checkpoint_root, splits)
    epochs = int(safe_load(ckpt, "checkpoint")["epoch"])
    prior = bnn.prior
    post = pc.Posterior(bnn)
    pip = post.inclusion_probabilities()
    layers = {}
    for name, p in pip.items():
        q = torch.quantile(p.double(), torch.tensor(QUANTILES, dtype=torch.float64))
        layers[name] = {
            "groups": p.numel(),
            "quantiles": dict(zip((str(x) for x in QUANTILES), q.tolist(), strict=True)),
            "above_half": int((p >= 0.5).sum()),
            "mean": p.double().mean().item(),
        }
    X, y = splits.train.X, splits.train.y
    batches = 4 if args.quick else args.batches
    split = elbo_split(bnn, X, y, batches, 128, seed=0)
    Xt, yt = splits.test.X, splits.test.y
    mpm = {k: v >= 0.5 for k, v in pip.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        errors = {
            "posterior_mean": bnn.point_error(Xt, yt),
            "all_on_given_inclusion": bnn.point_error(Xt, yt, conditional=True),
            "median_probability_model": bnn.point_error(Xt, yt, mpm, conditional=True),
        }
    runs = {}
    for name in (RUN, TWIN):
        path = RESULTS / f"{name}.json"
        if path.exists():
            r = json.loads(path.read_text())
            runs[name] = {
                "epochs": r["epochs"],
                "final_neg_elbo": r["history"]["loss"][-1],
                "test_error_bayes": r["test_error_bayes"],
            }
    groups = sum(L["groups"] for L in layers.values())
    attainable = None
    if TWIN in runs:
        attainable = runs[TWIN]["final_neg_elbo"] + groups * math.log(
            1.0 / prior.prior_inclusion
        ) / len(X)
    result = {
        **provenance(),
        "run": RUN,
        "epochs": epochs,
        "prior_inclusion": prior.prior_inclusion,
        "slab_scale": prior.slab_scale,
        "layers": layers,
        "elbo_split": {**split, "minibatches": batches, "batch_size": 128},
        "test_errors": errors,
        "reports": runs,
        "groups": groups,
        "train_size": len(X),
        "attainable_neg_elbo": attainable,
    }
    md = markdown(result)
    print("\n".join(md))
    if not args.quick:
        write_results("spike-slab-mnist", result, md)
    return 0


def markdown(r: dict) -> list[str]:
    lines = [
        "# Spike-and-slab on MNIST: where the posterior sits",
        "",
        f"Command: `{r['command']}` · date {r['date']} · machine: {r['machine']}. Posterior "
        f"of the `{r['run']}` run ({r['epochs']} epochs; prior inclusion "
        f"λ = {r['prior_inclusion']:g}, slab N(0, {r['slab_scale']:g}²)).",
        "",
        "| layer | groups | π: 5 % | 25 % | median | 75 % | 95 % | groups with π ≥ ½ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, L in r["layers"].items():
        q = L["quantiles"]
        lines.append(
            f"| {name} | {L['groups']} | "
            + " | ".join(f"{q[k]:.3f}" for k in q)
            + f" | {L['above_half']} |"
        )
    s = r["elbo_split"]
    e = r["test_errors"]
    lines += [
        "",
        f"Negative ELBO per training example ({s['minibatches']} minibatches of "
        f"{s['batch_size']}): {s['neg_elbo']:.3f} = expected NLL {s['nll']:.3f} + KL "
        f"{s['kl']:.3f}.",
        "",
        "| network | test error |",
        "|---|---|",
        f"| posterior mean (weights π μ) | {100 * e['posterior_mean']:.2f} % |",
        f"| every group on, weights given inclusion (μ) | "
        f"{100 * e['all_on_given_inclusion']:.2f} % |",
        f"| median-probability model (π ≥ ½, weights μ) | "
        f"{100 * e['median_probability_model']:.2f} % |",
    ]
    if r["reports"]:
        lines += ["", "| run | epochs | final negative ELBO per example | test error |"]
        lines += ["|---|---|---|---|"]
        for name, x in r["reports"].items():
            lines.append(
                f"| {name} | {x['epochs']} | {x['final_neg_elbo']:.3f} | "
                f"{100 * x['test_error_bayes']:.2f} % |"
            )
    if r["attainable_neg_elbo"] is not None and r["run"] in r["reports"]:
        final = r["reports"][r["run"]]["final_neg_elbo"]
        lines += [
            "",
            f"The same model attains {r['attainable_neg_elbo']:.3f} per example: every π → 1 "
            f"turns it into the Gaussian run plus log(1/λ) nats for each of its {r['groups']} "
            f"groups ({r['groups']} · log(1/{r['prior_inclusion']:g}) / {r['train_size']:,}). "
            f"Training ended at {final:.3f} per example.",
        ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
