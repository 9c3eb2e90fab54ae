"""Statistical tests of pyrocompress.priors: the analytic KL of every layer's sites.

The analytic KL is computed exactly as :class:`pyro.infer.TraceMeanField_ELBO` does (trace
the guide, replay the model against it, sum ``kl_divergence(guide_fn, model_fn)`` over the
latent sites) and compared with a Monte-Carlo estimate of ``E_q[log q - log p]`` from the
same site distributions, with a tolerance derived from the Monte-Carlo standard error.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO
from torch.distributions import kl_divergence

import pyrocompress.distributions  # noqa: F401  (registers the KLs)
from pyrocompress.distributions import ConditionalSlab
from pyrocompress.nn import bayesianize, mlp
from pyrocompress.priors import (
    Gaussian,
    GroupHorseshoe,
    GroupNormalJeffreys,
    LayerSpec,
    SpikeAndSlab,
    get_prior,
)

N_MC = 20_000
#: Max. error of the Molchanov et al. (2017) approximation, per group (nats).
MOLCHANOV_ERR = 0.01
SMALL_ABS = 1e-6

PRIORS = {
    "gaussian": Gaussian,
    "group-nj": GroupNormalJeffreys,
    "group-horseshoe": GroupHorseshoe,
    "spike-slab": SpikeAndSlab,
}
SPECS = {
    "linear": LayerSpec("l", "linear", (3, 4), True),
    "conv2d": LayerSpec("c", "conv2d", (3, 2, 2, 2), True),
}


pytestmark = pytest.mark.usefixtures("float64")


def _perturb(guide: torch.nn.Module) -> None:
    """Move every variational parameter away from its initial value (seeded by the caller)."""
    with torch.no_grad():
        for name, p in guide.named_parameters():
            noise = torch.randn_like(p)
            if name.endswith("_log_var"):
                p.copy_(-1.0 + 0.3 * noise)
            elif name.startswith(("global_", "local_")):  # horseshoe log-scale locations
                p.add_(0.5 * noise)
            elif name == "scale_loc":  # group normal-Jeffreys scales
                p.copy_(1.0 + 0.5 * noise)
            elif name.endswith("_loc"):
                p.copy_(0.7 * noise)
            elif name == "inclusion_logit":
                p.copy_(noise)
            else:  # pragma: no cover - a new parameter the test does not know
                raise AssertionError(f"unexpected guide parameter {name}")


def _make_guide(prior_key: str, kind: str, seed: int = 0):
    pyro.set_rng_seed(seed)
    prior = PRIORS[prior_key]()
    spec = SPECS[kind]
    guide = prior.guide_family(spec, prior)
    _perturb(guide)
    return prior, spec, guide


def _latent(trace) -> dict:
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"]
    }


def _traces(prior, spec, guide):
    guide_trace = poutine.trace(guide).get_trace()
    model = poutine.replay(lambda: prior.model(spec, torch.zeros(())), trace=guide_trace)
    model_trace = poutine.trace(model).get_trace()
    return guide_trace, model_trace


def _analytic_kl(guide_trace, model_trace) -> torch.Tensor:
    g_sites, m_sites = _latent(guide_trace), _latent(model_trace)
    return sum(kl_divergence(g_sites[n]["fn"], m_sites[n]["fn"]).sum() for n in m_sites)


def _mc_kl(guide_trace, model_trace, n: int = N_MC) -> tuple[float, float]:
    """E_q[sum over sites of log q - log p] over n independent draws of every site."""
    g_sites, m_sites = _latent(guide_trace), _latent(model_trace)
    total = torch.zeros(n)
    for name, m_site in m_sites.items():
        q, p = g_sites[name]["fn"], m_site["fn"]
        if isinstance(q.base_dist, ConditionalSlab):
            lq, lp = _structured_slab_draws(q.base_dist, p.base_dist, n)
        else:
            x = q.sample((n,))
            lq, lp = q.log_prob(x), p.log_prob(x)
        assert lq.shape == lp.shape == (n,), name  # one joint log density per draw and site
        total = total + lq - lp
    assert torch.isfinite(total).all()
    return total.mean().item(), (total.std() / math.sqrt(n)).item()


def _structured_slab_draws(q: ConditionalSlab, p, n: int):
    """Draws of the structured spike-and-slab family: the slab where the gate is on, the
    prior where it is off (then log q = log p). Gates are drawn per weight: the expected
    KL is the same as with one gate per group, and draws stay independent across n."""
    gate = torch.bernoulli(q.inclusion.expand((n, *q.batch_shape)))
    x = torch.where(gate == 1, q.sample((n,)), p.sample((n,)))
    lp = p.log_prob(x)
    lq = torch.where(gate == 1, dist.Normal(q.loc, q.scale).log_prob(x), lp)
    dims = list(range(1, x.dim()))
    return lq.sum(dims), lp.sum(dims)


@pytest.mark.parametrize("kind", SPECS)
@pytest.mark.parametrize("prior_key", PRIORS)
def test_layer_kl_matches_monte_carlo(prior_key, kind):
    prior, spec, guide = _make_guide(prior_key, kind)
    guide_trace, model_trace = _traces(prior, spec, guide)
    assert set(_latent(guide_trace)) == set(_latent(model_trace))
    with torch.no_grad():
        exact = _analytic_kl(guide_trace, model_trace).item()
        mc, se = _mc_kl(guide_trace, model_trace)
    approx = MOLCHANOV_ERR * spec.num_groups if prior_key == "group-nj" else 0.0
    assert math.isfinite(exact) and exact > 0
    assert abs(mc - exact) < 4 * se + approx + SMALL_ABS, (exact, mc, se)


@pytest.mark.parametrize("kind", SPECS)
@pytest.mark.parametrize("prior_key", PRIORS)
def test_mean_field_elbo_uses_the_analytic_kl(prior_key, kind):
    """TraceMeanField_ELBO on the layer's sites alone is exactly minus the analytic KL,
    i.e. every site has a registered KL and no site falls back to sampling."""
    prior, spec, guide = _make_guide(prior_key, kind)
    pyro.set_rng_seed(1)
    guide_trace, model_trace = _traces(prior, spec, guide)
    expected = _analytic_kl(guide_trace, model_trace)
    loss = TraceMeanField_ELBO().differentiable_loss(
        lambda: prior.model(spec, torch.zeros(())), guide
    )
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("prior_key", PRIORS)
def test_bayesianize_mean_field_loss_is_finite(prior_key):
    pyro.set_rng_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    bnn = bayesianize(model, PRIORS[prior_key](), seed=0)
    X = torch.randn(8, 4)
    y = torch.randint(0, 3, (8,))
    loss = TraceMeanField_ELBO().differentiable_loss(bnn, bnn.guide, X, y)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in bnn.guide.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


# ------------------------------------------------------------- inclusion probabilities


def _gate_draws(prior, spec, guide, n=4000):
    """Draws of the gate from the guide, by tracing it (the Monte-Carlo reference)."""
    gates = []
    with torch.no_grad():
        for _ in range(n):
            tr = poutine.trace(guide).get_trace()
            parts = prior.site_priors(spec, torch.zeros(()))
            values = {p: tr.nodes[spec.site(p)]["value"] for p in parts
                      if spec.site(p) in tr.nodes}  # fmt: skip
            gates.append(prior.gate(spec, values))
    return torch.stack(gates)


@pytest.mark.parametrize("key", ["spike-slab", "group-nj", "group-horseshoe"])
@pytest.mark.parametrize("kind", SPECS)
def test_gate_exceedance_matches_guide_draws(key, kind):
    """q(|g| > t) in closed form against the fraction of 4000 guide draws (4 standard errors)."""
    prior, spec, guide = _make_guide(key, kind)
    with torch.no_grad():  # spread the guide so the probabilities are not all 0 or 1
        for name, role in guide.roles.items():
            if role == "log_var":
                getattr(guide, name).fill_(-1.0)
            if role == "logit":
                getattr(guide, name).normal_(0.0, 1.0)
    t = torch.linspace(0.5, 1.5, spec.num_groups)
    exact = guide.gate_exceedance(t).double()
    freq = (_gate_draws(prior, spec, guide).abs() > t).double().mean(0)
    se = (exact * (1 - exact) / 4000).sqrt()
    assert bool(((exact - freq).abs() <= 4 * se + 1e-9).all()), (exact, freq)
    if key == "spike-slab":  # with every threshold under 1 it is q(gamma = 1)
        torch.testing.assert_close(
            guide.gate_exceedance(torch.full((spec.num_groups,), 0.5)),
            torch.sigmoid(guide.inclusion_logit),
        )
    assert bool((guide.gate_exceedance(torch.full((spec.num_groups,), math.inf)) == 0).all())


def test_gate_exceedance_gaussian_raises():
    prior, spec, guide = _make_guide("gaussian", "linear")
    with pytest.raises(ValueError, match="no inclusion"):
        guide.gate_exceedance()


# ------------------------------------------------------------------ hyper-parameters


@pytest.mark.parametrize(
    "make",
    [
        lambda: Gaussian(scale=0),
        lambda: Gaussian(-1),
        lambda: Gaussian(float("inf")),
        lambda: GroupHorseshoe(scale_global=0),
        lambda: GroupHorseshoe(scale_global=-1e-5),
        lambda: SpikeAndSlab(prior_inclusion=0),
        lambda: SpikeAndSlab(1.0),
        lambda: SpikeAndSlab(prior_inclusion=True),
        lambda: SpikeAndSlab(slab_scale=-1),
        lambda: get_prior("nope"),
    ],
)
def test_invalid_hyper_parameters_raise(make):
    with pytest.raises(ValueError):
        make()


def test_get_prior_keys():
    for key, cls in PRIORS.items():
        assert type(get_prior(key)) is cls
    p = SpikeAndSlab(0.3)
    assert get_prior(p) is p


@pytest.mark.parametrize(
    "prior", [Gaussian(scale=0.05), Gaussian(scale=20.0), SpikeAndSlab(slab_scale=0.1)]
)
def test_weight_means_start_at_the_fan_in_scale_whatever_the_prior_scale(prior):
    """Guide means start N(0, 1/fan-in): a narrow prior must not blow them up (nor a wide
    one shrink them). 60,000 draws: the sample std is within 2 % of its value (~7 s.e.)."""
    bnn = bayesianize(mlp([400, 150, 2]), prior, seed=0)
    w = bnn.guide[next(iter(bnn.bayesian_layers()))].weight_loc
    assert w.std().item() == pytest.approx(1 / 400**0.5, rel=0.02)
