"""``elbo_estimate``: the ELBO per example of a fitted posterior, with its standard error."""

import math

import pytest
import torch

import pyrocompress as pc
from pyrocompress.infer import LocalReparamELBO, elbo_estimate


@pytest.fixture(scope="module")
def fitted():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 4, generator=g)
    y = X[:, 0] - 0.5 * X[:, 1] + 0.3 * torch.randn(300, generator=g)
    bnn = pc.bayesianize(pc.mlp([4, 8, 1]), "group-horseshoe", likelihood="gaussian", seed=0)
    pc.fit(bnn, (X, y), epochs=30, batch_size=300, tol=None, progress=False)
    return bnn, X, y


def test_it_is_minus_the_training_loss_per_example_at_full_kl_weight(fitted):
    bnn, X, y = fitted
    est = elbo_estimate(bnn, (X, y), num_particles=50, seed=1)
    assert (est.n, est.num_particles) == (300, 50)
    with torch.no_grad(), pc.rng.seeded(11):
        draws = [
            -float(LocalReparamELBO().differentiable_loss(bnn, bnn.guide, X, y)) / 300
            for _ in range(400)
        ]
    mean = sum(draws) / len(draws)
    sd = math.sqrt(sum((d - mean) ** 2 for d in draws) / (len(draws) - 1))
    # two independent Monte-Carlo means of the same quantity: within 4 combined SEs
    assert abs(est.mean - mean) < 4 * math.hypot(est.se, sd / math.sqrt(len(draws)))
    assert est.se == pytest.approx(sd / math.sqrt(50), rel=0.5)  # the SE of 50 draws


def test_minibatches_scaled_to_n_estimate_the_same_elbo(fitted):
    bnn, X, y = fitted
    full = elbo_estimate(bnn, (X, y), num_particles=100, seed=2)
    sub = elbo_estimate(bnn, (X, y), num_particles=400, batch_size=60, seed=3)
    assert sub.se > full.se  # the subsampling adds variance
    assert abs(sub.mean - full.mean) < 4 * math.hypot(sub.se, full.se)


def test_it_is_seeded_and_leaves_the_callers_random_state_alone(fitted):
    bnn, X, y = fitted
    torch.manual_seed(123)
    before, mode = torch.get_rng_state(), bnn.training
    a = elbo_estimate(bnn, (X, y), num_particles=10, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    assert elbo_estimate(bnn, (X, y), num_particles=10, seed=5) == a
    assert bnn.training == mode  # the network's mode is restored


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"num_particles": 1}, "num_particles"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_arguments_are_refused_by_name(fitted, kwargs, match):
    bnn, X, y = fitted
    with pytest.raises(ValueError, match=match):
        elbo_estimate(bnn, (X, y), **kwargs)


def test_it_equals_the_closed_form_elbo_of_a_gaussian_linear_model():
    """Gaussian prior, linear layer, Gaussian likelihood of known noise: the ELBO is exact.

    With :math:`a_n = w^\top x_n + b`, :math:`q` Gaussian with means :math:`m` and
    variances :math:`v`, :math:`E_q \\log N(y_n; a_n, \\sigma^2) = \\log N(y_n; \bar a_n,
    \\sigma^2) - \\operatorname{Var}(a_n) / (2\\sigma^2)`, and both KLs are analytic.
    """
    import pyro.poutine as poutine
    from torch import nn
    from torch.distributions import Normal, kl_divergence

    from pyrocompress.distributions import GaussianLikelihood

    g = torch.Generator().manual_seed(1)
    X = torch.randn(200, 3, generator=g)
    y = X @ torch.tensor([1.0, 0.0, -0.5]) + 0.5 * torch.randn(200, generator=g)
    bnn = pc.bayesianize(
        nn.Linear(3, 1), "gaussian", seed=0, likelihood=GaussianLikelihood(0.5, learn_noise=False)
    )
    pc.fit(bnn, (X, y), epochs=20, batch_size=50, tol=None, progress=False)
    est = elbo_estimate(bnn, (X, y), num_particles=400, seed=0)

    params = dict(bnn.named_parameters())
    q = {
        site: Normal(
            params[f"guide.layers.layer.{site}_loc"].detach().reshape(-1),
            (params[f"guide.layers.layer.{site}_log_var"].detach().reshape(-1) / 2).exp(),
        )
        for site in ("weight", "bias")
    }
    trace = poutine.trace(bnn).get_trace(X, y)
    kl = sum(
        kl_divergence(q[site], trace.nodes[f"layer.{site}"]["fn"].base_dist).sum()
        for site in ("weight", "bias")
    )
    mean = X @ q["weight"].mean + q["bias"].mean
    var = X**2 @ q["weight"].variance + q["bias"].variance
    expected_log_lik = (Normal(mean, 0.5).log_prob(y) - var / (2 * 0.25)).sum()
    exact = float(expected_log_lik - kl) / 200
    assert abs(est.mean - exact) < 4 * est.se + 1e-6, (est, exact)
