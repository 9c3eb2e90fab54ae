"""Tests of the spike-and-slab prior's slab scale: a fixed one, or one per layer (fan-in).

The structured KL of the weights, :math:`\\pi\\,\\mathrm{KL}(N(\\mu, \\sigma^2) \\| N(0, s^2))`
(Bai, Song & Cheng 2020, eq. 5), is compared with a Monte-Carlo estimate of
:math:`E_q[\\log q - \\log p]` under the structured family with the layer's slab
:math:`s = 1/\\sqrt{\\text{fan-in}}`.
"""

from __future__ import annotations

import math
from typing import Any, cast

import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from torch.distributions import kl_divergence

import pyrocompress as pc
from pyrocompress.distributions import ConditionalSlab, MarginalizedBernoulli
from pyrocompress.priors import LayerSpec, SpikeAndSlab

SPECS = {
    "linear": LayerSpec("l", "linear", (3, 16), True),
    "conv2d": LayerSpec("c", "conv2d", (3, 2, 3, 3), True),
}


@pytest.mark.parametrize("kind", SPECS)
def test_fan_in_slab_scale_per_layer(kind):
    spec = SPECS[kind]
    prior = SpikeAndSlab(slab_scaling="fan_in")
    s = 1.0 / math.sqrt(spec.fan_in)  # Linear (3, 16): 1/4; Conv2d (3, 2, 3, 3): 1/sqrt(18)
    assert prior.slab_sd(spec) == pytest.approx(s)
    priors = prior.site_priors(spec, torch.zeros(()))
    weight = priors["weight"].base_dist
    assert weight.scale_value == pytest.approx(s)
    assert torch.allclose(weight.scale, torch.full(spec.weight_shape, s))
    assert priors["bias"].base_dist.scale_value == 1.0  # biases keep bias_scale
    # a second call returns the cached priors with the layer's slab
    assert prior.site_priors(spec, torch.zeros(()))["weight"].base_dist.scale_value == s
    # a gain multiplies it; a fixed slab scale is the same in every layer
    gain = SpikeAndSlab(slab_scale=3.0, slab_scaling="fan_in")
    assert gain.slab_sd(spec) == pytest.approx(3.0 * s)
    assert SpikeAndSlab(slab_scale=0.3).slab_sd(spec) == 0.3


def test_fan_in_slab_identity_and_validation():
    fan_in, fixed = SpikeAndSlab(slab_scaling="fan_in"), SpikeAndSlab(slab_scale=1.0)
    assert fan_in != fixed and fan_in == SpikeAndSlab(0.1, 1.0, "fan_in")
    assert fan_in != SpikeAndSlab(slab_scale=2.0, slab_scaling="fan_in")
    assert hash(fan_in) == hash(SpikeAndSlab(slab_scaling="fan_in"))
    assert "slab_scaling='fan_in'" in repr(fan_in)  # the checkpoint config's prior text
    with pytest.raises(ValueError, match="slab_scaling must be one of"):
        SpikeAndSlab(slab_scaling="fan_out")
    with pytest.raises(ValueError, match="slab_scale must be a positive"):
        SpikeAndSlab(slab_scale=0.0)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("kind", SPECS)
def test_structured_kl_with_fan_in_slab_matches_monte_carlo(kind):
    spec = SPECS[kind]
    prior = SpikeAndSlab(slab_scaling="fan_in")
    s = prior.slab_sd(spec)
    guide = prior.guide_family(spec, prior)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # weights of the size of the slab, variances well below it
        guide.weight_loc.copy_(s * torch.randn(spec.weight_shape, generator=g))
        guide.weight_log_var.copy_(
            math.log(s * s) - 2.0 + 0.3 * torch.randn(spec.weight_shape, generator=g)
        )
        guide.inclusion_logit.copy_(torch.randn(spec.num_groups, generator=g))
    trace = poutine.trace(guide).get_trace()
    q_weight = cast(Any, trace.nodes[spec.site("weight")])["fn"].base_dist
    prior_weight = prior.site_priors(spec, torch.zeros(()))["weight"].base_dist
    assert isinstance(q_weight, ConditionalSlab)
    exact = kl_divergence(q_weight, prior_weight).sum().item()
    # the closed form: pi * KL(N(mu, sigma^2) || N(0, s^2)) summed over the weights
    mu, var, pi = q_weight.loc, q_weight.variance, q_weight.inclusion
    closed = (pi * 0.5 * ((var + mu**2) / s**2 - 1.0 - torch.log(var / s**2))).sum().item()
    assert exact == pytest.approx(closed, rel=1e-10)
    # Monte Carlo over the structured family: the slab where the gate is on (log q - log p
    # of the draw), the prior where it is off (log q = log p, the term is 0)
    n = 8_000
    torch.manual_seed(1)
    gate = torch.bernoulli(pi.expand((n, *pi.shape)))
    x = torch.where(gate == 1, q_weight.sample((n,)), prior_weight.sample((n,)))
    ratio = dist.Normal(mu, q_weight.scale).log_prob(x) - prior_weight.log_prob(x)
    total = torch.where(gate == 1, ratio, torch.zeros(())).flatten(1).sum(1)
    mc, se = total.mean().item(), (total.std() / math.sqrt(n)).item()
    # 4 Monte-Carlo standard errors: a false failure about once in 16,000 runs
    assert abs(mc - exact) < 4.0 * se, (mc, exact, se)


def test_relevance_threshold_uses_the_layer_slab():
    bnn = pc.bayesianize(pc.mlp([16, 4, 2]), SpikeAndSlab(slab_scaling="fan_in"), seed=0)
    for name in bnn.bayesian_layers():
        guide = bnn.guide[name]
        info = torch.linspace(0.5, 4.0, guide.spec.num_groups)
        guide.information.copy_(info)
        s = 1.0 / math.sqrt(guide.spec.fan_in)
        assert torch.allclose(guide.relevance_threshold(), 1.0 / (s * info.sqrt()))


def test_straight_through_gates_are_bernoulli_draws_with_relaxed_gradients():
    spec = SPECS["linear"]
    prior = SpikeAndSlab(estimator="straight-through", temperature=0.5)
    logits = torch.linspace(-2.0, 2.0, spec.num_groups).requires_grad_()
    q: dict[str, dist.Distribution] = {"inclusion": MarginalizedBernoulli(logits=logits)}
    n = 20_000
    torch.manual_seed(0)
    gate = prior.local_gate(spec, n, q)
    assert isinstance(gate, torch.Tensor) and gate.shape == (n, spec.num_groups)
    assert set(gate.detach().unique().tolist()) <= {0.0, 1.0}  # exact Bernoulli draws
    pi = torch.sigmoid(logits.detach())
    se = (pi * (1 - pi) / n).sqrt()
    # 4 binomial standard errors per group: a false failure about once in 16,000 runs
    assert ((gate.detach().mean(0) - pi).abs() < 4 * se).all()
    # the gradient is that of the relaxed draws sigmoid((logit + L) / tau): positive
    gate.sum().backward()
    assert logits.grad is not None and (logits.grad > 0).all()
    with pytest.raises(ValueError, match="estimator must be one of"):
        SpikeAndSlab(estimator="reinforce")


def test_moment_gates_are_the_inclusion_probabilities():
    spec = SPECS["linear"]
    logits = torch.linspace(-2.0, 2.0, spec.num_groups)
    q: dict[str, dist.Distribution] = {"inclusion": MarginalizedBernoulli(logits=logits)}
    gate = SpikeAndSlab().local_gate(spec, 5, q)
    assert isinstance(gate, tuple)
    m1, m2 = gate
    assert torch.allclose(m1, torch.sigmoid(logits)) and torch.allclose(m2, m1)


@pytest.mark.parametrize("estimator", ["moments", "straight-through"])
def test_fit_with_each_estimator(estimator):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(128, 6, generator=g)
    y = (X[:, 0] + X[:, 1] > 0).long()
    prior = SpikeAndSlab(slab_scaling="fan_in", estimator=estimator)
    bnn = pc.bayesianize(pc.mlp([6, 8, 2]), prior, seed=0)
    history = pc.fit(bnn, (X, y), epochs=20, batch_size=64, lr=2e-2, seed=0, progress=False)
    assert all(math.isfinite(x) for x in history.loss)
    assert history.loss[-1] < history.loss[0]
    assert bnn.point_error(X, y) < 0.2  # a linearly separable rule, 128 examples
