"""Statistical tests of the local reparametrisation trick (pyrocompress.reparam / nn).

Under :class:`~pyrocompress.reparam.LocalReparameterization` a Bayesian layer samples its
pre-activations per example instead of sharing one weight draw across the batch. Per
output unit both estimators must have the same marginal distribution, in particular the
same mean and variance; for the spike-and-slab prior the LRT matches the first two moments
exactly (the gate is marginalised in them) while the distribution itself is not Gaussian,
so moments are what is tested.

Three Monte-Carlo estimates of the per-output moments are compared, each with tolerances
from its own standard errors (``se(mean) = sd / sqrt(S)``; ``se(var)`` from the sample
fourth central moment, ``sqrt((m4 - var^2) / S)``, which is ``var sqrt(2/S)`` for Gaussian
outputs and stays valid for the heavier-tailed gated ones):

* explicit sampling: one weight draw from the guide per forward pass, replayed into the
  layer's plain (non-LRT) forward,
* the LRT forward of the layer,
* the exact moments, computed in this file from the guide parameters.
"""

from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
import torch.nn.functional as F

from pyrocompress.effects import guide_distribution
from pyrocompress.infer import LocalReparamELBO, LocalReparameterization
from pyrocompress.nn import bayesianize
from pyrocompress.priors import Gaussian, GroupHorseshoe, GroupNormalJeffreys, SpikeAndSlab

S = 20_000
Z = 5.0  # tolerance in standard errors (several hundred comparisons per test)

PRIORS = {
    "gaussian": Gaussian,
    "group-nj": GroupNormalJeffreys,
    "group-horseshoe": GroupHorseshoe,
    "spike-slab": SpikeAndSlab,
}
KINDS = ("linear", "conv2d")


pytestmark = pytest.mark.usefixtures("float64")


def _perturb(guide: torch.nn.Module) -> None:
    """Non-trivial variational parameters (seeded by the caller)."""
    with torch.no_grad():
        for name, p in guide.named_parameters():
            noise = torch.randn_like(p)
            if name == "inclusion_logit":  # inclusion probabilities in (0.3, 0.8)
                pi = 0.3 + 0.5 * torch.rand_like(p)
                p.copy_(torch.logit(pi))
            elif name.startswith(("global_", "local_")):  # horseshoe log-normal factors
                if name.endswith("_log_var"):
                    p.copy_(-2.5 + 0.3 * noise)
                else:
                    p.add_(0.2 * noise)
            elif name == "scale_loc":
                p.copy_(1.0 + 0.3 * noise)
            elif name == "scale_log_var":
                p.copy_(-2.0 + 0.3 * noise)
            elif name.endswith("_log_var"):
                p.copy_(-1.5 + 0.3 * noise)
            elif name.endswith("_loc"):
                p.copy_(0.5 * noise)
            else:  # pragma: no cover
                raise AssertionError(f"unexpected guide parameter {name}")


def _setup(prior_key: str, kind: str, seed: int = 0):
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)
    if kind == "linear":
        module = torch.nn.Linear(6, 4)
        x = torch.randn(3, 6)
    else:
        module = torch.nn.Conv2d(2, 3, 3, padding=1)
        x = torch.randn(2, 2, 5, 5)
    bnn = bayesianize(torch.nn.Sequential(module), PRIORS[prior_key](), seed=seed)
    layer, guide = bnn.net[0], bnn.guide["0"]
    _perturb(guide)
    return layer, guide, x


def _gate_moments(prior_key: str, guide) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(E g, E g^2) per group, from the guide parameters (independently of the library)."""
    if prior_key == "gaussian":
        return None
    if prior_key == "group-nj":
        mu, var = guide.scale_loc, guide.scale_log_var.exp()
        return mu, mu**2 + var
    if prior_key == "group-horseshoe":
        parts = GroupHorseshoe._PARTS
        m = 0.5 * sum(getattr(guide, f"{p}_loc") for p in parts)
        v = 0.25 * sum(getattr(guide, f"{p}_log_var").exp() for p in parts)
        return (m + 0.5 * v).exp(), (2 * m + 2 * v).exp()
    pi = torch.sigmoid(guide.inclusion_logit)
    return pi, pi


def _shared_scale_covariance(guide, w_mu, x):
    """Sum over input pairs j != k of Var(s) E[l_j] E[l_k] mu_ij mu_ik x_j x_k."""
    ms = 0.5 * (guide.global_a_loc + guide.global_b_loc)
    vs = 0.25 * (guide.global_a_log_var.exp() + guide.global_b_log_var.exp())
    var_s = (2 * ms + 2 * vs).exp() - (2 * ms + vs).exp()
    ml = 0.5 * (guide.local_a_loc + guide.local_b_loc)
    vl = 0.25 * (guide.local_a_log_var.exp() + guide.local_b_log_var.exp())
    c = (ml + 0.5 * vl).exp() * w_mu * x[:, None, :]  # [n, out, in]: E[l_j] mu_ij x_j
    return var_s * (c.sum(-1).square() - c.square().sum(-1))


def _exact_moments(prior_key: str, kind: str, layer, guide, x, *, shared_scale: bool = True):
    """Per-output mean and variance of the layer's output, W = g * W~ with independent
    gates g (per group), weights W~ and bias."""
    w_mu, w_var = guide.weight_loc, guide.weight_log_var.exp()
    b_mu, b_var = guide.bias_loc, guide.bias_log_var.exp()
    g = _gate_moments(prior_key, guide)
    m1, m2 = (torch.ones(layer.spec.num_groups),) * 2 if g is None else g
    if kind == "linear":  # groups are the inputs; the bias is not gated
        mean = F.linear(x, w_mu * m1, b_mu)
        var = F.linear(x * x, m2 * (w_var + w_mu**2) - (m1 * w_mu) ** 2, b_var)
        if prior_key == "group-horseshoe" and shared_scale:
            # g_j = s * l_j with one global scale s shared by the groups: the terms of
            # different inputs covary, Cov(g_j, g_k) = Var(s) E[l_j] E[l_k] for j != k
            var = var + _shared_scale_covariance(guide, w_mu, x)
        return mean, var
    # conv2d: groups are output channels, bias included
    conv = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
    mean_c = F.conv2d(x, w_mu, b_mu, **conv)
    var_c = F.conv2d(x * x, w_var, b_var, **conv)
    m1, m2 = m1[:, None, None], m2[:, None, None]
    return m1 * mean_c, m2 * (var_c + mean_c**2) - (m1 * mean_c) ** 2


def _moments(samples: torch.Tensor):
    """Per-output mean, variance and their standard errors over the leading axis."""
    n = samples.shape[0]
    mean = samples.mean(0)
    c = samples - mean
    var = (c**2).sum(0) / (n - 1)
    m4 = (c**4).mean(0)
    se_mean = (var / n).sqrt()
    se_var = ((m4 - var**2).clamp_min(0) / n).sqrt()
    return mean, var, se_mean, se_var


def _explicit_samples(layer, guide, x, n: int = S) -> torch.Tensor:
    """n outputs of the plain forward, each with one weight draw shared by the batch.

    The guide's site distributions are sampled n times and each draw is conditioned into
    the layer's ordinary forward (no LRT handler), vectorised with ``torch.func.vmap``.
    """
    guide_trace = poutine.trace(guide).get_trace()
    values = {
        name: site["fn"].sample((n,))
        for name, site in guide_trace.nodes.items()
        if site["type"] == "sample"
    }

    def forward(vals):
        return poutine.condition(layer, data=vals)(x)

    return torch.func.vmap(forward, randomness="error")(values)


def _lrt_samples(layer, guide, x, n: int = S) -> torch.Tensor:
    """n outputs of the LRT forward: the batch repeated n times, each row independent."""
    lrt = LocalReparameterization()
    guide_trace = poutine.trace(lrt.guide(guide)).get_trace()
    x_rep = x.repeat(n, *([1] * (x.dim() - 1)))
    out = poutine.replay(lrt.model(layer), trace=guide_trace)(x_rep)
    return out.reshape(n, *x.shape[:1], *out.shape[1:])


def _assert_moments_close(samples, mean, var, label: str) -> None:
    mc_mean, mc_var, se_mean, se_var = _moments(samples)
    assert mc_mean.shape == mean.shape == var.shape
    assert (var > 0).all()
    err_mean = ((mc_mean - mean).abs() / se_mean).max().item()
    err_var = ((mc_var - var).abs() / se_var).max().item()
    assert err_mean < Z, f"{label}: mean off by {err_mean:.2f} se"
    assert err_var < Z, f"{label}: variance off by {err_var:.2f} se"


CASES = [(p, k) for p in PRIORS for k in KINDS]


@pytest.mark.parametrize(("prior_key", "kind"), CASES)
def test_explicit_sampling_matches_exact_moments(prior_key, kind):
    layer, guide, x = _setup(prior_key, kind)
    mean, var = _exact_moments(prior_key, kind, layer, guide, x)
    with torch.no_grad():
        samples = _explicit_samples(layer, guide, x)
    _assert_moments_close(samples, mean.detach(), var.detach(), "explicit")


@pytest.mark.parametrize(("prior_key", "kind"), CASES)
def test_local_reparam_matches_exact_moments(prior_key, kind):
    layer, guide, x = _setup(prior_key, kind)
    mean, var = _exact_moments(prior_key, kind, layer, guide, x)
    with torch.no_grad():
        samples = _lrt_samples(layer, guide, x)
    _assert_moments_close(samples, mean.detach(), var.detach(), "LRT")


@pytest.mark.parametrize(("prior_key", "kind"), CASES)
def test_local_reparam_matches_explicit_sampling(prior_key, kind):
    """Monte Carlo against Monte Carlo, with the standard errors of both estimates."""
    layer, guide, x = _setup(prior_key, kind, seed=1)
    with torch.no_grad():
        a = _moments(_lrt_samples(layer, guide, x))
        b = _moments(_explicit_samples(layer, guide, x))
    mean_z = ((a[0] - b[0]).abs() / (a[2] ** 2 + b[2] ** 2).sqrt()).max().item()
    var_z = ((a[1] - b[1]).abs() / (a[3] ** 2 + b[3] ** 2).sqrt()).max().item()
    assert mean_z < Z, f"mean differs by {mean_z:.2f} se"
    assert var_z < Z, f"variance differs by {var_z:.2f} se"


@pytest.mark.parametrize(("prior_key", "kind"), CASES)
def test_local_moments_with_marginalised_gate_are_exact(prior_key, kind):
    """``output_moments`` given the gate's moments (the spike-and-slab path, or no gate for
    the Gaussian) equals the exact marginal moments, for every prior's gate."""
    layer, guide, x = _setup(prior_key, kind)
    mean, var = _exact_moments(prior_key, kind, layer, guide, x, shared_scale=False)
    gate = _gate_moments(prior_key, guide)
    w_var, b_var = guide.weight_log_var.exp(), guide.bias_log_var.exp()
    got_mean, got_var = layer.output_moments(
        x, None, (guide.weight_loc, w_var), (guide.bias_loc, b_var), gate
    )
    torch.testing.assert_close(got_mean, mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_var, var, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("prior_key", PRIORS)
def test_vectorised_explicit_path_equals_replay(prior_key):
    """The vmap-ed conditioning used above is the layer's plain forward, draw by draw."""
    layer, guide, x = _setup(prior_key, "conv2d")
    for _ in range(3):
        guide_trace = poutine.trace(guide).get_trace()
        with torch.no_grad():
            direct = poutine.replay(layer, trace=guide_trace)(x)
            values = {
                n: s["value"][None] for n, s in guide_trace.nodes.items() if s["type"] == "sample"
            }
            vec = torch.func.vmap(lambda v: poutine.condition(layer, data=v)(x))(values)
        torch.testing.assert_close(vec[0], direct, rtol=1e-12, atol=1e-12)


def test_guide_distribution_is_none_outside_the_handler():
    assert guide_distribution("0.weight") is None


@pytest.mark.parametrize("prior_key", PRIORS)
def test_lrt_draws_are_independent_across_examples(prior_key):
    """Two identical inputs in one LRT batch get different draws (per-example noise), while
    the explicit path gives them the same output (one shared weight draw)."""
    layer, guide, x = _setup(prior_key, "linear")
    x2 = torch.cat([x[:1], x[:1]])
    lrt = LocalReparameterization()
    guide_trace = poutine.trace(lrt.guide(guide)).get_trace()
    with torch.no_grad():
        out = poutine.replay(lrt.model(layer), trace=guide_trace)(x2)
        plain = poutine.replay(layer, trace=guide_trace)(x2)
    assert not torch.allclose(out[0], out[1])
    torch.testing.assert_close(plain[0], plain[1])
    assert math.isfinite(out.sum().item())


# ---------------------------------------------- LocalReparamELBO: the fast path of `fit`


def _small_network(prior_key: str, kind: str, likelihood: str):
    torch.manual_seed(0)
    if kind == "linear":
        net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
        x = torch.randn(8, 5)
    else:
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 2, 3),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(8, 3),
        )
        x = torch.randn(8, 1, 6, 6)
    bnn = bayesianize(net, PRIORS[prior_key](), likelihood=likelihood, seed=0)
    for name in bnn.bayesian_layers():
        _perturb(bnn.guide[name])
    y = torch.randint(0, 3, (8,)) if likelihood == "categorical" else torch.randn(8, 3)
    return bnn, x, y


@pytest.mark.parametrize("prior_key", PRIORS)
@pytest.mark.parametrize(
    ("kind", "likelihood"),
    [("linear", "categorical"), ("conv2d", "categorical"), ("linear", "gaussian")],
)
def test_fast_elbo_equals_trace_mean_field_with_local_reparam(prior_key, kind, likelihood):
    """LocalReparamELBO gives the value and the gradients of TraceMeanField_ELBO run on the
    LocalReparameterization-wrapped model and guide, when the model sees the same random
    numbers (the generic path draws every guide site first; the model re-seeds)."""
    bnn, x, y = _small_network(prior_key, kind, likelihood)
    kwargs = {"dataset_size": 50, "subsample": torch.arange(8), "kl_scale": 0.3}

    def model(*args, **kw):
        torch.manual_seed(123)
        return bnn(*args, **kw)

    lrt = LocalReparameterization()
    plain = pyro.infer.TraceMeanField_ELBO().differentiable_loss(
        lrt.model(model), lrt.guide(bnn.guide), x, y, **kwargs
    )
    fast = LocalReparamELBO().differentiable_loss(model, bnn.guide, x, y, **kwargs)
    torch.testing.assert_close(fast, plain, rtol=1e-10, atol=1e-10)
    params = [p for p in bnn.parameters() if p.requires_grad]
    g_plain = torch.autograd.grad(plain, params, allow_unused=True)
    g_fast = torch.autograd.grad(fast, params, allow_unused=True)
    for (name, _), a, b in zip(bnn.named_parameters(), g_fast, g_plain, strict=True):
        if b is None:
            assert a is None or not a.any(), name
        else:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=name)


def test_fast_elbo_draws_no_guide_site():
    """The guide's weight-sized sites are not sampled: the record holds their means."""
    bnn, x, y = _small_network("group-nj", "linear", "categorical")
    model_trace, guide_trace = LocalReparamELBO()._get_trace(bnn, bnn.guide, (x, y), {})
    w = guide_trace.nodes["0.weight"]
    torch.testing.assert_close(w["value"], bnn.guide["0"].weight_loc)
    assert model_trace.nodes["obs"]["is_observed"]
    assert set(guide_trace.nodes) <= set(model_trace.nodes)


def test_fast_elbo_works_with_pyro_svi_and_particles():
    bnn, x, y = _small_network("spike-slab", "linear", "categorical")
    optim = pyro.optim.Adam({"lr": 0.01})
    svi = pyro.infer.SVI(bnn, bnn.guide, optim, LocalReparamELBO(num_particles=3))
    before = LocalReparamELBO(num_particles=200).loss(bnn, bnn.guide, x, y)
    for _ in range(30):
        loss = svi.step(x, y)
    assert math.isfinite(loss)
    after = LocalReparamELBO(num_particles=200).loss(bnn, bnn.guide, x, y)
    assert after < before
    with pytest.raises(ValueError, match="num_particles"):
        LocalReparamELBO(num_particles=0)


def test_fast_elbo_needs_a_guide_site_for_every_latent():
    bnn, x, y = _small_network("gaussian", "linear", "categorical")

    def guide(*args, **kwargs):  # forgets the first layer's bias
        with poutine.block(hide=["0.bias"]):
            bnn.guide(*args, **kwargs)

    with pytest.raises(ValueError, match="0.bias"):
        LocalReparamELBO().differentiable_loss(bnn, guide, x, y)
