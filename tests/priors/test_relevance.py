"""The conditional relevance of a group given its weights (priors/relevance.py)."""

import math

import pytest
import torch

import pyrocompress as pc
from pyrocompress.priors.relevance import relevance_given_weights


@pytest.mark.parametrize("m", [1, 3, 30, 300])
@pytest.mark.parametrize("ratio", [0.1, 0.7, 1.0, 1.5, 10.0])
def test_log_uniform_prior_matches_the_gamma_closed_form(m, ratio):
    # p(log z) flat: 1/z^2 | w ~ Gamma(m/2, rate beta), so P(z > t) = P(Gamma < 1/t^2),
    # the regularised incomplete gamma function gammainc(m/2, beta/t^2)
    t = torch.tensor([0.2], dtype=torch.float64)
    beta = torch.tensor([[ratio**2 * m * 0.04 / 2]], dtype=torch.float64)  # ||w||^2/m = (r t)^2
    got = relevance_given_weights(torch.zeros_like, beta, m, t)
    exact = torch.special.gammainc(torch.tensor(m / 2.0, dtype=torch.float64), beta / t**2)
    # the quadrature error of the cell rule is far below 1e-3 on a 256-point grid
    torch.testing.assert_close(got, exact, atol=2e-3, rtol=0)


@pytest.mark.parametrize("w", [0.01, 0.05, 0.2])
def test_horseshoe_conditional_matches_importance_sampling(w):
    # p(g | w, s) for g ~ C+(0, s): importance sampling from the prior, weights N(w; 0, g^2)
    s, t = 0.3, 0.05
    horseshoe = pc.GroupHorseshoe()
    values = {"global_a": torch.tensor([s**2]), "global_b": torch.tensor([1.0])}
    log_prior = horseshoe.gate_log_prior(None, values)  # the spec is not read
    beta = torch.tensor([[w**2 / 2]], dtype=torch.float64)
    got = relevance_given_weights(log_prior, beta, 1, torch.tensor([t])).item()
    gen = torch.Generator().manual_seed(0)
    n = 400_000
    g = s * torch.tan(0.5 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64))
    lw = -torch.log(g) - w**2 / (2 * g**2)
    wts = torch.softmax(lw, 0)
    mc = float((wts * (g > t)).sum())
    ess = 1.0 / float((wts**2).sum())
    se = math.sqrt(mc * (1 - mc) / ess)
    assert abs(got - mc) < 4 * se + 2e-3, (got, mc, se)


def test_thresholds_at_the_edges():
    beta = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    out = relevance_given_weights(torch.zeros_like, beta, 1, torch.tensor([0.0, math.inf]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0]], dtype=torch.float64))


def test_monotone_in_the_weights_and_the_threshold():
    beta = torch.tensor([[1e-4, 1e-3, 1e-2, 1e-1, 1.0]], dtype=torch.float64)
    p = relevance_given_weights(torch.zeros_like, beta, 5, torch.full((5,), 0.1))
    assert bool((p.diff(dim=-1) > 0).all())
    ts = torch.tensor([0.01, 0.05, 0.1, 0.5, 1.0], dtype=torch.float64)
    q = relevance_given_weights(torch.zeros_like, torch.full((1, 5), 0.01, dtype=torch.float64),
                                5, ts)  # fmt: skip
    assert bool((q.diff(dim=-1) < 0).all())


def test_horseshoe_global_scale_integrated_out_matches_importance_sampling():
    # three groups of one weight: p(g_1 > t | w) with s ~ C+(0, tau0), g_j | s ~ C+(0, s),
    # w_j | g_j ~ N(0, g_j^2), by importance sampling of (s, g) from the prior
    from pyrocompress.priors.relevance import relevance_given_layer

    tau0, t = 0.1, 0.05
    w = torch.tensor([0.02, 0.3, 1.5], dtype=torch.float64)
    given, glob = pc.GroupHorseshoe(scale_global=tau0).global_scale_densities(None, {})
    got = relevance_given_layer(given, glob, (w**2 / 2).unsqueeze(0), 1, torch.full((3,), t))[0]
    gen = torch.Generator().manual_seed(0)
    n = 2_000_000

    def half_cauchy(scale, size):
        return scale * torch.tan(
            0.5 * math.pi * torch.rand(size, generator=gen, dtype=torch.float64)
        )

    s = half_cauchy(tau0, (n, 1))
    g = half_cauchy(1.0, (n, 3)) * s
    lw = (-torch.log(g) - w**2 / (2 * g**2)).sum(-1)
    wts = torch.softmax(lw, 0)
    ess = 1.0 / float((wts**2).sum())
    for j in range(3):
        mc = min(float((wts * (g[:, j] > t)).sum()), 1.0)
        se = math.sqrt(mc * (1 - mc) / ess)
        # (3e-3: the O(1/n) bias of self-normalised importance sampling with these weights)
        assert abs(float(got[j]) - mc) < 4 * se + 3e-3, (j, float(got[j]), mc, se, ess)


def _regularized_values(tau, c2):
    return {
        "global_a": torch.tensor([tau**2]),
        "global_b": torch.tensor([1.0]),
        "slab_var": torch.tensor([c2]),
    }


def _half_cauchy(scale, size, gen):
    return scale * torch.tan(0.5 * math.pi * torch.rand(size, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("w", [0.005, 0.01, 0.03, 0.1, 2.5])
def test_regularized_horseshoe_conditional_matches_importance_sampling(w):
    # g^-2 = (tau lam)^-2 + c^-2 with lam ~ C+(0, 1): the gate is bounded by c, and its
    # density in log g grows like (c - g)^(-1/2) there. A grid uniform in log g gave
    # 0.30 for w = 0.01 where the truth is 0.15 (the point under c took the mass); the
    # quadrature in log h = log(tau lam) must match importance sampling from the prior
    tau, c2, t = 0.02, 3.0, 0.035
    prior = pc.RegularizedHorseshoe()
    values = _regularized_values(tau, c2)
    beta = torch.tensor([[w**2 / 2]], dtype=torch.float64)
    got = relevance_given_weights(
        prior.gate_log_prior(None, values), beta, 1, torch.tensor([t]),
        upper=prior.gate_log_upper(None, values),
    ).item()  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    h = tau * _half_cauchy(1.0, 1_000_000, gen)
    g = (h.pow(-2) + 1.0 / c2).rsqrt()
    wts = torch.softmax(-torch.log(g) - w**2 / (2 * g**2), 0)
    mc = float((wts * (g > t)).sum())
    ess = 1.0 / float((wts**2).sum())
    se = math.sqrt(max(mc * (1 - mc), 1e-6) / ess)
    assert abs(got - mc) < 4 * se + 2e-3, (got, mc, se)


def test_regularized_horseshoe_threshold_at_or_above_the_slab_width_is_never_exceeded():
    prior = pc.RegularizedHorseshoe()
    values = _regularized_values(0.1, 0.25)  # c = 0.5
    beta = torch.full((1, 3), 50.0, dtype=torch.float64)  # weights far beyond c: g near c
    got = relevance_given_weights(
        prior.gate_log_prior(None, values), beta, 1, torch.tensor([0.49, 0.5, 0.7]),
        upper=prior.gate_log_upper(None, values),
    )[0]  # fmt: skip
    assert float(got[0]) > 0.99
    torch.testing.assert_close(got[1:], torch.zeros(2, dtype=torch.float64))


def test_regularized_horseshoe_global_scale_integrated_out_matches_importance_sampling():
    # as the group horseshoe's test, with the slab width c of the draw: tau ~ C+(0, tau0),
    # h_j = tau lam_j, g_j^-2 = h_j^-2 + c^-2, w_j | g_j ~ N(0, g_j^2)
    from pyrocompress.priors.relevance import relevance_given_layer

    tau0, c2, t = 0.05, 2.0, 0.05
    w = torch.tensor([0.01, 0.04, 0.3, 1.5], dtype=torch.float64)
    prior = pc.RegularizedHorseshoe(scale_global=tau0)
    values = {"slab_var": torch.tensor([c2])}
    given, glob = prior.global_scale_densities(None, values)
    upper = prior.gate_log_upper(None, values)
    beta = (w**2 / 2).unsqueeze(0)
    got = relevance_given_layer(given, glob, beta, 1, torch.full((4,), t), upper=upper)[0]
    gen = torch.Generator().manual_seed(1)
    n = 2_000_000
    h = _half_cauchy(tau0, (n, 1), gen) * _half_cauchy(1.0, (n, 4), gen)
    g = (h.pow(-2) + 1.0 / c2).rsqrt()
    wts = torch.softmax((-torch.log(g) - w**2 / (2 * g**2)).sum(-1), 0)
    ess = 1.0 / float((wts**2).sum())
    for j in range(4):
        mc = min(float((wts * (g[:, j] > t)).sum()), 1.0)
        se = math.sqrt(max(mc * (1 - mc), 1e-6) / ess)
        assert abs(float(got[j]) - mc) < 4 * se + 3e-3, (j, float(got[j]), mc, se, ess)


def _log1p_exp(x):
    """log(1 + e^x) by its two stable branches (not softplus, whose threshold rounds)."""
    return torch.where(x > 0, x + torch.log1p(torch.exp(-x.abs())), torch.log1p(torch.exp(x)))


@pytest.mark.parametrize("spread", [1.0, 30.0, 400.0])
def test_softplus_outer_is_the_softplus_of_the_sum(spread):
    """The factored exponentials equal log(1 + e^(a + b)) to rounding, on grids of log
    scales a few units apart and tens apart (the factored path) and hundreds apart (the
    fallback: a product of the two factors would overflow)."""
    from pyrocompress.priors.relevance import softplus_outer

    gen = torch.Generator().manual_seed(0)
    a = spread * torch.randn(7, 48, generator=gen, dtype=torch.float64)
    b = spread * torch.randn(5, generator=gen, dtype=torch.float64).reshape(-1, 1, 1)
    got = softplus_outer(a, b)
    assert got.shape == (5, 7, 48) and got.dtype == torch.float64
    torch.testing.assert_close(got, _log1p_exp(a + b), rtol=1e-12, atol=1e-300)


def test_softplus_outer_underflow_and_float32():
    """A factor that underflows gives 0 for a value below 1e-19 (the documented bound); in
    float32 the overflow bound is float32's (exp overflows above 88.7 there), and a float32
    grid with float64 offsets is computed in float64, as their sum would be."""
    from pyrocompress.priors.relevance import softplus_outer

    a = torch.tensor([[-1450.0, -700.0, -695.0]], dtype=torch.float64)
    b = torch.tensor([0.0, 1390.0], dtype=torch.float64).reshape(-1, 1, 1)
    got = softplus_outer(a, b)  # r = 695: e^(a + r) = e^-755 underflows, e^(b - r) = e^695
    want = _log1p_exp(a + b)
    assert float(want[1, 0, 0]) > 0.0 and float(got[1, 0, 0]) == 0.0  # e^-60, given as 0
    assert float(got[1, 0, 2]) > 600.0  # the factored path: a + r and b - r near ±695
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-19)
    big = torch.tensor([[100.0, -3.0]])
    off = torch.tensor([-10.0, 40.0]).reshape(-1, 1, 1)
    got32 = softplus_outer(big, off)
    assert got32.dtype == torch.float32 and torch.isfinite(got32).all()
    torch.testing.assert_close(got32, _log1p_exp(big.double() + off.double()).float())
    mixed = softplus_outer(big, off.double())
    assert mixed.dtype == torch.float64
    torch.testing.assert_close(mixed, _log1p_exp(big.double() + off.double()))
