"""Wall time of ``pyrocompress select`` on a small table, and its selection against a 10× run.

Issue 22's "fast on small data" check. The table is scikit-learn's diabetes data (442
rows, 10 features, bundled with scikit-learn, no download) with 50 added N(0, 1) noise
columns (``numpy.random.default_rng(--data-seed)``), written as a CSV in a temporary
folder. ``pyrocompress select --csv ... --target target --quiet --out DIR`` runs through
the installed command-line entry point in a fresh process (timed from its start to its
exit, wall clock: Python start-up, imports, fit, ``selection.json`` and ``pip.png``):

* **default**: the default budget (full batches, the convergence stop with ``tol`` 5e-3,
  at most 4000 steps), ``--repeats`` times;
* **10× longer**: ``--max-steps 40000 --tol off``: ten times the default's maximum
  number of steps, every one of them run (no convergence stop), with the KL warm-up and
  the pre-training ten times longer too (each is a tenth of the maximum) and the
  learning rate cosine-annealed over the whole run — so at least ten times the steps
  and the default's own ceiling times ten.

The selections (median-probability rule) are compared, as are the inclusion
probabilities. For reference, scikit-learn's ``LassoCV`` (5 folds, standardised
features, features with a non-zero coefficient) runs in this process on the same data;
its time is the fit alone. Unless ``--skip-lr``, the default budget also runs through
the Python API with the full-batch learning rate 0.01, 0.03 (the default) and 0.05, the
comparison behind ``FULL_BATCH_LR``. Unless ``--skip-optimum``, the default budget and the
10× run also go through the Python API from two initialisations (``random_state`` 0 and
1), two fits side by side, and each fitted guide's loss, −ELBO per example at full KL
weight, is estimated from 200 draws of the local reparametrisation (with its Monte-Carlo
standard error): whether the default has reached the optimum the long run finds, and
whether the long run's optimum, and so its selection, is the same from either start.

Writes ``docs/results/select-speed.json`` and ``.md`` (nothing with ``--quick``, which
runs the default once and a 2× run).

Usage (from the project root)::

    .venv/bin/python benchmarks/selection/select_speed.py
    .venv/bin/python benchmarks/selection/select_speed.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LassoCV
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Bunch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import provenance, write_results  # noqa: E402

NOISE = 50
#: more runs for reference: the budget before the rule (12 000 minibatch steps of 256 rows,
#: lr 0.01, cosine; with one torch thread, as the new default, since two threads on a
#: loaded 2-core machine are many times slower), and the default with a ten-times smaller
#: tol (same maximum)
OTHER_RUNS = {
    "previous default (12 000 minibatch steps)": (["--epochs", "6000"], {"OMP_NUM_THREADS": "1"}),
    "default with tol / 10": (["--tol", "0.0005"], {}),
}


def table(seed: int) -> pd.DataFrame:
    """Diabetes (10 features) + ``NOISE`` N(0, 1) columns, target last."""
    data = cast(Bunch, load_diabetes(as_frame=True))
    frame = data.data.copy()
    rng = np.random.default_rng(seed)
    for j in range(NOISE):
        frame[f"noise{j}"] = rng.normal(size=len(frame))
    frame["target"] = data.target
    return frame


def command() -> list[str]:
    """The ``pyrocompress`` console script beside this interpreter, else ``-m pyrocompress``."""
    script = Path(sys.executable).parent / "pyrocompress"
    if script.exists():
        return [str(script)]
    found = shutil.which("pyrocompress")
    return [found] if found else [sys.executable, "-m", "pyrocompress"]


def run_cli(csv: Path, out: Path, extra: list[str], env: dict | None = None) -> dict:
    """Run ``pyrocompress select`` in a fresh process; wall time, selection, epochs.

    ``env``: variables added to the environment of the process.
    """
    argv = [*command(), "select", "--csv", str(csv), "--target", "target", "--quiet"]
    argv += ["--out", str(out), *extra]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    selection = json.loads((out / "selection.json").read_text())
    summary = next(line for line in done.stdout.splitlines() if line.startswith("prior "))
    return {
        "argv": ["pyrocompress", *argv[len(command()) :]],
        "env": env or {},
        "wall_seconds": round(seconds, 2),
        "fit_seconds": round(selection["seconds"], 2),
        "summary": summary,
        "selected": selection["selected"],
        "pip": selection["inclusion_probabilities"],
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def lasso(frame: pd.DataFrame) -> dict:
    """LassoCV on the standardised features: time of the fit, the non-zero coefficients."""
    X = StandardScaler().fit_transform(frame.drop(columns="target").to_numpy())
    y = frame["target"].to_numpy()
    start = time.perf_counter()
    model = LassoCV(cv=5, random_state=0).fit(X, y)
    seconds = time.perf_counter() - start
    names = list(frame.drop(columns="target").columns)
    return {
        "seconds": round(seconds, 3),
        "selected": [n for n, c in zip(names, model.coef_) if c != 0],
    }


def lr_study(frame: pd.DataFrame, rates: list[float]) -> list[dict]:
    """The default budget through the Python API with each full-batch learning rate."""
    from pyrocompress.selection.estimator import FeatureSelector

    X, y = frame.drop(columns="target"), frame["target"].to_numpy()
    rows = []
    for lr in rates:
        sel = FeatureSelector(lr=lr, random_state=0).fit(X, y)
        h = sel.history_
        rows.append(
            {
                "lr": lr,
                "epochs": len(h),
                "converged_at": h.converged_at,
                "final_loss": round(h.loss[-1], 4),
                "fit_seconds": round(sel.fit_seconds_, 1),
                "selected": list(np.asarray(X.columns)[sel.support_]),
            }
        )
        print(rows[-1], flush=True)
    return rows


def optimum_fit(cfg: dict) -> dict:
    """One API fit of ``cfg`` and its loss, −ELBO / n at full KL weight (200 draws)."""
    import torch

    from pyrocompress.infer import elbo_estimate
    from pyrocompress.selection.estimator import FeatureSelector

    frame = table(cfg.pop("data_seed"))
    X, y = frame.drop(columns="target"), frame["target"].to_numpy()
    sel = FeatureSelector(**cfg).fit(X, y)
    bnn = sel.module_
    Xt = torch.as_tensor((X.to_numpy() - sel.x_mean_) / sel.x_scale_, dtype=torch.float32)
    yt = torch.as_tensor((y - sel.y_mean_) / sel.y_scale_, dtype=torch.float32)
    gen = torch.Generator().manual_seed(12345)
    seed = int(torch.randint(2**31, (1,), generator=gen))
    estimate = elbo_estimate(bnn, (Xt, yt), num_particles=200, seed=seed)  # per example
    return {
        **cfg,
        "epochs": len(sel.history_),
        "fit_seconds": round(sel.fit_seconds_, 1),
        "loss": round(-estimate.mean, 4),
        "loss_se": round(estimate.se, 4),
        "selected": list(np.asarray(X.columns)[sel.support_]),
        "pip": dict(zip(X.columns, np.round(sel.inclusion_probabilities_, 4).tolist())),
    }


def optimum_study(data_seed: int, factor: int) -> list[dict]:
    """The default and the ``factor``× run from random_state 0 and 1, two processes."""
    from concurrent.futures import ProcessPoolExecutor

    long = {"max_steps": factor * 4000, "tol": None}
    cfgs = [
        {"data_seed": data_seed, "random_state": seed, **budget}
        for budget in ({}, long)
        for seed in (0, 1)
    ]
    with ProcessPoolExecutor(2) as pool:
        rows = list(pool.map(optimum_fit, cfgs))
    for row in rows:
        print({k: v for k, v in row.items() if k != "pip"}, flush=True)
    return rows


def markdown(result: dict) -> list[str]:
    """The results page."""
    d, long, las = result["default"], result["long"], result["lasso"]
    walls = [r["wall_seconds"] for r in d]
    lines = [
        "# `pyrocompress select` on a small table: time and selection",
        "",
        f"Command: `{result['provenance']['command']}`  ",
        f"Date: {result['provenance']['date']}; machine: {result['provenance']['machine']}; "
        f"commit {result['provenance']['commit']}.  ",
        f"Data: scikit-learn's diabetes (442 rows, 10 features) + {NOISE} N(0,1) noise "
        f"columns (seed {result['data_seed']}). Load average (1 min) before the runs: "
        f"{result['load_average_before']} on {os.cpu_count()} cores (a shared machine).  ",
        f"Network: the selector's default, {10 + NOISE} inputs → 50 → 20 → 1 with the "
        "spike-and-slab prior. Issue 22's target: at most 20 s, and the same selection as "
        "the 10× longer run.",
        "",
        "| run | command options | wall s (process) | fit s | epochs | selected |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(d):
        opts = " ".join(r["argv"][9:]) or "(defaults)"
        lines.append(
            f"| default #{i + 1} | `{opts}` | {r['wall_seconds']:.1f} | {r['fit_seconds']:.1f} "
            f"| {r['summary'].split(', ')[2]} | {', '.join(r['selected'])} |"
        )
    opts = " ".join(long["argv"][9:])
    lines += [
        f"| {result['long_factor']}× longer | `{opts}` | {long['wall_seconds']:.1f} | "
        f"{long['fit_seconds']:.1f} | {long['summary'].split(', ')[2]} | "
        f"{', '.join(long['selected'])} |",
        *(
            f"| {name} | `{' '.join(r['argv'][9:])}`"
            f"{' ' + ' '.join(f'{k}={v}' for k, v in r['env'].items()) if r['env'] else ''} | "
            f"{r['wall_seconds']:.1f} | "
            f"{r['fit_seconds']:.1f} | {r['summary'].split(', ')[2]} | "
            f"{', '.join(r['selected'])} |"
            for name, r in result.get("others", {}).items()
        ),
        f"| LassoCV (5 folds) | fit only | | {las['seconds']:.2f} | | "
        f"{', '.join(las['selected'])} ({len(las['selected'])} features) |",
        "",
        f"Default budget: median wall time **{statistics.median(walls):.1f} s** "
        f"(range {min(walls):.1f}–{max(walls):.1f} s over {len(walls)} runs), from the "
        "start of the process to its exit. Same selection as the "
        f"{result['long_factor']}× longer run: **{result['same_selection']}**; largest "
        f"difference of an inclusion probability between the first default run and the "
        f"long run: {result['max_pip_difference']:.3f}.",
        "",
        f"The {result['long_factor']}× longer run: `--max-steps "
        f"{result['long_factor'] * 4000} --tol off` — {result['long_factor']} times the "
        "default's maximum number of full-batch steps, all of them run (no convergence "
        "stop), with the warm-up and pre-training (each a tenth of the maximum) "
        f"{result['long_factor']} times longer and the learning rate cosine-annealed over "
        "the whole run.",
    ]
    if result.get("lr_study"):
        lines += [
            "",
            "## Full-batch learning rate (default budget, Python API)",
            "",
            "| lr | epochs | converged at | final loss | fit s | selected |",
            "|---|---|---|---|---|---|",
        ]
        for r in result["lr_study"]:
            lines.append(
                f"| {r['lr']:g} | {r['epochs']} | {r['converged_at']} | {r['final_loss']} | "
                f"{r['fit_seconds']} | {', '.join(r['selected'])} |"
            )
    if result.get("optimum"):
        rows = result["optimum"]
        # the features whose decision differs between the runs, or whose PIP is near 1/2
        names = [
            k
            for k in rows[0]["pip"]
            if len({r["pip"][k] >= 0.5 for r in rows}) > 1
            or any(0.2 <= r["pip"][k] <= 0.8 for r in rows)
        ]
        lines += [
            "",
            "## Has the default reached the optimum? (Python API, two initialisations)",
            "",
            "Loss: −ELBO per example at full KL weight, mean of 200 draws ± its Monte-Carlo "
            "standard error; lower is better. PIPs of the features whose decision differs "
            "between these runs or whose PIP lies in [0.2, 0.8].",
            "",
            "| budget | random_state | epochs | loss | "
            + " | ".join(f"PIP {k}" for k in names)
            + " | selected |",
            "|---|---|---|---|" + "---|" * len(names) + "---|",
        ]
        for r in rows:
            budget = (
                "default"
                if r.get("max_steps") is None
                else f"`max_steps={r['max_steps']}, tol=None`"
            )
            lines.append(
                f"| {budget} | {r['random_state']} | {r['epochs']} | "
                f"{r['loss']:.4f} ± {r['loss_se']:.4f} | "
                + " | ".join(f"{r['pip'][k]:.3f}" for k in names)
                + f" | {', '.join(r['selected'])} |"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="default-budget runs (3)")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--skip-lr", action="store_true", help="no learning-rate comparison")
    parser.add_argument(
        "--skip-others",
        action="store_true",
        help="not the reference runs (the previous 12 000-step budget, tol / 10): ~8 min less",
    )
    parser.add_argument(
        "--skip-optimum",
        action="store_true",
        help="not the API fits from two initialisations with their losses (~4 min on 2 cores)",
    )
    parser.add_argument("--quick", action="store_true", help="one default run, a 2× run")
    parser.add_argument(
        "--from-json",
        action="store_true",
        help="run nothing: rewrite the page from docs/results/select-speed.json",
    )
    args = parser.parse_args()
    if args.from_json:
        saved = Path(__file__).resolve().parents[2] / "docs" / "results" / "select-speed.json"
        if not saved.exists():
            parser.error(f"--from-json: {saved} does not exist; run the script without it first")
        result = json.loads(saved.read_text())
        write_results("select-speed", result, markdown(result))
        return 0
    factor = 2 if args.quick else 10
    frame = table(args.data_seed)
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "diabetes_noise.csv"
        frame.to_csv(csv, index=False)
        default = []
        for i in range(1 if args.quick else args.repeats):
            default.append(run_cli(csv, Path(tmp) / f"default{i}", []))
            print("default", default[-1]["wall_seconds"], default[-1]["selected"], flush=True)
        others = {}
        for i, (name, (extra, env)) in enumerate(OTHER_RUNS.items()):
            if not (args.quick or args.skip_others):
                others[name] = run_cli(csv, Path(tmp) / f"other{i}", extra, env)
                print(name, others[name]["wall_seconds"], others[name]["selected"], flush=True)
        extra = ["--max-steps", str(factor * 4000), "--tol", "off"]
        long = run_cli(csv, Path(tmp) / "long", extra)
        print("long", long["wall_seconds"], long["selected"], flush=True)
    las = lasso(frame)
    rates = [] if args.skip_lr or args.quick else [0.01, 0.03, 0.05]
    result = {
        "provenance": provenance(),
        "data_seed": args.data_seed,
        "load_average_before": load_before,
        "default": default,
        "long": long,
        "others": others,
        "long_factor": factor,
        "same_selection": all(sorted(r["selected"]) == sorted(long["selected"]) for r in default),
        "max_pip_difference": max(abs(default[0]["pip"][k] - long["pip"][k]) for k in long["pip"]),
        "lasso": las,
        "lr_study": lr_study(frame, rates),
        "optimum": [] if args.skip_optimum or args.quick else optimum_study(args.data_seed, factor),
    }
    print("\n".join(markdown(result)))
    if not args.quick:
        write_results("select-speed", result, markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
