"""SVI against NUTS on a small group-horseshoe regression: time and inclusion probabilities.

Data: n = 200, p = 10 standard-normal inputs, y = 2x1 - x2 + 0.5x3 + N(0, 0.5^2) (seed 0).
Model: ``bayesianize(nn.Linear(10, 1), GroupHorseshoe(scale_global=1), Gaussian likelihood
with known noise 0.5)`` — one program, fitted by ``pyrocompress.fit`` (SVI, local
reparametrisation, full batch) and sampled by ``pyrocompress.mcmc.run_nuts`` (Pyro's NUTS on
the same model).

Both posteriors are summarised by the same functional of the gate :math:`g` of each input,
the inclusion probability :math:`1 - \\alpha/(1+\\alpha) = E[g]^2 / E[g^2]` with
:math:`\\alpha = \\mathrm{Var}\\,g / (E g)^2` (``Posterior.inclusion_probabilities``; for
NUTS from the draws), and by the posterior means of the effective weights. Reported: wall
time of each, the probabilities side by side, their largest difference and whether the
median-probability selections agree.

Writes ``docs/results/svi-vs-nuts.json`` and ``.md``.

Usage (from the project root)::

    .venv/bin/python benchmarks/inference/svi_vs_nuts.py           # 2 chains x (500 + 500) draws
    .venv/bin/python benchmarks/inference/svi_vs_nuts.py --quick   # tiny, no files
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import pyrocompress as pc
from pyrocompress.distributions import GaussianLikelihood
from pyrocompress.infer.mcmc import run_nuts

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import provenance, write_results

N, P, NOISE = 200, 10, 0.5
COEF = [2.0, -1.0, 0.5]


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, P, generator=g)
    beta = torch.zeros(P)
    beta[: len(COEF)] = torch.tensor(COEF)
    return X, X @ beta + NOISE * torch.randn(N, generator=g)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3000, help="SVI epochs (full batch)")
    ap.add_argument("--draws", type=int, default=500, help="NUTS draws per chain")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny, nothing written")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.draws, args.warmup, args.chains = 50, 20, 20, 1
    X, y = data()
    bnn = pc.bayesianize(
        torch.nn.Linear(P, 1),
        prior=pc.GroupHorseshoe(scale_global=1.0),
        likelihood=GaussianLikelihood(NOISE, learn_noise=False),
        seed=0,
    )
    start = time.perf_counter()
    pc.fit(bnn, (X, y), epochs=args.epochs, batch_size=N, lr=1e-2, progress=False)
    svi_seconds = time.perf_counter() - start
    post = pc.Posterior(bnn)
    svi_pip = post.inclusion_probabilities()["layer"].double().numpy()
    svi_w = post.weight_mean()["layer"].detach().double().numpy().ravel()

    start = time.perf_counter()
    tree = run_nuts(bnn, X, y, num_samples=args.draws, warmup_steps=args.warmup,
                    num_chains=args.chains, max_tree_depth=8)  # fmt: skip
    nuts_seconds = time.perf_counter() - start
    draws = tree["posterior"]
    parts = [draws[f"layer_{k}"].values for k in ("global_a", "global_b", "local_a", "local_b")]
    gate = np.sqrt(parts[0][..., None] * parts[1][..., None] * parts[2] * parts[3])
    gate = gate.reshape(-1, P)
    nuts_pip = gate.mean(0) ** 2 / (gate**2).mean(0)
    nuts_w = draws["layer_effective_weight"].values.reshape(-1, P).mean(0)

    diff = np.abs(svi_pip - nuts_pip)
    same = bool(((svi_pip >= 0.5) == (nuts_pip >= 0.5)).all())
    chosen = {m: ", ".join(f"x{j + 1}" for j in range(P) if pip[j] >= 0.5) or "none"
              for m, pip in (("SVI", svi_pip), ("NUTS", nuts_pip))}  # fmt: skip
    lines = [
        "# SVI against NUTS: group-horseshoe linear regression",
        "",
        f"n = {N}, p = {P}, y = 2x1 − x2 + 0.5x3 + N(0, {NOISE}²); SVI {args.epochs} full-batch "
        f"epochs in {svi_seconds:.1f} s; NUTS {args.chains} chain(s) × ({args.warmup} warm-up "
        f"+ {args.draws}) draws in {nuts_seconds:.1f} s ({nuts_seconds / svi_seconds:.0f}× "
        "the SVI time).",
        "",
        f"Largest difference of the inclusion probabilities: {diff.max():.3f}. "
        f"Median-probability selection (PIP ≥ ½): SVI {chosen['SVI']}; NUTS {chosen['NUTS']}.",
        "",
        "| input | PIP, SVI | PIP, NUTS | effective weight, SVI | effective weight, NUTS |",
        "|---|---|---|---|---|",
    ]
    for j in range(P):
        lines.append(
            f"| x{j + 1} | {svi_pip[j]:.3f} | {nuts_pip[j]:.3f} | {svi_w[j]:+.3f} "
            f"| {nuts_w[j]:+.3f} |"
        )
    print("\n".join(lines))
    if args.quick:
        return 0
    result = {
        **provenance(),
        "svi_seconds": svi_seconds,
        "nuts_seconds": nuts_seconds,
        "settings": vars(args),
        "pip_svi": svi_pip.tolist(),
        "pip_nuts": nuts_pip.tolist(),
        "effective_weight_svi": svi_w.tolist(),
        "effective_weight_nuts": nuts_w.tolist(),
        "max_pip_difference": float(diff.max()),
        "same_selection": same,
    }
    prov = f"Command: `{result['command']}` · date {result['date']} · machine: {result['machine']}"
    write_results("svi-vs-nuts", result, [lines[0], "", prov, *lines[1:]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
