"""The regularised horseshoe prior (Piironen & Vehtari 2017) and its guide family.

Statistical checks compare an analytic (or quadrature) value with a Monte-Carlo estimate
from guide draws and allow 4 Monte-Carlo standard errors (the standard deviation of the
draws over sqrt(n)), plus 1e-6 for the float64 rounding of the analytic side: a correct
value fails with probability about 6e-5 per comparison, while a wrong formula (a missing
slab, a misplaced square) moves the value by many standard errors.
"""

from __future__ import annotations

import math
import time

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO
from scipy import integrate, special
from torch.distributions import kl_divergence

import pyrocompress as pc
from pyrocompress.distributions import GaussianLikelihood
from pyrocompress.priors import (
    LayerSpec,
    RegularizedHorseshoe,
    RegularizedHorseshoeGuide,
    get_prior,
    prior_keys,
)
from pyrocompress.priors.regularized_horseshoe import (
    _log_gate_moment,
    _prob_sum_below_one,
)

SPECS = {
    "linear": LayerSpec("l", "linear", (3, 4), True),
    "conv2d": LayerSpec("c", "conv2d", (3, 2, 2, 2), True),
}
N_MC = 200_000
SMALL_ABS = 1e-6


def _make_guide(kind: str, seed: int = 0, prior: RegularizedHorseshoe | None = None):
    """A guide moved away from its initial point: log-variances near e^-1 (so that gates
    vary), locations shifted so that tau lambda and c are of similar size (the slab
    matters: a test with c >> tau lambda would not see it)."""
    pyro.set_rng_seed(seed)
    prior = prior or RegularizedHorseshoe(scale_global=0.1, slab_scale=1.5)
    spec = SPECS[kind]
    guide = prior.guide_family(spec, prior)
    assert isinstance(guide, RegularizedHorseshoeGuide)
    with torch.no_grad():
        for name, p in guide.named_parameters():
            noise = torch.randn_like(p)
            if name.endswith("_log_var") and not name.startswith(("weight", "bias")):
                p.copy_(-1.0 + 0.5 * noise)
            elif name.endswith("_log_var"):
                p.copy_(-2.0 + 0.3 * noise)
            elif name.startswith(("global_", "local_", "slab_")):
                p.add_(0.5 * noise)
            elif name.endswith("_loc"):
                p.copy_(0.7 * noise)
            else:  # pragma: no cover - a parameter the test does not know
                raise AssertionError(f"unexpected guide parameter {name}")
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
    return guide_trace, poutine.trace(model).get_trace()


def _gate_draws(prior, spec, guide, n: int = N_MC) -> torch.Tensor:
    """n independent draws of the gate [n, G]: each gate site drawn from its guide factor
    (as the guide's trace holds them), then prior.gate."""
    sites = _latent(poutine.trace(guide).get_trace())
    values = {}
    for part in RegularizedHorseshoe._PARTS:
        draws = sites[spec.site(part)]["fn"].sample((n,))
        values[part] = draws.unsqueeze(-1) if draws.dim() == 1 else draws
    return prior.gate(spec, values)


pytestmark = pytest.mark.usefixtures("float64")


# ----------------------------------------------------------------------------- KL


@pytest.mark.parametrize("kind", SPECS)
def test_every_site_kl_matches_monte_carlo(kind):
    prior, spec, guide = _make_guide(kind)
    guide_trace, model_trace = _traces(prior, spec, guide)
    g_sites, m_sites = _latent(guide_trace), _latent(model_trace)
    assert set(g_sites) == set(m_sites)
    assert {spec.site(p) for p in RegularizedHorseshoe._PARTS} <= set(m_sites)
    n = 100_000
    with torch.no_grad():
        for name, m_site in m_sites.items():
            q, p = g_sites[name]["fn"], m_site["fn"]
            exact = kl_divergence(q, p).sum().item()
            x = q.sample((n,))
            lq, lp = q.log_prob(x), p.log_prob(x)
            assert lq.shape == lp.shape == (n,), name
            diff = lq - lp
            mc, se = diff.mean().item(), (diff.std() / math.sqrt(n)).item()
            assert math.isfinite(exact) and exact >= 0, name
            assert abs(mc - exact) < 4 * se + SMALL_ABS, (name, exact, mc, se)


def test_the_slab_site_is_the_inverse_gamma_of_the_paper():
    """c^2 ~ InvGamma(nu/2, nu s^2/2): a Student-t_nu(0, s^2) slab (P&V 2017)."""
    prior = RegularizedHorseshoe(slab_scale=3.0, slab_df=5.0)
    p = prior.site_priors(SPECS["linear"], torch.zeros(()))["slab_var"]
    assert isinstance(p, dist.InverseGamma)
    assert p.concentration.item() == pytest.approx(2.5)
    assert p.rate.item() == pytest.approx(2.5 * 9.0)


@pytest.mark.parametrize("kind", SPECS)
def test_mean_field_elbo_uses_the_analytic_kl(kind):
    """TraceMeanField_ELBO on the layer's sites is exactly minus the sum of analytic KLs:
    every site, the slab variance included, has a registered KL."""
    prior, spec, guide = _make_guide(kind)
    guide_trace, model_trace = _traces(prior, spec, guide)
    g_sites, m_sites = _latent(guide_trace), _latent(model_trace)
    expected = sum(kl_divergence(g_sites[n]["fn"], m_sites[n]["fn"]).sum() for n in m_sites)
    loss = TraceMeanField_ELBO().differentiable_loss(
        lambda: prior.model(spec, torch.zeros(())), guide
    )
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- gate and moments


def test_gate_is_the_regularised_scale_of_eq_2_8():
    prior, spec = RegularizedHorseshoe(), SPECS["linear"]
    vals = {
        "global_a": torch.tensor(0.5),
        "global_b": torch.tensor(2.0),  # tau^2 = 1
        "local_a": torch.tensor([1.0, 100.0, 1e-4, 4.0]),
        "local_b": torch.tensor([1.0, 100.0, 1.0, 1.0]),  # lambda^2 = 1, 1e4, 1e-4, 4
        "slab_var": torch.tensor(4.0),
    }
    lam2 = vals["local_a"] * vals["local_b"]
    expected = (4.0 * lam2 / (4.0 + lam2)).sqrt()  # tau lambda~, tau = 1
    torch.testing.assert_close(prior.gate(spec, vals), expected)
    g = prior.gate(spec, vals)
    assert g[1] == pytest.approx(2.0, rel=1e-3)  # tau lambda >> c: the slab width c
    assert g[2] == pytest.approx(1e-2, rel=1e-3)  # tau lambda << c: the horseshoe's scale


@pytest.mark.parametrize("kind", SPECS)
def test_gate_moments_match_monte_carlo(kind):
    prior, spec, guide = _make_guide(kind)
    with torch.no_grad():
        g = _gate_draws(prior, spec, guide)
        m1, m2 = guide.gate_moments()
    n = g.shape[0]
    for exact, draws in ((m1, g), (m2, g.square())):
        mc, se = draws.mean(0), draws.std(0) / math.sqrt(n)
        assert ((mc - exact).abs() < 4 * se + SMALL_ABS).all(), (exact, mc, se)
    log_alpha = guide.group_log_alpha()
    torch.testing.assert_close(log_alpha, torch.log(m2 / m1**2 - 1.0))


def test_gate_starts_near_one():
    """As the horseshoe's guide: the gate starts at one (the slab permitting), sharply."""
    for prior in (RegularizedHorseshoe(), RegularizedHorseshoe(1e-3, slab_scale=5.0)):
        guide = prior.guide_family(SPECS["linear"], prior)
        assert isinstance(guide, RegularizedHorseshoeGuide)
        m1, _ = guide.gate_moments()
        assert torch.allclose(m1, torch.ones_like(m1), atol=0.05), m1
        assert (guide.group_log_alpha() < -8).all()


def test_local_gate_draws_have_the_guide_law():
    """Per-example gates of the local reparametrisation have the guide's gate law: their
    mean and second moment match gate_moments (4 s.e.)."""
    prior, spec, guide = _make_guide("linear")
    sites = _latent(poutine.trace(guide).get_trace())
    qs = {p: sites[spec.site(p)]["fn"] for p in RegularizedHorseshoe._PARTS}
    qs = {p: q.base_dist if isinstance(q, dist.Independent) else q
          for p, q in qs.items()}  # fmt: skip
    with torch.no_grad():
        g = prior.local_gate(spec, N_MC, qs)
        m1, m2 = guide.gate_moments()
    assert isinstance(g, torch.Tensor) and g.shape == (N_MC, spec.num_groups)
    for exact, draws in ((m1, g), (m2, g.square())):
        mc, se = draws.mean(0), draws.std(0) / math.sqrt(N_MC)
        assert ((mc - exact).abs() < 4 * se + SMALL_ABS).all(), (exact, mc, se)


# ------------------------------------------------- gate exceedance and gate density


@pytest.mark.parametrize("kind", SPECS)
def test_gate_exceedance_matches_monte_carlo(kind):
    prior, spec, guide = _make_guide(kind)
    with torch.no_grad():
        g = _gate_draws(prior, spec, guide)
        # thresholds at several quantiles of each group's gate, and one inf
        for q in (0.1, 0.5, 0.9):
            t = g.quantile(q, dim=0) * torch.tensor([1.0, 0.8, 1.25, 1.0][: spec.num_groups])
            t = t.clone()
            t[-1] = math.inf
            pip = guide.gate_exceedance(t)
            mc = (g > t).double().mean(0)
            se = (mc * (1 - mc) / g.shape[0]).sqrt()
            assert pip.shape == (spec.num_groups,)
            assert pip[-1] == 0.0
            assert ((pip - mc).abs() < 4 * se + SMALL_ABS).all(), (pip, mc, se)


def test_gate_exceedance_decreases_with_the_threshold_and_lies_in_0_1():
    prior, spec, guide = _make_guide("linear")
    grid = torch.logspace(-4, 2, 61)
    with torch.no_grad():
        pips = torch.stack([guide.gate_exceedance(t.expand(4)) for t in grid])
        zero = guide.gate_exceedance(torch.zeros(4))
    assert ((pips >= 0) & (pips <= 1)).all()
    assert (pips.diff(dim=0) <= 1e-12).all()
    assert (pips[0] > 0.999).all() and (pips[-1] < 1e-3).all()
    assert (zero == 1).all()


def test_gate_exceedance_refuses_bad_thresholds():
    _, _, guide = _make_guide("linear")
    with pytest.raises(ValueError, match="NaN"):
        guide.gate_exceedance(torch.tensor([1.0, math.nan, 1.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        guide.gate_exceedance(torch.ones(3))


@pytest.mark.parametrize("tau, c, t", [(0.1, 2.0, 0.05), (1.0, 2.0, 1.5), (3.0, 0.5, 0.45)])
def test_gate_log_prior_is_the_density_of_the_regularised_gate(tau, c, t):
    """exp(gate_log_prior), normalised, gives P(g > t | tau, c) = P(h > t c / sqrt(c^2 - t^2))
    for h ~ C+(0, tau), i.e. 1 - (2/pi) arctan(H / tau) (adaptive quadrature over log g)."""
    prior, spec = RegularizedHorseshoe(), SPECS["linear"]
    one = torch.ones(1)
    values = {"global_a": one * tau**2, "global_b": one, "slab_var": one * c**2}
    log_prior = prior.gate_log_prior(spec, values)

    def density(x: float) -> float:
        return math.exp(log_prior(torch.tensor([[[x]]])).item())

    top = math.log(c)
    assert density(top + 1e-9) == 0.0 and density(top + 1.0) == 0.0  # g < c
    lo = math.log(tau) - 40.0
    total = integrate.quad(density, lo, top, limit=400, epsabs=0, epsrel=1e-10)[0]
    above = integrate.quad(density, math.log(t), top, limit=400, epsabs=0, epsrel=1e-10)[0]
    h = t * c / math.sqrt(c * c - t * t)
    assert above / total == pytest.approx(1 - 2 / math.pi * math.atan(h / tau), rel=1e-6)


def _prob_reference(mu_a: float, s_a: float, mu_b: float, s_b: float) -> float:
    """P(a + b < 1) by adaptive quadrature over log b, broken at the boundary."""
    z_star = -mu_b / s_b

    def f(z: float) -> float:
        log_b = mu_b + s_b * z
        if log_b >= 0:
            return 0.0
        inner = special.ndtr((math.log(-math.expm1(log_b)) - mu_a) / s_a)
        return inner * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    hi = min(z_star, 40.0)
    pts = [p for p in (z_star - 1e-3, z_star - 1e-1, 0.0) if -40 < p < hi]
    return integrate.quad(f, -40.0, hi, points=pts or None, epsabs=1e-13, limit=500)[0]


@pytest.mark.parametrize(
    "mu_a, s_a, mu_b, s_b",
    [
        (-4.4, 6.17, -1.55, 1.55),  # a vague, b sharp: a rule over log b alone errs by 2e-2
        (-0.6, 0.0017, -0.79, 0.0027),  # both sharp, near the boundary
        (-5.5, 0.66, -0.044, 0.86),
        (-20.0, 3.0, -0.5, 0.8),  # the slab decides (tau lambda >> c)
        (-0.5, 0.8, -20.0, 3.0),  # the horseshoe decides (c >> tau lambda)
    ],
)
def test_tail_quadrature_matches_adaptive_quadrature(mu_a, s_a, mu_b, s_b):
    t = torch.tensor
    got = _prob_sum_below_one(t(mu_a), t(s_a), t(mu_b), t(s_b)).item()
    assert got == pytest.approx(_prob_reference(mu_a, s_a, mu_b, s_b), abs=1e-9)


@pytest.mark.parametrize("sd", [1e-3, 1.0, 5.0, 20.0])
def test_moment_quadrature_matches_adaptive_quadrature(sd):
    """E g^2 = E 1 / (e^-U + e^-C) by adaptive 2-D quadrature (independent of the reduction
    to one dimension), U ~ N(-1, sd^2), C ~ N(1, 0.5)."""
    mu_u, v_u, mu_c, v_c = -1.0, sd * sd, 1.0, 0.5

    def f(zc: float, zu: float) -> float:
        u, c = mu_u + sd * zu, mu_c + math.sqrt(v_c) * zc
        return math.exp(-math.log(math.exp(-u) + math.exp(-c)) - 0.5 * (zu**2 + zc**2))

    ref = integrate.dblquad(f, -10, 10, -10, 10, epsrel=1e-11)[0] / (2 * math.pi)
    t = torch.tensor
    got = _log_gate_moment(2, t(mu_u), t(v_u), t(mu_c), t(v_c)).exp().item()
    assert got == pytest.approx(ref, rel=1e-8)


# ------------------------------------------------------------------- hyper-parameters


def test_from_expected_relevant_is_eq_3_12():
    prior = RegularizedHorseshoe.from_expected_relevant(
        5, num_groups=100, num_data=400, noise=2.0, slab_scale=3.0
    )
    assert prior.scale_global == pytest.approx(5 / 95 * 2.0 / 20.0)
    assert prior.slab_scale == 3.0 and prior.slab_df == 4.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"p0": 0, "num_groups": 10, "num_data": 100}, ValueError, "p0"),
        ({"p0": 10, "num_groups": 10, "num_data": 100}, ValueError, "p0"),
        ({"p0": -1.0, "num_groups": 10, "num_data": 100}, ValueError, "p0"),
        ({"p0": True, "num_groups": 10, "num_data": 100}, ValueError, "p0"),
        ({"p0": 2, "num_groups": 1, "num_data": 100}, ValueError, "num_groups"),
        ({"p0": 2, "num_groups": 10.0, "num_data": 100}, ValueError, "num_groups"),
        ({"p0": 2, "num_groups": 10, "num_data": 0}, ValueError, "num_data"),
        ({"p0": 2, "num_groups": 10, "num_data": 100, "noise": 0.0}, ValueError, "noise"),
        ({"p0": 2, "num_groups": 10, "num_data": 100, "scale_global": 1.0}, TypeError, "scale"),
        # tau0 = 1e-9: outside the range of scale_global
        ({"p0": 1e-5, "num_groups": 10, "num_data": 10**8}, ValueError, "scale_global"),
    ],
)
def test_from_expected_relevant_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        RegularizedHorseshoe.from_expected_relevant(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scale_global": 0},
        {"scale_global": -1e-5},
        {"slab_scale": 0.0},
        {"slab_scale": math.inf},
        {"slab_df": 0},
        {"slab_df": math.nan},
        {"slab_df": True},
    ],
)
def test_invalid_hyper_parameters_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RegularizedHorseshoe(**kwargs)


def test_hyper_parameters_are_the_identity():
    assert RegularizedHorseshoe() == RegularizedHorseshoe(1e-5, 2.0, 4.0)
    assert RegularizedHorseshoe() != RegularizedHorseshoe(slab_df=3.0)
    assert RegularizedHorseshoe() != pc.GroupHorseshoe()


# ------------------------------------------------------------------ registry, fit, NUTS


def test_the_registry_the_cli_and_the_selector_see_the_key(capsys):
    from pyrocompress.cli import main
    from pyrocompress.selection.estimator import selection_priors

    assert "regularized-horseshoe" in prior_keys(inclusion_probabilities=True)
    assert type(get_prior("regularized-horseshoe")) is RegularizedHorseshoe
    assert RegularizedHorseshoe.guide_family is RegularizedHorseshoeGuide
    assert pc.RegularizedHorseshoe is RegularizedHorseshoe
    assert "regularized-horseshoe" in selection_priors()
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    assert "regularized-horseshoe" in capsys.readouterr().out


@pytest.mark.parametrize("local_reparam", [True, False])
def test_a_tiny_fit_runs(local_reparam):
    torch.set_default_dtype(torch.float32)  # the float64 fixture restores it
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 4, generator=g)
    y = (X[:, 0] > 0).long()
    bnn = pc.bayesianize(pc.mlp([4, 6, 2]), "regularized-horseshoe", seed=0)
    history = pc.fit(
        bnn, (X, y), epochs=3, batch_size=32, local_reparam=local_reparam, progress=False
    )
    assert all(math.isfinite(v) for v in history.loss)
    for pip in pc.Posterior(bnn).inclusion_probabilities().values():
        assert ((pip >= 0) & (pip <= 1)).all()


def test_nuts_samples_a_linear_model():
    torch.set_default_dtype(torch.float32)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 5, generator=g)
    y = 2 * X[:, 0] + 0.5 * torch.randn(40, generator=g)
    reg = pc.bayesianize(
        torch.nn.Linear(5, 1),
        prior=RegularizedHorseshoe(scale_global=0.1),
        likelihood=GaussianLikelihood(0.5, learn_noise=False),
        seed=0,
    )
    start = time.perf_counter()
    tree = pc.infer.run_nuts(
        reg, X, y, num_samples=5, warmup_steps=5, num_chains=1, max_tree_depth=4
    )
    assert time.perf_counter() - start < 30  # a smoke run: a few seconds on 2 cores
    post = tree["posterior"]
    assert {"layer_slab_var", "layer_local_a", "layer_effective_weight"} <= set(post)
    assert post["layer_slab_var"].shape == (1, 5)
    assert bool((post["layer_slab_var"] > 0).all())
