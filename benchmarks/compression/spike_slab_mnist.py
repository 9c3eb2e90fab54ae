r"""Spike-and-slab on MNIST: where the trained posterior sits, and why (issues 6 and 22).

The node spike-and-slab prior (Saha, Liu & Liang 2024) with a slab N(0, 1) and the gates
marginalised in the pre-activations' moments errs far more on MNIST LeNet-300-100 than the
group priors: its inclusion probabilities collapse in the first two layers. This script

* screens variants of the prior and of the training (``--screen VARIANT --epochs E``:
  short runs of the benchmark's recipe, pruned by the automatic rule), and
* reads the trained posteriors that ``mnist_compression.py --checkpoint-root DIR`` keeps
  for the spike-and-slab runs (``--run``; by default the runs of the fix, ``AFTER``) and
  measures for each:

  - the inclusion probabilities :math:`\pi_g` by layer (quantiles, counts above 1/2);
  - the negative ELBO per training example split into its expected negative
    log-likelihood and its KL term, each estimated over training minibatches with the
    estimator ``fit`` uses (the same noise for both terms: the KL is the difference
    between the loss at KL weight 1 and at 1/2);
  - the test error of the posterior-mean network (weights :math:`\pi\mu`), of the
    network with every group switched on given inclusion (:math:`\mu`), and of the
    median-probability model (groups with :math:`\pi \ge 1/2`, weights given inclusion).

The analysis of the original run (``BEFORE``; its checkpoint is not kept) stays in the
JSON as it was measured. The Markdown compares the runs with the group priors'.

Usage (from the project root; MNIST at ../shared/data/mnist)::

    .venv/bin/python benchmarks/compression/spike_slab_mnist.py --screen fan-in-3 --epochs 15
    .venv/bin/python benchmarks/compression/mnist_compression.py \
        --only lenet-300-100-spike-slab-st-fan-in-3 --checkpoint-root runs/ss-ckpt
    .venv/bin/python benchmarks/compression/spike_slab_mnist.py --checkpoint-root runs/ss-ckpt \
        --run lenet-300-100-spike-slab-st-fan-in-3

Writes ``docs/results/spike-slab-mnist.json`` (screens under ``screens``, analyses under
``runs``) and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import cast

import torch

import pyrocompress as pc
from pyrocompress import data as datasets
from pyrocompress.infer import LocalReparamELBO
from pyrocompress.infer.checkpoint import CHECKPOINT_NAME, safe_load
from pyrocompress.infer.training import _ELBOLoss
from pyrocompress.priors import SpikeAndSlab

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import RESULTS, provenance, write_atomic, write_results
from mnist_compression import MNIST, RUNS, prior_options

#: the run of the original recipe (slab N(0, 1), gates marginalised in the moments), the
#: runs of the fix, and the group-prior runs they are compared with
BEFORE = "lenet-300-100-spike-slab"
AFTER = ("lenet-300-100-spike-slab-st-fan-in-2", "lenet-300-100-spike-slab-st-fan-in-3")
REFERENCES = ("lenet-300-100-group-nj", "lenet-300-100-group-horseshoe", "lenet-300-100-gaussian")
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


def inclusion(bnn) -> dict[str, torch.Tensor]:
    r"""The guide's inclusion probabilities :math:`\pi_g = q(\gamma_g = 1)` by layer."""
    return {
        name: torch.sigmoid(bnn.guide[name].inclusion_logit.detach())
        for name in bnn.bayesian_layers()
    }


#: screening variants: name -> (SpikeAndSlab keyword arguments, fit keyword arguments):
#: the slab N(0, 1) of the original recipe, slabs at c/sqrt(fan-in), and per-example gates
#: with straight-through gradients instead of the gates marginalised in the moments
SCREENS: dict[str, tuple[dict, dict]] = {
    "slab-1": ({"slab_scale": 1.0}, {}),
    "fan-in": ({"slab_scaling": "fan_in"}, {}),
    "fan-in-3": ({"slab_scale": 3.0, "slab_scaling": "fan_in"}, {}),
    "st": ({"estimator": "straight-through"}, {}),
    "st-fan-in-3": (
        {"slab_scale": 3.0, "slab_scaling": "fan_in", "estimator": "straight-through"},
        {},
    ),
}


def screen(name: str, epochs: int, data_dir: Path, subset: int | None) -> dict:
    """Train one screening variant for ``epochs`` (the benchmark's recipe otherwise) and
    prune it with the automatic rule; return its errors, compression and π by layer."""
    from pyrocompress.cli.app import build_model
    from pyrocompress.priors import SpikeAndSlab
    from pyrocompress.rng import seeded

    prior_kw, fit_kw = SCREENS[name]
    splits = datasets.load_dataset("mnist", data_dir=data_dir, seed=0, flatten=False)
    train = (splits.train.X, splits.train.y)
    if subset:
        train = (train[0][:subset], train[1][:subset])
    with seeded(0):
        net = build_model("lenet-300-100", tuple(splits.train.X.shape[1:]), splits.num_classes)
    bnn = pc.bayesianize(net, SpikeAndSlab(**prior_kw), seed=0)
    history = pc.fit(
        bnn, train, epochs=epochs, batch_size=128, lr=1e-3, validation=splits.val,
        seed=0, progress=False, tol=None, **fit_kw,
    )  # fmt: skip
    val = (splits.val.X, splits.val.y)
    test = (splits.test.X, splits.test.y)
    result = pc.prune(bnn, "auto", validation=val, test=test, tolerance=0.003, score="snr")
    r = result.report
    pip = inclusion(bnn)
    quantiles = {
        k: torch.quantile(p.double(), torch.tensor(QUANTILES, dtype=torch.float64)).tolist()
        for k, p in pip.items()
    }
    out = {
        "variant": name,
        "prior": prior_kw,
        "fit": fit_kw,
        "epochs": epochs,
        "train_size": len(train[0]),
        "final_loss": history.loss[-1],
        "val_error_by_epoch": history.val_metric,
        "test_error_bayes": r["test_error_bayes"],
        "test_error_compact": r["test_error_compact"],
        "architecture_after": r["architecture_after"],
        "compression_rate_bits": r["compression_rate_bits"],
        "compression_rate_params": r["compression_rate_params"],
        "bits_per_layer": r["bits_per_layer"],
        "pi_quantiles": quantiles,
        "pi_above_half": {k: int((p >= 0.5).sum()) for k, p in pip.items()},
        "seconds": sum(history.seconds),
    }
    print(json.dumps({k: v for k, v in out.items() if k != "val_error_by_epoch"}), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--screen",
        choices=list(SCREENS),
        action="append",
        help="train these short variants instead (results under 'screens')",
    )
    ap.add_argument("--epochs", type=int, default=15, help="epochs of a screening run")
    ap.add_argument("--subset", type=int, help="train a screening run on the first N examples")
    ap.add_argument("--checkpoint-root", type=Path)
    ap.add_argument("--run", choices=list(RUNS), action="append", help="runs to analyse")
    ap.add_argument("--data-dir", type=Path, default=MNIST)
    ap.add_argument("--batches", type=int, default=40, help="minibatches for the ELBO split")
    ap.add_argument("--quick", action="store_true", help="4 minibatches, nothing written")
    args = ap.parse_args()
    if args.screen:
        return run_screens(args)
    if args.checkpoint_root is None:
        ap.error("--checkpoint-root is required (the folder of the trained runs)")
    path = RESULTS / "spike-slab-mnist.json"
    result = _migrate(json.loads(path.read_text())) if path.exists() else {}
    splits = datasets.load_dataset("mnist", data_dir=args.data_dir, seed=0, flatten=False)
    for run in args.run or AFTER:
        ckpt = args.checkpoint_root / run / CHECKPOINT_NAME
        if not ckpt.exists():
            ap.error(f"no checkpoint {ckpt}: train it with mnist_compression.py --checkpoint-root")
        analysis = analyse(run, args.checkpoint_root, splits, 4 if args.quick else args.batches)
        result.setdefault("runs", {})[run] = {**provenance(), **analysis}
    md = markdown(result)
    print("\n".join(md))
    if not args.quick:
        write_results("spike-slab-mnist", result, md)
    return 0


def _migrate(result: dict) -> dict:
    """Move the analysis of the first version of this script (one run, at the top level of
    the JSON) into ``runs``, keeping its command, date and machine."""
    if "run" not in result:
        return result
    keys = [k for k in result if k not in ("runs", "screens")]
    old = {k: result.pop(k) for k in keys}
    result.setdefault("runs", {})[old["run"]] = old
    return result


def load_run_with_prior(name: str, root: Path, splits) -> pc.BayesianNetwork:
    """The trained network of run ``name`` with its prior's options (``prior_options``)."""
    from pyrocompress.cli.app import build_model
    from pyrocompress.priors import get_prior

    model, key = RUNS[name][:2]
    prior = type(get_prior(key))(**prior_options(name))
    net = build_model(model, tuple(splits.train.X.shape[1:]), splits.num_classes)
    bnn = pc.bayesianize(net, prior, seed=0)
    state = safe_load(root / name / CHECKPOINT_NAME, "checkpoint")["network"]
    bnn.load_state_dict(state)
    return bnn.eval()


def analyse(run: str, root: Path, splits, batches: int) -> dict:
    """π by layer, the ELBO split, test errors and the run's report figures."""
    bnn = load_run_with_prior(run, root, splits)
    epochs = int(safe_load(root / run / CHECKPOINT_NAME, "checkpoint")["epoch"])
    prior = cast(SpikeAndSlab, bnn.distinct_priors()[0])
    pip = inclusion(bnn)
    layers = {}
    for name, p in pip.items():
        q = torch.quantile(p.double(), torch.tensor(QUANTILES, dtype=torch.float64))
        layers[name] = {
            "groups": p.numel(),
            "quantiles": dict(zip((str(x) for x in QUANTILES), q.tolist(), strict=True)),
            "above_half": int((p >= 0.5).sum()),
            "mean": p.double().mean().item(),
            "slab_sd": prior.slab_sd(bnn.guide[name].spec),
        }
    X, y = splits.train.X, splits.train.y
    # the input pixels no training image lights: no likelihood gradient reaches their
    # gates, which the KL alone moves
    first = next(iter(pip))
    dead = (X.flatten(1) == 0).all(0)
    inputs = {
        kind: {
            "count": int(sel.sum()),
            "quantiles": torch.quantile(
                pip[first][sel].double(), torch.tensor(QUANTILES, dtype=torch.float64)
            ).tolist(),
        }
        for kind, sel in (("never_lit", dead), ("lit", ~dead))
    }
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
    for name in (run, TWIN):
        path = RESULTS / f"{name}.json"
        if path.exists():
            r = json.loads(path.read_text())
            runs[name] = {
                "epochs": r["epochs"],
                "final_neg_elbo": r["history"]["loss"][-1],
                "test_error_bayes": r["test_error_bayes"],
            }
    groups = sum(L["groups"] for L in layers.values())
    return {
        "run": run,
        "epochs": epochs,
        "prior": repr(prior),
        "prior_inclusion": prior.prior_inclusion,
        "slab_scale": prior.slab_scale,
        "layers": layers,
        "first_layer_inputs": inputs,
        "elbo_split": {**split, "minibatches": batches, "batch_size": 128},
        "test_errors": errors,
        "reports": runs,
        "groups": groups,
        "train_size": len(X),
    }


def run_screens(args) -> int:
    """Run the ``--screen`` variants and merge them into the JSON's ``screens`` entry."""
    path = RESULTS / "spike-slab-mnist.json"
    for name in args.screen:
        out = {**provenance(), **screen(name, args.epochs, args.data_dir, args.subset)}
        if args.quick:
            continue
        # re-read before each write: other screening processes may have added theirs
        result = json.loads(path.read_text()) if path.exists() else {}
        key = f"{name}@{args.epochs}" + (f"/{args.subset}" if args.subset else "")
        result.setdefault("screens", {})[key] = out
        write_atomic(path, json.dumps(result, indent=2) + "\n")
    return 0


def _describe(run: str, key: str) -> str:
    """The run's prior in words: its key, and the spike-and-slab options that differ."""
    if key != "spike-slab":
        return key
    options = prior_options(run)
    scale = options.get("slab_scale", 1.0)
    slab = (
        f"N(0, ({scale:g}/√fan-in)²)"
        if options.get("slab_scaling") == "fan_in"
        else f"N(0, {scale:g}²)"
    )
    estimator = options.get("estimator", "moments")
    gates = (
        "per-example gates, straight-through gradients"
        if estimator == "straight-through"
        else "gates marginalised in the moments"
    )
    return f"spike-slab: slab {slab}, {gates}"


def _report(run: str) -> dict | None:
    path = RESULTS / f"{run}.json"
    return json.loads(path.read_text()) if path.exists() else None


def markdown(result: dict) -> list[str]:
    runs = result.get("runs", {})
    lines = [
        "# Spike-and-slab on MNIST: where the posterior sits, before and after",
        "",
        "LeNet-300-100 on MNIST with the node spike-and-slab prior (prior inclusion λ = 0.1)"
        ", against the group priors (`docs/results/lenet-300-100-*.json`, "
        "`benchmarks/compression/mnist_compression.py`: automatic pruning rule, tolerance "
        "0.3 points of validation error, bits from the posterior variances).",
        "",
        "| run | prior | epochs | test error: posterior mean | compact | compression (bits) "
        "| (params) | architecture after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in (BEFORE, *AFTER, *REFERENCES):
        r = _report(run)
        if r is None:
            continue
        prior = _describe(run, r["prior"])
        lines.append(
            f"| `{run}` | {prior} | {r['epochs']} | {100 * r['test_error_bayes']:.2f} % | "
            f"{100 * r['test_error_compact']:.2f} % | {r['compression_rate_bits']:.1f}× | "
            f"{r['compression_rate_params']:.1f}× | {r['architecture_after']} |"
        )
    for a in runs.values():
        lines += _run_markdown(a)
    screens = result.get("screens", {})
    if screens:
        lines += [
            "",
            "## Screening runs",
            "",
            "Each trains LeNet-300-100 for the epochs shown (the recipe above, the cosine "
            "schedule over those epochs) and prunes it with the automatic rule "
            "(`spike_slab_mnist.py --screen VARIANT --epochs E`).",
            "",
            "| variant | prior options | epochs | final loss | test error: posterior mean | "
            "compact | compression (bits) | π median: layer 1 | 3 | 5 | date |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for x in screens.values():
            med = [q[2] for q in x["pi_quantiles"].values()]
            opts = ", ".join(f"{k}={v!r}" for k, v in {**x["prior"], **x["fit"]}.items())
            lines.append(
                f"| {x['variant']} | {opts} | {x['epochs']} | {x['final_loss']:.3f} | "
                f"{100 * x['test_error_bayes']:.2f} % | {100 * x['test_error_compact']:.2f} % | "
                f"{x['compression_rate_bits']:.1f}× | "
                + " | ".join(f"{m:.3f}" for m in med)
                + f" | {x['date']} |"
            )
    return lines


def _run_markdown(r: dict) -> list[str]:
    prior = r.get("prior") or (f"λ = {r['prior_inclusion']:g}, slab N(0, {r['slab_scale']:g}²)")
    lines = [
        "",
        f"## `{r['run']}`",
        "",
        f"Command: `{r['command']}` · date {r['date']} · machine: {r['machine']}. Posterior "
        f"after {r['epochs']} epochs; prior {prior}.",
        "",
        "| layer | groups | slab sd | π: 5 % | 25 % | median | 75 % | 95 % | groups with π ≥ ½ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, L in r["layers"].items():
        q = L["quantiles"]
        sd = L.get("slab_sd", r.get("slab_scale"))
        lines.append(
            f"| {name} | {L['groups']} | {sd:.3g} | "
            + " | ".join(f"{q[k]:.3f}" for k in q)
            + f" | {L['above_half']} |"
        )
    inputs = r.get("first_layer_inputs")
    if inputs:
        lines += [
            "",
            "First layer, π by input pixel: "
            + "; ".join(
                f"{kind.replace('_', ' ')} ({x['count']} pixels): median {x['quantiles'][2]:.3f}, "
                f"5–95 % {x['quantiles'][0]:.3f}–{x['quantiles'][4]:.3f}"
                for kind, x in inputs.items()
            )
            + " (never lit: zero in every training image).",
        ]
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
    attainable = r.get("attainable_neg_elbo")
    if attainable is not None and r["run"] in r["reports"]:
        final = r["reports"][r["run"]]["final_neg_elbo"]
        lines += [
            "",
            f"The same model attains {attainable:.3f} per example: every π → 1 "
            f"turns it into the Gaussian run plus log(1/λ) nats for each of its {r['groups']} "
            f"groups ({r['groups']} · log(1/{r['prior_inclusion']:g}) / {r['train_size']:,}). "
            f"Training ended at {final:.3f} per example.",
        ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
