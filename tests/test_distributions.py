"""Statistical tests of pyrocompress.distributions: analytic KLs against Monte Carlo.

Every Monte-Carlo comparison uses a tolerance derived from the Monte-Carlo standard error
(``4 * se`` plus a tiny absolute slack for round-off), and, where the analytic value is the
Molchanov et al. (2017) approximation, its documented approximation error (at most about
0.0093 nats, checked by quadrature; 0.01 is used).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import pytest
import scipy.stats
import torch
from torch.distributions import kl_divergence

import pyrocompress.distributions  # noqa: F401  (registers the KLs)
from pyrocompress.distributions import (
    ConditionalSlab,
    LogUniform,
    MarginalizedBernoulli,
    half_cauchy_scale_parts,
    neg_kl_log_uniform,
)

N_MC = 200_000
#: Max. error of the Molchanov et al. (2017) approximation of KL(N || log-uniform).
MOLCHANOV_ERR = 0.01
#: Slack for float64 round-off on top of the Monte-Carlo tolerance.
SMALL_ABS = 1e-6

TAU0 = 1e-5  # the horseshoe's default global scale


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread: the tensors are small, and on a shared 2-core machine OpenMP's
    barriers make two threads several times slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _mc_kl(q, p, n: int = N_MC) -> tuple[float, float]:
    """Monte-Carlo estimate of E_q[log q - log p] and its standard error."""
    x = q.sample((n,))
    d = q.log_prob(x) - p.log_prob(x)
    assert torch.isfinite(d).all()
    return d.mean().item(), (d.std() / math.sqrt(n)).item()


def _f64(*xs: float) -> list[torch.Tensor]:
    return [torch.tensor(x, dtype=torch.float64) for x in xs]


# ------------------------------------------------------------ LogNormal || Gamma / InvGamma

GAMMA_CASES = [
    # (mu, s, k, rate)
    (0.3, 0.5, 2.0, 1.5),
    (0.0, 0.1, 3.0, 0.5),
    (-1.0, 1.0, 0.5, 1.0),  # horseshoe local factor a_g ~ Gamma(1/2, 1)
    (2.0 * math.log(TAU0), 0.5, 0.5, TAU0**-2),  # horseshoe global factor s_a at its init
    (2.0 * math.log(TAU0) + 1.0, 0.3, 0.5, TAU0**-2),
]

INV_GAMMA_CASES = [
    (0.3, 0.5, 2.0, 1.5),
    (0.0, 1.0, 0.5, 1.0),  # horseshoe local factor b_g ~ InvGamma(1/2, 1)
    (-0.5, 0.6, 0.5, 1.0),
    (-2.0 * math.log(TAU0), 0.5, 0.5, 1.0),  # horseshoe global factor s_b at its init
]


@pytest.mark.parametrize(("mu", "s", "k", "rate"), GAMMA_CASES)
def test_kl_lognormal_gamma_matches_monte_carlo(mu, s, k, rate):
    torch.manual_seed(0)
    mu, s, k, rate = _f64(mu, s, k, rate)
    q, p = dist.LogNormal(mu, s), dist.Gamma(k, rate)
    exact = kl_divergence(q, p).item()
    mc, se = _mc_kl(q, p)
    assert math.isfinite(exact)
    assert abs(mc - exact) < 4 * se + SMALL_ABS, (exact, mc, se)


@pytest.mark.parametrize(("mu", "s", "k", "rate"), INV_GAMMA_CASES)
def test_kl_lognormal_inverse_gamma_matches_monte_carlo(mu, s, k, rate):
    torch.manual_seed(1)
    mu, s, k, rate = _f64(mu, s, k, rate)
    q, p = dist.LogNormal(mu, s), dist.InverseGamma(k, rate)
    exact = kl_divergence(q, p).item()
    mc, se = _mc_kl(q, p)
    assert math.isfinite(exact)
    assert abs(mc - exact) < 4 * se + SMALL_ABS, (exact, mc, se)


def test_kl_lognormal_gamma_batched_shapes():
    """Batched parameters broadcast elementwise, as TraceMeanField_ELBO needs."""
    mu = torch.tensor([0.3, -1.0], dtype=torch.float64)
    s = torch.tensor([0.5, 1.0], dtype=torch.float64)
    k = torch.tensor(0.5, dtype=torch.float64)
    rate = torch.tensor(1.0, dtype=torch.float64)
    kl = kl_divergence(dist.LogNormal(mu, s), dist.Gamma(k, rate).expand((2,)))
    assert kl.shape == (2,)
    for i in range(2):
        one = kl_divergence(dist.LogNormal(mu[i], s[i]), dist.Gamma(k, rate))
        torch.testing.assert_close(kl[i], one)
    kl_inv = kl_divergence(dist.LogNormal(mu, s), dist.InverseGamma(k, rate).expand((2,)))
    assert kl_inv.shape == (2,)


# ------------------------------------------------------------------ Normal || LogUniform

LOG_ALPHAS = [-6.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 6.0]


@pytest.mark.parametrize(
    ("mu", "log_alpha"), [(0.7 if i % 2 else -2.5, la) for i, la in enumerate(LOG_ALPHAS)]
)
def test_kl_normal_log_uniform_matches_monte_carlo(mu, log_alpha):
    """The Molchanov approximation agrees with E_q[log q - log p] for the library's
    normalisation of the improper log-uniform density, within its ~0.01 nat error."""
    torch.manual_seed(2)
    loc = torch.tensor(mu, dtype=torch.float64)
    scale = loc.abs() * math.exp(0.5 * log_alpha)
    q, p = dist.Normal(loc, scale), LogUniform()
    exact = kl_divergence(q, p).item()
    mc, se = _mc_kl(q, p)
    assert abs(mc - exact) < 4 * se + MOLCHANOV_ERR + SMALL_ABS, (exact, mc, se)


@pytest.mark.parametrize("log_alpha", [-6.0, -1.5, 0.0, 2.5, 6.0])
def test_kl_normal_log_uniform_depends_on_alpha_only(log_alpha):
    kls = []
    for mu in (0.3, -2.5, 40.0):
        loc = torch.tensor(mu, dtype=torch.float64)
        q = dist.Normal(loc, loc.abs() * math.exp(0.5 * log_alpha))
        kls.append(kl_divergence(q, LogUniform()))
    expected = -neg_kl_log_uniform(torch.tensor(log_alpha, dtype=torch.float64))
    for kl in kls:
        torch.testing.assert_close(kl, expected, rtol=1e-9, atol=1e-12)


def test_kl_normal_log_uniform_broadcasts_to_prior_batch():
    q = dist.Normal(torch.ones(4, dtype=torch.float64), 0.5)
    kl = kl_divergence(q.to_event(1), LogUniform((4,)).to_event(1))
    one = kl_divergence(dist.Normal(torch.tensor(1.0, dtype=torch.float64), 0.5), LogUniform())
    torch.testing.assert_close(kl, 4 * one)


def test_neg_kl_log_uniform_monotone_and_limit():
    log_alpha = torch.linspace(-20.0, 20.0, 4001, dtype=torch.float64)
    kl = -neg_kl_log_uniform(log_alpha)
    # KL(q || p) strictly decreases as the relative variance alpha grows ...
    assert (kl.diff() < 0).all()
    assert (kl > 0).all()
    # ... tends to 0 as alpha -> inf ...
    assert abs(neg_kl_log_uniform(torch.tensor(40.0, dtype=torch.float64)).item()) < 1e-12
    # ... and grows like -0.5 log(alpha) + const as alpha -> 0 (k1 + 0.5*log(1/alpha)).
    small = torch.tensor(-20.0, dtype=torch.float64)
    assert abs(-neg_kl_log_uniform(small).item() - (0.63576 + 10.0)) < 1e-6


def test_log_uniform_log_prob_is_scale_invariant():
    z = torch.tensor([0.1, -0.7, 3.0, -25.0], dtype=torch.float64)
    p = LogUniform((4,))
    lp = p.log_prob(z)
    assert lp.shape == (4,)
    torch.testing.assert_close(p.log_prob(-z), lp)
    torch.testing.assert_close(p.log_prob(3.0 * z), lp - math.log(3.0))


def test_log_uniform_cannot_be_sampled():
    with pytest.raises(NotImplementedError, match="guide"):
        LogUniform().sample()
    with pytest.raises(NotImplementedError, match="guide"):
        LogUniform((3,)).expand((2, 3)).sample()


# ------------------------------------------------------------------ half-Cauchy parts


@pytest.mark.parametrize("b", [1e-5, 1.0, 3.0])
def test_half_cauchy_scale_parts_product_is_half_cauchy(b):
    torch.manual_seed(3)
    n = 20_000
    gamma, inv_gamma = half_cauchy_scale_parts(b)
    a = gamma.sample((n,)).double()
    beta = inv_gamma.sample((n,)).double()
    r = (a * beta).sqrt().numpy()
    res = scipy.stats.kstest(r, scipy.stats.halfcauchy(scale=b).cdf)
    assert res.pvalue > 1e-3, res


def test_half_cauchy_scale_parts_shapes_and_parameters():
    gamma, inv_gamma = half_cauchy_scale_parts(2.0, (5,))
    assert gamma.batch_shape == (5,) and inv_gamma.batch_shape == (5,)
    for value, expected in (
        (gamma.concentration, 0.5),
        (gamma.rate, 0.25),
        (inv_gamma.concentration, 0.5),
        (inv_gamma.rate, 1.0),
    ):
        torch.testing.assert_close(value, torch.full((5,), expected), check_dtype=False)


# ---------------------------------------------------------------- MarginalizedBernoulli


def test_marginalized_bernoulli_kl_closed_form():
    p = torch.tensor([0.1, 0.5, 0.93, 0.3], dtype=torch.float64)
    lam = torch.tensor([0.3, 0.5, 0.2, 0.99], dtype=torch.float64)
    kl = kl_divergence(MarginalizedBernoulli(probs=p), dist.Bernoulli(probs=lam))
    closed = p * (p / lam).log() + (1 - p) * ((1 - p) / (1 - lam)).log()
    torch.testing.assert_close(kl, closed, rtol=1e-10, atol=1e-12)
    # also through Independent, as the spike-and-slab sites use it
    kl_ev = kl_divergence(
        MarginalizedBernoulli(probs=p).to_event(1), dist.Bernoulli(probs=lam).to_event(1)
    )
    torch.testing.assert_close(kl_ev, closed.sum(), rtol=1e-10, atol=1e-12)


def test_marginalized_bernoulli_rsample():
    torch.manual_seed(4)
    logits = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    q = MarginalizedBernoulli(logits=logits)
    assert q.has_rsample is True
    n = 20_000
    x = q.rsample((n,))
    assert x.shape == (n, 3)
    assert not x.requires_grad  # a detached draw
    assert ((x == 0) | (x == 1)).all()
    probs = torch.sigmoid(logits.detach())
    se = (probs * (1 - probs) / n).sqrt()
    assert ((x.mean(0) - probs).abs() < 4 * se).all()


def test_marginalized_bernoulli_expand_keeps_class():
    q = MarginalizedBernoulli(probs=torch.tensor([0.2, 0.7]))
    e = q.expand((3, 2))
    assert isinstance(e, MarginalizedBernoulli)
    assert e.has_rsample
    assert e.batch_shape == (3, 2)
    torch.testing.assert_close(e.probs, torch.tensor([0.2, 0.7]).expand(3, 2))
    assert e.rsample().shape == (3, 2)


# --------------------------------------------------------------------- ConditionalSlab


def test_conditional_slab_kl_is_the_structured_spike_and_slab_kl():
    """KL(q(γ) q(w~|γ) || p(γ) p(w~)) by Monte Carlo over the structured family, with
    q(w~|γ=0) = p(w~), equals KL(Bernoulli) + the registered KL(ConditionalSlab || Normal)."""
    torch.manual_seed(11)
    pi = torch.tensor([0.05, 0.5, 0.9], dtype=torch.float64)
    lam, s = 0.1, 1.5
    mu = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    sd = torch.tensor([0.2, 0.7, 1.1], dtype=torch.float64)
    analytic = kl_divergence(
        dist.Bernoulli(probs=pi), dist.Bernoulli(probs=torch.tensor(lam, dtype=torch.float64))
    ) + kl_divergence(ConditionalSlab(mu, sd, pi), dist.Normal(0.0, s))
    g = torch.bernoulli(pi.expand(N_MC, 3))
    slab = mu + sd * torch.randn(N_MC, 3, dtype=torch.float64)
    w = torch.where(g == 1, slab, s * torch.randn(N_MC, 3, dtype=torch.float64))
    log_q = dist.Bernoulli(probs=pi).log_prob(g) + torch.where(
        g == 1, dist.Normal(mu, sd).log_prob(w), dist.Normal(0.0, s).log_prob(w)
    )
    log_p = dist.Bernoulli(probs=torch.tensor(lam, dtype=torch.float64)).log_prob(g)
    log_p = log_p + dist.Normal(0.0, s).log_prob(w)
    diff = log_q - log_p
    se = diff.std(0) / math.sqrt(N_MC)
    assert ((diff.mean(0) - analytic).abs() < 4 * se + SMALL_ABS).all(), (diff.mean(0), analytic)
    # the slab's KL is charged in proportion to the inclusion probability
    full = kl_divergence(dist.Normal(mu, sd), dist.Normal(0.0, s))
    torch.testing.assert_close(
        kl_divergence(ConditionalSlab(mu, sd, pi), dist.Normal(0.0, s)), pi * full
    )


def test_conditional_slab_through_independent_and_expand():
    mu, sd = torch.zeros(4, 3), torch.full((4, 3), 0.5)
    pi = torch.tensor([0.2, 0.6, 1.0])  # one per column (input group of a Linear weight)
    q = ConditionalSlab(mu, sd, pi)
    p = dist.Normal(0.0, 1.0).expand((4, 3))
    per_weight = pi * kl_divergence(dist.Normal(mu, sd), dist.Normal(0.0, 1.0))
    torch.testing.assert_close(kl_divergence(q.to_event(2), p.to_event(2)), per_weight.sum())
    e = ConditionalSlab(0.0, 0.5, 0.3).expand((2, 3))
    assert isinstance(e, ConditionalSlab) and e.inclusion.shape == (2, 3)
    assert q.rsample().shape == (4, 3)  # draws are the slab's: they matter only through γ·w~
