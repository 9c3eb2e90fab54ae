"""The exact sampler of horseshoe linear regressions (infer/gibbs.py)."""

import math

import numpy as np
import pytest
import torch
from arviz_stats.base.array import array_stats

import pyrocompress as pc
from pyrocompress import GaussianLikelihood
from pyrocompress.infer import linear_gibbs, site_variable

N, SIGMA, TAU0 = 30, 1.0, 0.5
#: a slab narrow against the signal, so that the draws of c^2 shape the posterior
SLAB = 0.3


def _data():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(N, 1, generator=g)
    y = 0.8 * x[:, 0] + 0.3 + SIGMA * torch.randn(N, generator=g)
    return x, y


def _bnn(prior):
    return pc.bayesianize(
        torch.nn.Linear(1, 1),
        prior=prior,
        likelihood=GaussianLikelihood(SIGMA, learn_noise=False),
        seed=0,
    )


def _log_half_cauchy(log_x, scale):
    """log density of log x for x ~ C+(0, scale)."""
    d = log_x - math.log(scale)
    return math.log(2 / math.pi) + d - np.logaddexp(0.0, 2 * d)


def _exact(prior_key, x, y, t):
    """E[beta], sd[beta] and P(g > t) by quadrature over the scales (beta, b integrated
    out in closed form: given the scales the model is a conjugate Gaussian regression)."""
    X = x[:, 0].double().numpy()
    Y = y.double().numpy()
    Z = np.stack([X, np.ones_like(X)], 1)
    ZtZ, Zty, yty = Z.T @ Z / SIGMA**2, Z.T @ Y / SIGMA**2, Y @ Y / SIGMA**2
    k = 161 if prior_key == "group-horseshoe" else 61
    log_lam = np.linspace(-14, 14, k)
    log_tau = np.linspace(math.log(TAU0) - 14, math.log(TAU0) + 14, k)
    axes = [log_lam, log_tau]
    rate = 2.0 * SLAB**2  # c^2 ~ InvGamma(nu/2, nu s^2/2) with nu = 4
    if prior_key == "regularized-horseshoe":
        axes.append(np.linspace(math.log(rate) - 7, math.log(rate) + 12, k))
    mesh = np.meshgrid(*axes, indexing="ij")
    lp = _log_half_cauchy(mesh[0], 1.0) + _log_half_cauchy(mesh[1], TAU0)
    log_g2 = 2 * (mesh[0] + mesh[1])
    if prior_key == "regularized-horseshoe":
        lc2 = mesh[2]
        lp = lp + (-2.0 * lc2 - rate * np.exp(-lc2))  # density of log c^2
        log_g2 = log_g2 + lc2 - np.logaddexp(lc2, log_g2)
    v = np.exp(log_g2)  # weight_scale 1
    # A = ZtZ + diag(1/v, 1): the 2x2 posterior precision of (beta, b) given the scales
    a11, a12, a22 = ZtZ[0, 0] + 1 / v, ZtZ[0, 1], ZtZ[1, 1] + 1.0
    det = a11 * a22 - a12**2
    m1 = (a22 * Zty[0] - a12 * Zty[1]) / det
    m2 = (a11 * Zty[1] - a12 * Zty[0]) / det
    var1 = a22 / det
    log_ml = -0.5 * np.log(v) - 0.5 * np.log(det) - 0.5 * (yty - (m1 * Zty[0] + m2 * Zty[1]))
    w = np.exp(lp + log_ml - (lp + log_ml).max())
    w /= w.sum()
    mean = float((w * m1).sum())
    sd = math.sqrt(float((w * (var1 + m1**2)).sum()) - mean**2)
    pip = float(w[np.sqrt(v) > t].sum())
    return mean, sd, pip


@pytest.mark.parametrize(
    "prior",
    [
        pc.GroupHorseshoe(scale_global=TAU0),
        pc.RegularizedHorseshoe(scale_global=TAU0, slab_scale=SLAB),
    ],
    ids=["group-horseshoe", "regularized-horseshoe"],
)
def test_draws_have_the_exact_posterior_moments_and_inclusion_probability(prior):
    x, y = _data()
    bnn = _bnn(prior)
    t = 0.3
    tree = linear_gibbs(bnn, x, y, num_samples=3000, warmup_steps=300, num_chains=4, grid=1024)
    post = tree["posterior"]
    layer = bnn.bayesian_layers()[next(iter(bnn.bayesian_layers()))]
    beta = post[site_variable(f"{layer.spec.name}.effective_weight")].values[..., 0, 0]
    mean, sd, pip = _exact(prior.key, x, y, t)
    ess = float(array_stats.ess(beta, chain_axis=0, draw_axis=1))
    assert ess > 1000, ess  # the sampler mixes
    se_mean = sd / math.sqrt(ess)
    assert abs(beta.mean() - mean) < 4.5 * se_mean, (beta.mean(), mean, se_mean)
    # the sd's Monte Carlo error, for a heavy-tailed posterior: from the draws' kurtosis
    kurt = float(((beta - beta.mean()) ** 4).mean() / beta.var() ** 2)
    se_sd = sd * math.sqrt((kurt - 1) / (4 * ess))
    assert abs(beta.std() - sd) < 4.5 * se_sd, (beta.std(), sd, se_sd)
    # P(g > t) by the plain fraction of the draws' gates (+0.01: the quadrature's grid)
    values = {}
    for part in layer.prior.site_priors(layer.spec, torch.zeros(())):
        if part not in ("weight", "bias"):
            value = torch.as_tensor(post[site_variable(layer.spec.site(part))].values).double()
            values[part] = value if value.dim() == 3 else value[..., None]  # [chain, draw, G]
    gates = layer.prior.gate(layer.spec, values).numpy()[..., 0]
    above = (gates > t).astype(float)
    ess_ind = float(array_stats.ess(above, chain_axis=0, draw_axis=1))
    frac = float(above.mean())
    se_frac = math.sqrt(frac * (1 - frac) / ess_ind)
    assert abs(frac - pip) < 4.5 * se_frac + 0.01, (frac, pip, se_frac)


def test_draws_leave_the_callers_random_state_alone_and_repeat_by_seed():
    x, y = _data()
    bnn = _bnn(pc.GroupHorseshoe(scale_global=TAU0))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = linear_gibbs(bnn, x, y, num_samples=20, warmup_steps=5, num_chains=2, seed=7)
    torch.testing.assert_close(torch.rand(3), expected)
    b = linear_gibbs(bnn, x, y, num_samples=20, warmup_steps=5, num_chains=2, seed=7)
    layer = next(iter(bnn.bayesian_layers().values()))
    name = site_variable(layer.spec.site("local_a"))
    assert a["posterior"][name].shape == (2, 20, 1)
    np.testing.assert_array_equal(a["posterior"][name].values, b["posterior"][name].values)


def test_the_draws_feed_the_inclusion_probabilities():
    x, y = _data()
    bnn = _bnn(pc.RegularizedHorseshoe(scale_global=TAU0))
    pc.fit(bnn, (x, y), epochs=5, batch_size=N, progress=False, tol=None)  # records h
    tree = linear_gibbs(bnn, x, y, num_samples=50, warmup_steps=10, num_chains=2)
    (pip,) = pc.Posterior(bnn).inclusion_probabilities(draws=tree).values()
    assert pip.shape == (1,) and 0.0 <= float(pip[0]) <= 1.0


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: pc.bayesianize(pc.mlp([2, 3, 1]), "group-horseshoe"), "2 Bayesian layers"),
        (
            lambda: pc.bayesianize(
                torch.nn.Linear(2, 1),
                "spike-slab",
                likelihood=GaussianLikelihood(1.0, learn_noise=False),
            ),
            "spike-slab",
        ),
        (lambda: pc.bayesianize(torch.nn.Linear(2, 1), "group-horseshoe"), "fixed noise"),
        (
            lambda: pc.bayesianize(
                torch.nn.Linear(2, 2),
                "group-horseshoe",
                likelihood=GaussianLikelihood(1.0, learn_noise=False),
            ),
            "one output",
        ),
    ],
)
def test_other_models_are_refused_with_the_alternative(build, match):
    x = torch.randn(10, 2)
    y = torch.randn(10)
    with pytest.raises(ValueError, match=match) as info:
        linear_gibbs(build(), x, y, num_samples=2, warmup_steps=0, num_chains=1)
    assert "run_nuts" in str(info.value)


@pytest.mark.parametrize("kwargs", [{"num_samples": 0}, {"num_chains": 1.5}, {"grid": 8}])
def test_bad_counts_are_refused(kwargs):
    x, y = _data()
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        linear_gibbs(_bnn(pc.GroupHorseshoe()), x, y, **kwargs)
