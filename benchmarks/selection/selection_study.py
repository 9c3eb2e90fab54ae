"""Replicated feature-selection study: three group priors against LassoCV, ARDRegression and
the L1-penalised logistic regression.

Designs (``pyrocompress.data``): Bai, Song & Cheng (2020), n = 3000, p = 200, relevant
x1..x5; Sun, Song & Liang (2021) regression with pairwise-correlated inputs, relevant
x1..x5, at ``--sun-n`` / ``--sun-p`` (the paper: n = 10,000, p = 2,000; the default here is
the Bai size, so that both designs fit this CPU's budget — the page says which was run),
and its classification variant (y = 1 if e^{x1} + x2² + 5 sin(x3 x4) − 3 > 0; relevant
x1..x4, x5 is a null there), at the same size.
Each replication r draws a training set (seed r) and a test set of 1,000 (seed 10,000 + r).

Methods: ``FeatureSelector`` with the spike-and-slab, group horseshoe and group
normal-Jeffreys priors (every other setting at its default; median-probability rule), and
scikit-learn's ``LassoCV`` (non-zero coefficients) and ``ARDRegression`` (coefficients
whose posterior precision stays below its 1e4 threshold, i.e. the features it keeps).
Recorded per fit: TPR, FPR, FDR, MCC against the truth, and the test RMSE — for the
selectors, of the posterior-mean network restricted to the selected inputs
(median-probability model, ``conditional=True``); for the linear methods, of their own
prediction. On the classification design the selectors infer the task from the 0/1
target (every setting at its default), the baseline is ``LogisticRegressionCV`` with the L1
penalty (non-zero coefficients), and the test error rate replaces the RMSE.

Writes ``docs/results/selection-study.json`` and ``.md``.

Usage (from the project root)::

    .venv/bin/python benchmarks/selection/selection_study.py --jobs 2             # 10 replications
    .venv/bin/python benchmarks/selection/selection_study.py --quick              # tiny, no files
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import ARDRegression, LassoCV, LogisticRegressionCV

from pyrocompress.data import simulate_bai2020, simulate_sun2021, simulate_sun2021_classification
from pyrocompress.selection import selection_metrics
from pyrocompress.selection.estimator import FeatureSelector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import RESULTS, provenance, write_results

PRIORS = ("spike-slab", "group-horseshoe", "group-nj")
METHODS = (*PRIORS, "LassoCV", "ARDRegression")
#: classification designs: the priors against the L1-penalised logistic regression
CLASSIFICATION = {"sun2021-classification": simulate_sun2021_classification}
CLASSIFICATION_METHODS = (*PRIORS, "L1 LogisticRegressionCV")
SIMULATORS = {"bai2020": simulate_bai2020, "sun2021": simulate_sun2021, **CLASSIFICATION}
#: the relevant inputs of each design (x1..x5; the classification variant uses x1..x4)
TRUTH = {"bai2020": list(range(5)), "sun2021": list(range(5)),
         "sun2021-classification": list(range(4))}  # fmt: skip
N_TEST = 1000


def _data(design: str, n: int, p: int, seed: int):
    X, y = SIMULATORS[design](n, p, seed=seed)
    return X.numpy().astype(np.float64), y.numpy().astype(np.float64)


def _selector_test(sel: FeatureSelector, X: np.ndarray, y: np.ndarray) -> float:
    """Test RMSE (regression) or error rate (classification) of the selected model: the
    posterior-mean network restricted to the selected inputs."""
    bnn = sel.module_
    first = next(iter(bnn.bayesian_layers()))
    x = torch.as_tensor((X - sel.x_mean_) / sel.x_scale_, dtype=torch.float32)
    mask = {first: torch.as_tensor(sel.support_)}
    out = bnn.predict_point(x, mask, conditional=True).double()
    if sel.task_ == "classification":
        labels = (out.squeeze(-1) > 0).long() if out.shape[-1] == 1 else out.argmax(-1)
        return float(np.mean(sel.classes_[labels.numpy()] != y))
    pred = out.squeeze(-1).numpy() * sel.y_scale_ + sel.y_mean_
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def one_fit(design: str, method: str, rep: int, n: int, p: int, epochs: int | None) -> dict:
    torch.set_num_threads(1)
    X, y = _data(design, n, p, rep)
    Xt, yt = _data(design, N_TEST, p, 10_000 + rep)
    start = time.perf_counter()
    if method in PRIORS:
        sel = FeatureSelector(prior=method, epochs=epochs, random_state=rep).fit(X, y)
        chosen = sel.get_support(indices=True).tolist()
        rmse = _selector_test(sel, Xt, yt)
    elif method == "L1 LogisticRegressionCV":
        est = LogisticRegressionCV(
            Cs=10, cv=5, l1_ratios=(1.0,), solver="liblinear", random_state=rep
        ).fit(X, y)
        chosen = np.flatnonzero(est.coef_[0]).tolist()
        rmse = float(np.mean(est.predict(Xt) != yt))
    else:
        if method == "LassoCV":
            est = LassoCV(cv=5, random_state=rep).fit(X, y)
            chosen = np.flatnonzero(est.coef_).tolist()
        else:
            est = ARDRegression().fit(X, y)
            chosen = np.flatnonzero(est.lambda_ < est.threshold_lambda).tolist()
        rmse = float(np.sqrt(np.mean((est.predict(Xt) - yt) ** 2)))
    return {
        "design": design,
        "method": method,
        "rep": rep,
        "selected": chosen,
        "rmse": rmse,
        "seconds": time.perf_counter() - start,
        **selection_metrics(chosen, TRUTH[design], p),
    }


def summarise(fits: list[dict]) -> dict:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for design in sorted({f["design"] for f in fits}):
        out[design] = {}
        for method in (*METHODS, *CLASSIFICATION_METHODS[len(PRIORS) :]):
            rows = [f for f in fits if f["design"] == design and f["method"] == method]
            if not rows:
                continue
            row = {"fits": len(rows)}
            for key in ("tpr", "fpr", "fdr", "mcc", "rmse", "seconds"):
                vals = [r[key] for r in rows if not math.isnan(r[key])]
                row[key] = statistics.mean(vals) if vals else math.nan
                row[key + "_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
            row["exact"] = sum(sorted(r["selected"]) == TRUTH[design] for r in rows)
            out[design][method] = row
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--designs", nargs="+", default=list(SIMULATORS),
                    choices=list(SIMULATORS))  # fmt: skip
    ap.add_argument("--n", type=int, default=3000, help="Bai design size")
    ap.add_argument("--p", type=int, default=200)
    ap.add_argument("--sun-n", type=int, default=3000)
    ap.add_argument("--sun-p", type=int, default=200)
    ap.add_argument("--epochs", type=int, help="selector epochs (default: its own budget)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="2 reps, n=300, p=20, 20 epochs")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.n, args.p, args.sun_n, args.sun_p, args.epochs = 2, 300, 20, 300, 20, 20
    sun = (args.sun_n, args.sun_p)
    sizes = {"bai2020": (args.n, args.p), "sun2021": sun, "sun2021-classification": sun}
    jobs = [
        (d, m, r, *sizes[d], args.epochs)
        for d in args.designs
        for r in range(args.reps)
        for m in (CLASSIFICATION_METHODS if d in CLASSIFICATION else METHODS)
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        fits = list(pool.map(one_fit, *zip(*jobs, strict=True)))
    run = {**provenance(), "reps": args.reps}
    designs = {
        d: {**run, "size": list(sizes[d]), "summary": summarise(fits)[d],
            "fits": [f for f in fits if f["design"] == d]}
        for d in args.designs
    }  # fmt: skip
    if not args.quick:  # designs run by other commands keep their rows
        designs = {**previous_designs(), **designs}
    lines = [
        "# Replicated feature-selection study",
        "",
        "Test RMSE (regression) or error rate (classification) on 1,000 fresh points; mean "
        "(standard deviation) over replications. Each design gives the command that ran it.",
    ]
    for design in [d for d in SIMULATORS if d in designs]:
        entry = designs[design]
        metric = "error rate" if design in CLASSIFICATION else "RMSE"
        n, p = entry["size"]
        lines += [
            "",
            f"## {design}",
            "",
            f"n = {n}, p = {p}, {entry['reps']} replications. Command: `{entry['command']}` · "
            f"date {entry['date']} · commit {entry.get('commit', 'not recorded')} · machine: "
            f"{entry['machine']}",
            "",
            f"| method | exact x1…x{len(TRUTH[design])} | TPR | FPR | MCC | test {metric} "
            "| seconds / fit |",
            "|---|---|---|---|---|---|---|",
        ]
        for method, r in entry["summary"].items():
            lines.append(
                f"| {method} | {r['exact']} / {r['fits']} | {r['tpr']:.2f} ({r['tpr_sd']:.2f}) "
                f"| {r['fpr']:.4f} ({r['fpr_sd']:.4f}) | {r['mcc']:.2f} ({r['mcc_sd']:.2f}) "
                f"| {r['rmse']:.3f} ({r['rmse_sd']:.3f}) | {r['seconds']:.0f} |"
            )
    print("\n".join(lines))
    if args.quick:
        return 0
    write_results("selection-study", {"designs": designs}, lines)
    return 0


def previous_designs() -> dict:
    """The designs of ``docs/results/selection-study.json``, each with its own provenance
    (a file from before designs were kept apart holds one command for all of them)."""
    path = RESULTS / "selection-study.json"
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    if "designs" in old:
        return old["designs"]
    run = {k: old[k] for k in ("command", "date", "machine") if k in old}
    return {
        d: {**run, "reps": old["reps"], "size": list(old["sizes"][d]), "summary": summary,
            "fits": [f for f in old["fits"] if f["design"] == d]}
        for d, summary in old["summary"].items()
    }  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
