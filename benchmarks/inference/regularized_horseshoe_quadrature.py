"""Error of the regularised horseshoe guide's quadratures.

The guide family of ``pyrocompress.RegularizedHorseshoe`` computes the gate moments
``E g, E g^2`` and the tail probabilities ``P(g > t)`` of ``g^-2 = e^-U + e^-C`` (``U``, ``C``
independent normals) by exact reductions to one dimension and panelled Gauss-Legendre
rules (``pyrocompress.priors.regularized_horseshoe``). This script compares them, over random
parameters spanning what training produces (and beyond), with adaptive quadrature from
SciPy: a two-dimensional ``dblquad`` for the moments (independent of the reduction to one
dimension) and ``quad`` with the boundary as a break point for the probabilities
(conditioning on ``C``, whatever variable the rule conditions on). It prints the largest
relative error of the moments and the largest absolute error of the probabilities, and,
for comparison, the error of a plain 64-node Gauss-Hermite rule over ``log c^2`` (with
``tau lambda`` in closed form), the first method considered.

    .venv/bin/python benchmarks/inference/regularized_horseshoe_quadrature.py [--cases 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import platform

import numpy as np
import torch
from scipy import integrate, special

from pyrocompress.priors.regularized_horseshoe import _log_gate_moment, _prob_sum_below_one


def _moment_reference(k: int, mu_u: float, v_u: float, mu_c: float, v_c: float) -> float:
    """E g^k by 2-D adaptive quadrature over standard normal (zu, zc) in [-10, 10]^2."""
    su, sc = math.sqrt(v_u), math.sqrt(v_c)

    def f(zc: float, zu: float) -> float:
        u, c = mu_u + su * zu, mu_c + sc * zc
        log_g2 = -np.logaddexp(-u, -c)
        return math.exp(0.5 * k * log_g2 - 0.5 * (zu * zu + zc * zc)) / (2 * math.pi)

    val, _ = integrate.dblquad(f, -10, 10, -10, 10, epsabs=0.0, epsrel=1e-10)
    return val


def _prob_reference(mu_a: float, s_a: float, mu_b: float, s_b: float) -> float:
    """P(a + b < 1), log a ~ N(mu_a, s_a^2), log b ~ N(mu_b, s_b^2): quad over log b."""
    z_star = -mu_b / s_b  # log b = 0 there; the integrand is 0 beyond

    def f(z: float) -> float:
        log_b = mu_b + s_b * z
        if log_b >= 0:
            return 0.0
        inner = special.ndtr((math.log(-math.expm1(log_b)) - mu_a) / s_a)
        return inner * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    hi = min(z_star, 40.0)
    if hi <= -40.0:
        return 0.0
    pts = [p for p in (z_star - 1e-3, z_star - 1e-1, 0.0) if -40 < p < hi]
    val, _ = integrate.quad(f, -40.0, hi, points=pts or None, epsabs=1e-13, limit=500)
    return val


def _gauss_hermite_over_c(
    mu_a: np.ndarray, s_a: np.ndarray, mu_b: np.ndarray, s_b: np.ndarray, n: int = 64
) -> np.ndarray:
    """P(a + b < 1) by an n-node Gauss-Hermite rule over log b (= log t^2 - log c^2)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    log_b = mu_b[:, None] + s_b[:, None] * z
    inside = log_b < 0
    log_1mb = np.log(-np.expm1(np.where(inside, log_b, -1.0)))
    tail = special.ndtr((log_1mb - mu_a[:, None]) / s_a[:, None])
    return (w * np.where(inside, tail, 0.0)).sum(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.cases
    # log tau^2 lambda^2: from switched off (-25) to large (8); variances from the guide's
    # initial e^-9 to four parts at their prior's log-variance (~20) and beyond (60)
    mu_u = rng.uniform(-25, 8, n)
    v_u = np.exp(rng.uniform(math.log(1e-4), math.log(60.0), n))
    mu_c = rng.uniform(-2, 5, n)
    v_c = np.exp(rng.uniform(math.log(1e-4), math.log(5.0), n))
    t = torch.tensor
    worst_moment = 0.0
    for k in (1, 2):
        got = _log_gate_moment(k, t(mu_u), t(v_u), t(mu_c), t(v_c)).exp().numpy()
        for i in range(n):
            ref = _moment_reference(k, mu_u[i], v_u[i], mu_c[i], v_c[i])
            worst_moment = max(worst_moment, abs(got[i] / ref - 1.0))
    # thresholds: the gate of one draw from (U, C), so that P(g > t) spans (0, 1)
    log_t2 = -np.logaddexp(
        -(mu_u + np.sqrt(v_u) * rng.standard_normal(n)),
        -(mu_c + np.sqrt(v_c) * rng.standard_normal(n)),
    )
    mu_a, s_a = log_t2 - mu_u, np.sqrt(v_u)
    mu_b, s_b = log_t2 - mu_c, np.sqrt(v_c)
    got_p = _prob_sum_below_one(t(mu_a), t(s_a), t(mu_b), t(s_b)).numpy()
    ref_p = np.array([_prob_reference(mu_a[i], s_a[i], mu_b[i], s_b[i]) for i in range(n)])
    # the reference conditioned the other way round: how far the reference itself is sure
    ref_q = np.array([_prob_reference(mu_b[i], s_b[i], mu_a[i], s_a[i]) for i in range(n)])
    errors = np.abs(got_p - ref_p)
    gh = np.abs(_gauss_hermite_over_c(mu_a, s_a, mu_b, s_b) - ref_p)
    print(
        f"date {dt.datetime.now().isoformat(timespec='seconds')}, {platform.node()}, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"{n} random cases, seed {args.seed}, 64 Gauss-Legendre nodes a panel, float64")
    print(f"gate moments E g, E g^2: max relative error {worst_moment:.2e}")
    print(f"P(g > t): max absolute error {errors.max():.2e}, median {np.median(errors):.2e}")
    print(
        f"  reference against itself (conditioned the other way): {np.abs(ref_p - ref_q).max():.2e}"
    )
    print(f"  probabilities in the cases: 5/50/95 % {np.percentile(ref_p, [5, 50, 95]).round(3)}")
    print(
        f"  plain 64-node Gauss-Hermite over log c^2: max absolute error {gh.max():.2e}, "
        f"median {np.median(gh):.2e}"
    )


if __name__ == "__main__":
    main()
