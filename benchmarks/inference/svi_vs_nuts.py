r"""SVI against NUTS: inclusion probabilities of one model, four problems, two priors, two guides.

Issue 22, item 4 ("agreement with the gold standard"). For each problem and each prior that
NUTS can sample and that has inclusion probabilities (group horseshoe, regularised
horseshoe), the model ``bayesianize(net, prior, likelihood)`` is

* fitted by SVI (:func:`pyrocompress.fit`, local reparametrisation, full batch) twice,
  with the mean-field guide and with the gate-conditional guide (``guide="conditional"``,
  :mod:`pyrocompress.priors.conditional`);
* sampled once by NUTS (:func:`pyrocompress.infer.run_nuts`, Pyro's NUTS on the same
  program). NUTS does not depend on the guide, so its one run is shared by both guides.

Every posterior is summarised by the same functional, the posterior inclusion probability
of each input (``Posterior.inclusion_probabilities``)

.. math:: \mathrm{PIP}_j = P(\kappa_j < \tfrac12 \mid \mathcal D) = P(|g_j| > t_j \mid \mathcal D),

with the threshold :math:`t_j` from the Fisher information that ``fit`` records (for the
linear models it is the same for both guides; for the logistic model and the network it is
taken at each guide's posterior-mean network), estimated by the Rao-Blackwellised average
over draws of the effective weights: the guide's draws for SVI, the NUTS draws for NUTS
(``inclusion_probabilities(draws=tree)``). For NUTS the plain fraction of draws with
:math:`|g_j| > t_j` is reported too: it estimates the same probability, so the two NUTS
columns must agree within Monte Carlo error (reported as two standard errors of the plain
fraction, from the effective sample size of the indicator); that checks the definition.

Problems (inputs standard normal, seed 0; three relevant inputs in each):

* ``linear-p10``: n = 200, p = 10, y = 2x1 - x2 + 0.5x3 + N(0, 0.5^2), Gaussian likelihood
  with known noise 0.5 (the problem of the first version of this benchmark);
* ``linear-p50``: the same with p = 50;
* ``logistic-p10``: n = 200, p = 10, y ~ Bernoulli(sigmoid(2x1 - x2 + 0.5x3));
* ``mlp-p5``: n = 200, p = 5, y = 2 tanh(x1) - x2 + 0.5x3 + N(0, 0.5^2), one hidden layer
  of 4 tanh units; the prior under study on the input layer (whose groups are the inputs),
  a N(0, 1) prior on the output layer.

Global scale (the same for SVI and NUTS): Piironen & Vehtari (2017, eq. 3.12)
:math:`\tau_0 = p_0/(D - p_0)\,\sigma/\sqrt n` with :math:`p_0 = 3` guessed relevant
inputs of :math:`D`, :math:`\sigma` the noise (0.5) or, for the logistic model, the
pseudo-noise :math:`1/\sqrt{\mu(1-\mu)} = 2` at :math:`\mu = 1/2`. The regularised horseshoe
is ``RegularizedHorseshoe.from_expected_relevant(3, D, n, sigma)`` (slab scale 2, 4 d.o.f.).

**The reference.** For the linear problems (a Gaussian likelihood with known noise) the
reference is not NUTS but exact posterior draws from the Gibbs sampler of the same model
(:func:`pyrocompress.infer.linear_gibbs`, ``--gibbs-chains`` chains): NUTS on the
network's horseshoe model mixed too slowly to serve (one chain of 600 iterations took 40
minutes and left effective sample sizes of 3 to 107), and the Gibbs draws' Rao-Blackwellised
PIPs and plain fractions agree within their Monte-Carlo error (the detail tables). The
logistic problem and the network are sampled by NUTS.

**Two SVI estimates** of each PIP: the default (``estimator="auto"``: for these
generalised linear models the normal-means form, the weights integrated out given the
one-step estimates ``fit`` records; for the network the guide's draws) and the average over
the guide's draws (``estimator="draws"``).

Reported per (problem, prior, guide): the largest |ΔPIP| between SVI and the reference for
each SVI estimate, whether the median-probability sets (PIP >= 1/2) agree, SVI and
reference seconds (wall, on a shared machine); per input the PIPs, the reference's two
estimates and its bulk effective sample size of log |g|.

Writes ``docs/results/svi-vs-nuts.json`` and ``.md``.

Usage (from the project root)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/inference/svi_vs_nuts.py --jobs 4
    .venv/bin/python benchmarks/inference/svi_vs_nuts.py --problems linear-p10 linear-p50 --jobs 2
    .venv/bin/python benchmarks/inference/svi_vs_nuts.py --quick   # < 1 min, no files
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

import pyrocompress as pc
from pyrocompress.distributions import BernoulliLikelihood, GaussianLikelihood
from pyrocompress.infer import linear_gibbs, run_nuts
from pyrocompress.infer.mcmc import site_variable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import RESULTS, provenance, write_results

N, NOISE, P0 = 200, 0.5, 3
COEF = [2.0, -1.0, 0.5]
PROBLEMS = ("linear-p10", "linear-p50", "logistic-p10", "mlp-p5")
PRIORS = ("group-horseshoe", "regularized-horseshoe")
GUIDES = ("mean-field", "conditional")


def data(problem: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Return ``(X, y, p)`` of a problem (seed 0, local generator)."""
    p = {"linear-p10": 10, "linear-p50": 50, "logistic-p10": 10, "mlp-p5": 5}[problem]
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, p, generator=g)
    c = torch.tensor(COEF)
    if problem == "mlp-p5":
        f = 2.0 * torch.tanh(X[:, 0]) - X[:, 1] + 0.5 * X[:, 2]
    else:
        f = X[:, :3] @ c
    if problem == "logistic-p10":
        y = torch.bernoulli(torch.sigmoid(f), generator=g).long()
    else:
        y = f + NOISE * torch.randn(N, generator=g)
    return X, y, p


def pseudo_noise(problem: str) -> float:
    """sigma of P&V's tau0: the noise, or 1/sqrt(mu(1-mu)) = 2 for the logistic model."""
    return 2.0 if problem == "logistic-p10" else NOISE


def tau0(problem: str, p: int) -> float:
    """Piironen & Vehtari (2017, eq. 3.12) with p0 = 3."""
    return P0 / (p - P0) * pseudo_noise(problem) / math.sqrt(N)


def make_bnn(problem: str, prior_name: str, guide: str, p: int) -> pc.BayesianNetwork:
    if prior_name == "group-horseshoe":
        prior: Any = pc.GroupHorseshoe(scale_global=tau0(problem, p))
    else:
        prior = pc.RegularizedHorseshoe.from_expected_relevant(P0, p, N, pseudo_noise(problem))
    if problem == "mlp-p5":
        net = torch.nn.Sequential(torch.nn.Linear(p, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
        priors: Any = {"0": prior, "2": pc.Gaussian(1.0)}
    else:
        net, priors = torch.nn.Linear(p, 1), prior
    likelihood = (
        BernoulliLikelihood()
        if problem == "logistic-p10"
        else GaussianLikelihood(NOISE, learn_noise=False)
    )
    return pc.bayesianize(net, prior=priors, likelihood=likelihood, guide=guide, seed=0)


def plain_fraction(
    bnn: pc.BayesianNetwork, name: str, tree: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the fraction of NUTS draws with |g| > t, its MC standard error, and the bulk
    ESS of log |g|, per group of layer ``name``."""
    from arviz_stats.base.array import array_stats

    layer = bnn.bayesian_layers()[name]
    prior, spec = layer.prior, layer.spec
    post = tree["posterior"].to_dataset()
    parts = prior.site_priors(spec, torch.zeros((), dtype=torch.float64))
    values = {
        part: torch.as_tensor(post[site_variable(spec.site(part))].values).double()
        for part in parts
    }
    chains, draws = next(iter(values.values())).shape[:2]
    gates = torch.stack(
        [
            torch.as_tensor(prior.gate(spec, {k: v[c, d] for k, v in values.items()}))
            for c in range(chains)
            for d in range(draws)
        ]
    ).double()
    gates = gates.reshape(chains, draws, -1).abs().numpy()
    threshold = bnn.guide[name].relevance_threshold().double().cpu().numpy()
    above = (gates > threshold).astype(float)
    frac = above.reshape(-1, above.shape[-1]).mean(0)
    ess_ind = np.asarray(cast(Any, array_stats.ess(above, chain_axis=0, draw_axis=1)), dtype=float)
    ess_ind = np.where(np.isfinite(ess_ind), ess_ind, chains * draws)
    # binomial standard error at the effective sample size, with the proportion pulled
    # in by one draw each way ((k + 1)/(n + 2)) so that a fraction of 0 or 1 does not
    # claim zero error
    n_eff = np.maximum(ess_ind, 1.0)
    shrunk = (frac * n_eff + 1.0) / (n_eff + 2.0)
    se = np.sqrt(shrunk * (1 - shrunk) / n_eff)
    ess_gate = np.asarray(
        cast(Any, array_stats.ess(np.log(gates), chain_axis=0, draw_axis=1)), dtype=float
    )
    return frac, se, ess_gate


def run_problem(problem: str, args: argparse.Namespace) -> list[dict]:
    """Fit, sample and summarise one problem for every prior and guide."""
    torch.set_num_threads(1)
    X, y, p = data(problem)
    rows = []
    for prior_name in PRIORS:
        fitted = {}
        for guide in GUIDES:
            bnn = make_bnn(problem, prior_name, guide, p)
            start = time.perf_counter()
            pc.fit(
                bnn, (X, y), epochs=args.epochs, batch_size=N, lr=args.lr, progress=False, tol=None
            )
            fitted[guide] = (bnn, time.perf_counter() - start)
            print(f"[{problem} / {prior_name}] SVI {guide}: {fitted[guide][1]:.0f} s", flush=True)
        bnn0 = fitted[GUIDES[0]][0]
        start = time.perf_counter()
        reference = "gibbs" if problem.startswith("linear") else "nuts"
        try:
            if reference == "gibbs":
                tree = linear_gibbs(bnn0, X, y, num_samples=args.gibbs_draws,
                                    warmup_steps=args.gibbs_warmup,
                                    num_chains=args.gibbs_chains)  # fmt: skip
            else:
                tree = run_nuts(
                    bnn0, X, y, num_samples=args.draws, warmup_steps=args.warmup,
                    num_chains=args.chains, max_tree_depth=args.max_tree_depth,
                )  # fmt: skip
            error = None
        except Exception as exc:  # reported as not run, with the reason
            tree, error = None, f"{type(exc).__name__}: {exc}"
        nuts_seconds = time.perf_counter() - start
        name = next(iter(bnn0.bayesian_layers()))  # the input layer: the inputs' groups
        for guide, (bnn, svi_seconds) in fitted.items():
            post = pc.Posterior(bnn)
            svi = post.inclusion_probabilities([name], num_samples=args.guide_draws)[name]
            by_draws = post.inclusion_probabilities(
                [name], num_samples=args.guide_draws, estimator="draws"
            )[name]
            row: dict[str, Any] = {
                "problem": problem,
                "prior": prior_name,
                "guide": guide,
                "reference": reference,
                "pip_svi_draws": by_draws.double().tolist(),
                "estimator": "normal-means" if pc.infer.glm_layer(bnn) is not None else "draws",
                "p": p,
                "scale_global": bnn.bayesian_layers()[name].prior.scale_global,
                "svi_seconds": svi_seconds,
                "nuts_seconds": nuts_seconds,
                "pip_svi": svi.double().tolist(),
                "threshold": bnn.guide[name].relevance_threshold().double().tolist(),
            }
            if tree is None:
                row["nuts_error"] = error
                rows.append(row)
                continue
            nuts = post.inclusion_probabilities([name], draws=tree)[name].double().numpy()
            frac, se, ess = plain_fraction(bnn, name, tree)
            svi_np = svi.double().numpy()
            diff = np.abs(svi_np - nuts)
            draws_np = by_draws.double().numpy()
            row.update(
                max_pip_difference_draws=float(np.abs(draws_np - nuts).max()),
                same_selection_draws=bool(((draws_np >= 0.5) == (nuts >= 0.5)).all()),
            )
            row.update(
                pip_nuts=nuts.tolist(),
                pip_nuts_fraction=frac.tolist(),
                pip_nuts_fraction_se=se.tolist(),
                ess_log_gate=ess.tolist(),
                max_pip_difference=float(diff.max()),
                worst_input=int(diff.argmax()) + 1,
                same_selection=bool(((svi_np >= 0.5) == (nuts >= 0.5)).all()),
                selected_svi=[j + 1 for j in range(p) if svi_np[j] >= 0.5],
                selected_nuts=[j + 1 for j in range(p) if nuts[j] >= 0.5],
                nuts_rb_vs_fraction=float(np.abs(nuts - frac).max()),
                nuts_rb_vs_fraction_z=float((np.abs(nuts - frac) / se).max()),
            )
            rows.append(row)
        print(f"[{problem} / {prior_name}] done: NUTS {nuts_seconds:.0f} s", flush=True)
    return rows


#: the settings a problem's results depend on
RUN_SETTINGS = ("epochs", "lr", "guide_draws", "draws", "warmup", "chains", "max_tree_depth",
                "gibbs_draws", "gibbs_warmup", "gibbs_chains")  # fmt: skip


def run_cached(problem: str, args: argparse.Namespace) -> list[dict]:
    """:func:`run_problem`, its rows kept in ``args.parts`` (and taken from there when a
    run with the same settings left them)."""
    settings = {k: getattr(args, k) for k in RUN_SETTINGS}
    path = None if args.parts is None else args.parts / f"{problem}.json"
    if path is not None and path.exists():
        kept = json.loads(path.read_text())
        if kept["settings"] == settings:
            print(f"[{problem}] rows taken from {path}", flush=True)
            return kept["rows"]
    rows = run_problem(problem, args)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = {"settings": settings, **provenance(), "rows": rows}
        path.write_text(json.dumps(kept))
    return rows


def _names(js: list[int]) -> str:
    return ", ".join(f"x{j}" for j in js) or "none"


def markdown(rows: list[dict], args: argparse.Namespace, prov: dict | None) -> list[str]:
    lines = ["# SVI against exact posterior draws: posterior inclusion probabilities", ""]
    if prov is not None:
        lines += [
            f"Command: `{prov['command']}` · date {prov['date']} · commit {prov['commit']} · "
            f"machine: {prov['machine']} (2 cores shared with other jobs: times are wall "
            "times under load)",
            "",
        ]
    lines += [
        f"SVI: {args.epochs} full-batch epochs, lr {args.lr}. Reference, one run per "
        "(problem, prior) shared by both guides: for the linear problems exact draws of the "
        f"Gibbs sampler (`pyrocompress.infer.linear_gibbs`, {args.gibbs_chains} chains × "
        f"({args.gibbs_warmup} warm-up + {args.gibbs_draws} draws)); otherwise NUTS, "
        f"{args.chains} chain(s) × ({args.warmup} warm-up + {args.draws} draws), max tree "
        f"depth {args.max_tree_depth}. PIP = P(|g| > t | data); the reference's is "
        "Rao-Blackwellised over its draws. SVI's two estimates: the default (the normal-means "
        "form for these linear models, the weights integrated out given the one-step "
        "estimates the fit records; guide draws for the network) and the average over "
        f"{args.guide_draws} guide draws. Global scale τ0 = 3/(D − 3) · σ/√n (Piironen & "
        "Vehtari 2017, eq. 3.12).",
        "",
        "| problem | prior | guide | τ0 | reference | max \\|ΔPIP\\| default (input) | same "
        "median set? | max \\|ΔPIP\\| guide draws | same set? | SVI s | reference s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "not_run" in r:
            lines.append(
                f"| {r['problem']} | — | — | — | — | not run: {r['not_run']} |" + " — |" * 5
            )
            continue
        ref = "exact (Gibbs)" if r.get("reference") == "gibbs" else "NUTS"
        if "nuts_error" in r:
            lines.append(
                f"| {r['problem']} | {r['prior']} | {r['guide']} | {r['scale_global']:.4g} "
                f"| {ref} | reference not run | — | — | — | {r['svi_seconds']:.1f} | — |"
            )
            continue
        draws = (
            f"{r['max_pip_difference_draws']:.3f} | {'yes' if r['same_selection_draws'] else 'no'}"
            if "max_pip_difference_draws" in r
            else "— | —"
        )
        lines.append(
            f"| {r['problem']} | {r['prior']} | {r['guide']} | {r['scale_global']:.4g} "
            f"| {ref} | {r['max_pip_difference']:.3f} (x{r['worst_input']}) "
            f"| {'yes' if r['same_selection'] else 'no'} | {draws} | {r['svi_seconds']:.1f} "
            f"| {r['nuts_seconds']:.0f} |"
        )
    lines += [
        "",
        "Detail per (problem, prior): the threshold t of each input (from the information "
        "each fit records: one column where the guides give the same), the PIP per input "
        "under SVI with each guide (default estimate, then guide draws) and under the "
        "reference (exact Gibbs draws or NUTS), the reference both ways (Rao-Blackwellised, "
        "RB; plain fraction of draws with |g| > t, at the mean-field fit's t, ± two standard "
        "errors from the indicator's effective sample size) and the reference's bulk ESS of "
        "log |g|.",
    ]
    seen: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if "not_run" not in r:
            seen.setdefault((r["problem"], r["prior"]), []).append(r)
    for group in seen.values():
        lines += detail(group)
    return lines


def detail(group: list[dict]) -> list[str]:
    """The detail section of one (problem, prior): its rows, one per guide."""
    problem, prior = group[0]["problem"], group[0]["prior"]
    lines: list[str] = []
    by_guide = {r["guide"]: r for r in group}
    first = group[0]
    lines += ["", f"## {problem}, {prior}", ""]
    ref = "exact" if first.get("reference") == "gibbs" else "NUTS"
    if "nuts_error" in first:
        lines.append(f"{ref} not run: {first['nuts_error']}")
    for r in group:
        if "nuts_error" not in r:
            lines.append(
                f"- {r['guide']}: median sets SVI {{{_names(r['selected_svi'])}}}, {ref} "
                f"{{{_names(r['selected_nuts'])}}}; {ref} RB vs fraction: max "
                f"{r['nuts_rb_vs_fraction']:.3f} ({r['nuts_rb_vs_fraction_z']:.1f} s.e.)"
            )
    mf, cd = by_guide.get("mean-field"), by_guide.get("conditional")
    # the threshold is each fit's: equal for the linear models, not for the others
    split = bool(mf and cd and not np.allclose(mf["threshold"], cd["threshold"], rtol=1e-6))
    svi_cols = [f"SVI {r['guide']}" for r in (mf, cd) if r]
    svi_cols += [f"SVI {r['guide']}, guide draws" for r in (mf, cd) if r and "pip_svi_draws" in r]
    head = ["input", "t", *svi_cols, f"{ref} (RB)"]
    if split:
        head = [
            "input",
            "t (mean-field)",
            "t (conditional)",
            *svi_cols,
            f"{ref} (RB), t mean-field",
            f"{ref} (RB), t conditional",
        ]
    head += [f"{ref} (fraction ± 2 s.e.)", "ESS log\\|g\\|"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for j in range(first["p"]):
        cells = [f"x{j + 1}"]
        cells += [f"{r['threshold'][j]:.3g}" for r in (group if split else group[:1])]
        cells += [f"{r['pip_svi'][j]:.3f}" for r in (mf, cd) if r]
        cells += [f"{r['pip_svi_draws'][j]:.3f}" for r in (mf, cd) if r and "pip_svi_draws" in r]
        if "nuts_error" in first:
            cells += ["—"] * (len(head) - len(cells))
        else:
            cells += [f"{r['pip_nuts'][j]:.3f}" for r in (group if split else group[:1])]
            cells += [
                f"{first['pip_nuts_fraction'][j]:.3f} ± {2 * first['pip_nuts_fraction_se'][j]:.3f}",
                f"{first['ess_log_gate'][j]:.0f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def collect(args: argparse.Namespace) -> int:
    """Write the results from the rows kept in ``args.parts``, with each part's command."""
    rows, runs = [], []
    for problem in args.problems:
        path = args.parts / f"{problem}.json"
        if not path.exists():
            rows.append({"problem": problem, "not_run": args.not_run_reason})
            continue
        kept = json.loads(path.read_text())
        rows += kept["rows"]
        runs.append({"problem": problem, **{k: kept.get(k) for k in ("command", "date")}})
        for key in RUN_SETTINGS:  # the settings the tables state are the parts' own
            setattr(args, key, kept["settings"][key])
    prov = provenance()
    lines = markdown(rows, args, prov)
    lines[4:4] = [
        "Parts: " + "; ".join(f"{r['problem']}: `{r['command']}` ({r['date']})" for r in runs),
        "",
    ]
    print("\n".join(lines))
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_results("svi-vs-nuts", {**prov, "settings": settings, "runs": runs, "rows": rows}, lines)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
    ap.add_argument("--epochs", type=int, default=3000, help="SVI epochs (full batch)")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--guide-draws", type=int, default=1000, help="guide draws of an SVI PIP")
    ap.add_argument("--draws", type=int, default=300, help="NUTS draws per chain")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--chains", type=int, default=1)
    ap.add_argument("--max-tree-depth", type=int, default=7)
    ap.add_argument("--gibbs-draws", type=int, default=2000, help="exact draws per chain")
    ap.add_argument("--gibbs-warmup", type=int, default=500)
    ap.add_argument("--gibbs-chains", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=1, help="problems run in parallel processes")
    ap.add_argument(
        "--parts",
        type=Path,
        default=None,
        help="folder keeping each problem's rows (<problem>.json) as it finishes; problems "
        "found there with the same settings are not run again",
    )
    ap.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: write the results from the problems kept in --parts (the others "
        "listed as not run)",
    )
    ap.add_argument(
        "--not-run-reason",
        default="NUTS did not finish within the session's time on the shared machine",
        help="with --collect: why a problem without kept rows was not run",
    )
    ap.add_argument("--quick", action="store_true", help="< 1 min, nothing written")
    ap.add_argument(
        "--render", action="store_true", help="rewrite the .md from the stored .json, no run"
    )
    args = ap.parse_args()
    if args.render:
        stored = json.loads((RESULTS / "svi-vs-nuts.json").read_text())
        keys = ("command", "date", "machine", "commit")
        prov = {k: stored[k] for k in keys}
        lines = markdown(stored["rows"], argparse.Namespace(**stored["settings"]), prov)
        write_results("svi-vs-nuts", stored, lines)
        return 0
    if args.collect:
        if args.parts is None:
            raise SystemExit("--collect needs --parts, the folder the runs kept their rows in")
        return collect(args)
    if args.quick:
        args.epochs, args.guide_draws, args.draws, args.warmup = 100, 100, 20, 20
        args.chains, args.max_tree_depth = 1, 4
        args.gibbs_draws, args.gibbs_warmup, args.gibbs_chains = 200, 50, 2
        if args.problems == list(PROBLEMS):
            args.problems = ["linear-p10"]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.jobs > 1 and len(args.problems) > 1:
        # spawned, not forked: each worker starts its own interpreter, no torch state copied
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            parts = list(pool.map(run_cached, args.problems, [args] * len(args.problems)))
    else:
        parts = [run_cached(problem, args) for problem in args.problems]
    rows = [r for part in parts for r in part]
    prov = None if args.quick else provenance()
    lines = markdown(rows, args, prov)
    print("\n".join(lines))
    if args.quick:
        return 0
    assert prov is not None
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    result = {**prov, "settings": settings, "rows": rows}
    write_results("svi-vs-nuts", result, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
