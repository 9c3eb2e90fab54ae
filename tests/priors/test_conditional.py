"""Weights Gaussian given their group's gate (priors/conditional.py, guide="conditional")."""

import math

import pyro.poutine as poutine
import pytest
import torch
from torch import nn
from torch.distributions import kl_divergence

import pyrocompress as pc
from pyrocompress.distributions import IsotropicNormal
from pyrocompress.priors import LayerGuide, LayerSpec
from pyrocompress.priors.conditional import effective_factor

PRIORS = ["group-horseshoe", "group-nj", "regularized-horseshoe"]


def _guide(key, kind="linear"):
    prior = pc.priors.get_prior(key)
    shape = (3, 4) if kind == "linear" else (3, 2, 2, 2)
    spec = LayerSpec("L", kind, shape, True)
    torch.manual_seed(0)
    guide = prior.guide_family(spec, prior, weights="conditional")
    with torch.no_grad():  # a spread-out posterior, so that every term matters
        for name, role in guide.roles.items():
            p = getattr(guide, name)
            if role == "log_var":
                p.fill_(-1.0)
            elif role == "weight_log_var":
                p.uniform_(-3.0, -1.0)
            elif role == "logit":
                p.normal_(0.0, 1.5)
            elif role == "weight_loc":
                p.normal_(0.0, 1.0)
    return prior, spec, guide


def _draws(prior, spec, guide, n):
    out = []
    with torch.no_grad():
        for _ in range(n):
            nodes = poutine.trace(guide).get_trace().nodes
            out.append({k[2:]: v["value"] for k, v in nodes.items() if v["type"] == "sample"})
    return out


@pytest.mark.parametrize("key", PRIORS)
@pytest.mark.parametrize("kind", ["linear", "conv2d"])
def test_weight_kl_matches_monte_carlo(key, kind):
    """E_q(g) KL(q(w~|g) || N(0, s^2)) by quadrature against E[log q(w~|g) - log p(w~)]."""
    prior, spec, guide = _guide(key, kind)
    q_w, _ = guide._conditional_guides(None)
    p = IsotropicNormal(0.0, 1.0, spec.weight_shape)
    exact = kl_divergence(q_w, p).sum().item()
    terms = []
    with torch.no_grad():
        for _ in range(1000):
            nodes = poutine.trace(guide).get_trace().nodes
            fn, w = nodes["L.weight"]["fn"], nodes["L.weight"]["value"]
            terms.append((fn.log_prob(w) - p.to_event(len(spec.weight_shape)).log_prob(w)).item())
    t = torch.tensor(terms, dtype=torch.float64)
    se = t.std().item() / math.sqrt(len(t))
    assert abs(t.mean().item() - exact) < 4 * se + 1e-3 * abs(exact), (exact, t.mean().item(), se)


@pytest.mark.parametrize("key", PRIORS)
@pytest.mark.parametrize("kind", ["linear", "conv2d"])
def test_effective_moments_match_guide_draws(key, kind):
    prior, spec, guide = _guide(key, kind)
    draws = _draws(prior, spec, guide, 1000)
    eff = torch.stack(
        [d["weight"] * spec.expand_groups(prior.gate(spec, d)) for d in draws]
    ).double()
    mean, var = (t.double() for t in guide.effective_moments())
    se = eff.std(0) / math.sqrt(len(eff))
    assert bool(((eff.mean(0) - mean).abs() <= 4.5 * se + 1e-4).all())
    # the variance of a sample variance: (m4 - var^2) / n
    centred = eff - eff.mean(0)
    se_var = ((centred**4).mean(0) - centred.square().mean(0) ** 2).clamp_min(0).sqrt() / math.sqrt(
        1000
    )
    assert bool(((centred.square().mean(0) - var).abs() <= 4.5 * se_var + 1e-4).all())


def test_local_reparametrisation_moments_given_the_gates():
    """Given per-example gates, the pre-activation is N(sum x phi mu, sum x^2 phi v)."""
    bnn = pc.bayesianize(nn.Linear(4, 3), "group-horseshoe", likelihood="gaussian",
                         guide="conditional", seed=0)  # fmt: skip
    layer, guide = bnn.bayesian_layers()["layer"], bnn.guide["layer"]
    with torch.no_grad():
        guide.gate_coupling_logit.normal_(0.0, 2.0)
    q_w, q_b = guide._conditional_guides(None)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=g)
    gate = torch.rand(5, 4, generator=g) * 3
    mean, var = layer._conditional_moments(x, q_w, q_b, gate)
    # explicit per-example weights: w = g * w~ with w~ | g ~ N(g mu / D, v / D)
    d = (1 - q_w.coupling) + q_w.coupling * gate.unsqueeze(1) ** 2  # [5, 3, 4]
    w_mean = gate.unsqueeze(1) ** 2 * q_w.loc_at_one / d
    w_var = gate.unsqueeze(1) ** 2 * q_w.log_var.exp() / d
    torch.testing.assert_close(mean, (x.unsqueeze(1) * w_mean).sum(-1) + q_b.loc)
    torch.testing.assert_close(var, (x.unsqueeze(1) ** 2 * w_var).sum(-1) + q_b.variance)
    phi = effective_factor(gate, q_w.group_coupling)[:, None, :]
    torch.testing.assert_close(phi.expand_as(w_mean), w_mean / q_w.loc_at_one)


@pytest.mark.parametrize("key", PRIORS)
def test_fit_prune_and_datatree_with_conditional_weights(key, relevant_data, tmp_path):
    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([8, 6, 2]), key, guide="conditional", seed=0)
    assert all(g.weights == "conditional" for _, g in bnn.guide._layer_guides())
    pc.fit(bnn, (X, y), epochs=3, batch_size=200, lr=1e-2, progress=False)
    pips = pc.Posterior(bnn).inclusion_probabilities(num_samples=50)
    assert all(bool(((p >= 0) & (p <= 1)).all()) for p in pips.values())
    result = pc.prune(bnn, rule="pip", validation=(X, y))
    assert result.module(X).shape == (len(X), 2)
    state = bnn.state_dict()
    again = pc.bayesianize(pc.mlp([8, 6, 2]), key, guide="conditional", seed=1)
    again.load_state_dict(state)
    torch.testing.assert_close(again.predict_point(X), bnn.predict_point(X))


def test_guide_choice_is_validated_and_falls_back_without_a_continuous_gate():
    with pytest.raises(ValueError, match="guide must be one of"):
        pc.bayesianize(nn.Linear(3, 1), "group-nj", guide="full-rank")
    bnn = pc.bayesianize(pc.mlp([3, 4, 2]), {"1": "spike-slab", "3": "group-nj"},
                         guide="conditional", seed=0)  # fmt: skip
    assert bnn.guide["1"].weights == "mean-field" and bnn.guide["3"].weights == "conditional"
    prior = pc.priors.get_prior("gaussian")
    with pytest.raises(ValueError, match="continuous gate"):
        LayerGuide(LayerSpec("L", "linear", (2, 3), True), prior, weights="conditional")
