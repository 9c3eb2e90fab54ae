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
    FactorisedLogVarNormal,
    IsotropicNormal,
    LogUniform,
    LogVarNormal,
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
    ) + kl_divergence(ConditionalSlab(mu, 2 * sd.log(), pi), dist.Normal(0.0, s))
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
        kl_divergence(ConditionalSlab(mu, 2 * sd.log(), pi), dist.Normal(0.0, s)), pi * full
    )


def test_conditional_slab_through_independent_and_expand():
    mu, sd = torch.zeros(4, 3), torch.full((4, 3), 0.5)
    pi = torch.tensor([0.2, 0.6, 1.0])  # one per column (input group of a Linear weight)
    q = ConditionalSlab(mu, 2 * sd.log(), pi)
    p = dist.Normal(0.0, 1.0).expand((4, 3))
    per_weight = pi * kl_divergence(dist.Normal(mu, sd), dist.Normal(0.0, 1.0))
    torch.testing.assert_close(kl_divergence(q.to_event(2), p.to_event(2)), per_weight.sum())
    e = ConditionalSlab(0.0, 2 * math.log(0.5), 0.3).expand((2, 3))
    assert isinstance(e, ConditionalSlab) and e.inclusion.shape == (2, 3)
    assert q.rsample().shape == (4, 3)  # draws are the slab's: they matter only through γ·w~


# ------------------------------------------------ LogVarNormal and its fused KLs (fast path)


def test_log_var_normal_is_the_normal_it_parametrises():
    torch.manual_seed(0)
    loc, log_var = torch.randn(5, 3), torch.randn(5, 3)
    q, ref = LogVarNormal(loc, log_var), dist.Normal(loc, (0.5 * log_var).exp())
    torch.testing.assert_close(q.scale, ref.scale)
    torch.testing.assert_close(q.variance, ref.variance)
    x = torch.randn(5, 3)
    torch.testing.assert_close(q.log_prob(x), ref.log_prob(x))
    torch.testing.assert_close(q.entropy(), ref.entropy())
    torch.manual_seed(1)
    a = q.rsample((2,))
    torch.manual_seed(1)
    torch.testing.assert_close(a, ref.rsample((2,)))
    e = q.expand((4, 5, 3))
    assert isinstance(e, LogVarNormal) and e.log_var.shape == (4, 5, 3)
    assert isinstance(q.to_event(2), FactorisedLogVarNormal)
    assert isinstance(q.to_event(2).expand((7,)), FactorisedLogVarNormal)
    assert q.to_event(0) is q or q.to_event(0).batch_shape == q.batch_shape


def test_isotropic_normal_is_a_normal():
    p = IsotropicNormal(0.5, 2.0, (3, 4))
    assert p.batch_shape == (3, 4) and (p.loc == 0.5).all() and (p.scale == 2.0).all()
    e = p.expand((2, 3, 4))
    assert isinstance(e, IsotropicNormal) and (e.loc_value, e.scale_value) == (0.5, 2.0)
    x = torch.randn(3, 4)
    torch.testing.assert_close(p.log_prob(x), dist.Normal(0.5, 2.0).log_prob(x))
    with pytest.raises(ValueError, match="scale must be a positive"):
        IsotropicNormal(0.0, 0.0, (2,))


def _reference_kl(loc, log_var, m, s, ndims):
    """torch's own Normal-Normal KL, summed over the event dims."""
    q = dist.Normal(loc, (0.5 * log_var).exp()).to_event(ndims)
    p = dist.Normal(torch.tensor(m), torch.tensor(s)).expand(loc.shape).to_event(ndims)
    return kl_divergence(q, p)


@pytest.mark.parametrize(("m", "s"), [(0.0, 1.0), (0.3, 2.5)])
@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 5, 5), (7,)])
def test_fused_gaussian_kl_value_and_gradient_equal_torch(m, s, shape):
    """The one-node KL against an IsotropicNormal prior (value and gradients) is torch's
    elementwise Normal-Normal KL, summed."""
    torch.manual_seed(3)
    loc = torch.randn(shape, requires_grad=True)
    log_var = (torch.randn(shape) - 2).requires_grad_()
    n = len(shape)
    q = LogVarNormal(loc, log_var).to_event(n)
    p = IsotropicNormal(m, s, shape).to_event(n)
    fused = kl_divergence(q, p)
    ref = _reference_kl(loc, log_var, m, s, n)
    torch.testing.assert_close(fused, ref)
    g_fused = torch.autograd.grad(fused, (loc, log_var))
    g_ref = torch.autograd.grad(ref, (loc, log_var))
    for a, b in zip(g_fused, g_ref, strict=True):
        torch.testing.assert_close(a, b)
    # and the generic route (a plain Normal prior) gives the same value
    plain = dist.Normal(torch.tensor(m), torch.tensor(s)).expand(shape).to_event(n)
    torch.testing.assert_close(kl_divergence(q, plain), ref)


def test_fused_gaussian_kl_gradcheck():
    torch.manual_seed(4)
    loc = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    log_var = (torch.randn(4, 3, dtype=torch.float64) - 1).requires_grad_()

    def f(loc, log_var):
        return kl_divergence(
            LogVarNormal(loc, log_var).to_event(2),
            IsotropicNormal(0.2, 1.3, (4, 3), like=loc).to_event(2),
        )

    assert torch.autograd.gradcheck(f, (loc, log_var))


def test_fused_log_uniform_kl_value_and_gradient_equal_elementwise():
    """The one-node Molchanov KL of a group scale equals the elementwise registered KL,
    summed, in value and gradient; clamped entries (|mu| tiny, log alpha beyond +-30) get
    zero gradient in both."""
    torch.manual_seed(5)
    loc = torch.cat([torch.randn(6), torch.tensor([1e-20, 1e-9])]).requires_grad_()
    log_var = torch.cat([torch.randn(6) * 3, torch.tensor([0.0, -80.0])]).requires_grad_()
    p = LogUniform((8,))
    fused = kl_divergence(LogVarNormal(loc, log_var).to_event(1), p.to_event(1))
    ref = kl_divergence(dist.Normal(loc, (0.5 * log_var).exp()), p).sum()
    torch.testing.assert_close(fused, ref)
    for a, b in zip(
        torch.autograd.grad(fused, (loc, log_var)),
        torch.autograd.grad(ref, (loc, log_var)),
        strict=True,
    ):
        torch.testing.assert_close(a, b)
    d = torch.float64
    inner = (
        torch.randn(5, dtype=d, requires_grad=True),
        (torch.randn(5, dtype=d) - 1).requires_grad_(),
    )
    assert torch.autograd.gradcheck(
        lambda a, b: kl_divergence(LogVarNormal(a, b).to_event(1), LogUniform((5,)).to_event(1)),
        inner,
    )
