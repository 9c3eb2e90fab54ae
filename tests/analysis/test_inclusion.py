"""Posterior inclusion probabilities: one definition, for guide draws and other draws."""

import copy

import pytest
import torch
from torch import nn

import pyrocompress as pc
from pyrocompress.distributions import GaussianLikelihood
from pyrocompress.priors import prior_keys, registered_priors

N = 200
#: least-squares estimates of the six coefficients, exactly (see _controlled)
COEF = torch.tensor([0.0, 0.05, 0.1, 0.15, 0.25, 0.5])


def _controlled():
    """Orthogonal columns and noise orthogonal to them: the estimates are COEF exactly.

    Each column has the same information (n / sigma^2 = 200; standard error 0.071), so
    the signal of input j is COEF[j] and nothing else differs between the inputs.
    """
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(N, 7, generator=g))
    X, e = q[:, :6] * N**0.5, q[:, 6] * N**0.5
    return X, X @ COEF + e


#: a recipe that converges for every prior here (spike-and-slab moves slowest)
RECIPE = {"epochs": 1000, "batch_size": N, "lr": 0.05, "progress": False}


@pytest.fixture(scope="module")
def fitted():
    X, y = _controlled()
    out = {}
    for key in prior_keys(inclusion_probabilities=True):
        bnn = pc.bayesianize(nn.Linear(6, 1), key, seed=0,
                             likelihood=GaussianLikelihood(1.0, learn_noise=False))  # fmt: skip
        pc.fit(bnn, (X, y), **RECIPE)
        out[key] = bnn
    return out


@pytest.mark.parametrize("key", prior_keys(inclusion_probabilities=True))
def test_pips_are_probabilities_monotone_in_the_signal(fitted, key):
    # (the normal-means form for the horseshoes here: no Monte-Carlo error; for the others
    # 2000 draws: each probability has a Monte-Carlo standard error below 0.5/sqrt(2000) =
    # 0.011, a difference of two below 0.016; 0.05 is three of those)
    pip = pc.Posterior(fitted[key]).inclusion_probabilities(num_samples=2000)["layer"]
    assert bool(((pip >= 0) & (pip <= 1)).all())
    assert bool((pip.diff() >= -0.05).all()), pip
    assert pip[-1] > 0.95 and pip[-1] - pip[0] > 0.5, pip


def test_threshold_is_the_standard_error():
    X, y = _controlled()
    bnn = pc.bayesianize(nn.Linear(6, 1), "group-nj", seed=0,
                         likelihood=GaussianLikelihood(0.5, learn_noise=False))  # fmt: skip
    pc.fit(bnn, (X, y), epochs=1, batch_size=N, progress=False)
    # information n / sigma^2 = 800 per weight: t = 1 / sqrt(800), the estimate's s.e.
    t = pc.Posterior(bnn).relevance_thresholds()["layer"]
    torch.testing.assert_close(t, torch.full((6,), 800**-0.5), rtol=1e-4, atol=0)


def test_given_draws_use_the_same_functional_and_leave_global_state(fitted):
    bnn = fitted["group-horseshoe"]
    post = pc.Posterior(bnn)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    # (the guide's draws: a linear model's default is the normal-means form, drawless)
    default = post.inclusion_probabilities(num_samples=300, seed=4, estimator="draws")["layer"]
    assert torch.equal(torch.rand(3), before)  # the caller's generator is untouched
    again = post.inclusion_probabilities(num_samples=300, seed=4, estimator="draws")["layer"]
    assert torch.equal(default, again)
    # the same draws handed in as a mapping of site values give the same numbers
    draws = {}
    for values in post._layer_draws("layer", None, 300, 4):
        for part, v in values.items():
            draws.setdefault(f"layer.{part}", []).append(v)
    draws = {k: torch.cat(v) for k, v in draws.items()}
    torch.testing.assert_close(post.inclusion_probabilities(draws=draws)["layer"], default)
    with pytest.raises(ValueError, match="no values of site"):
        post.inclusion_probabilities(draws={"layer.weight": draws["layer.weight"]})


def test_it_runs_on_one_thread_and_gives_torchs_setting_back(fitted, monkeypatch):
    post = pc.Posterior(fitted["group-horseshoe"])
    seen = []
    relevance = post._relevance
    monkeypatch.setattr(
        post, "_relevance", lambda *a: (seen.append(torch.get_num_threads()), relevance(*a))[1]
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        post.inclusion_probabilities(num_samples=20, estimator="draws")
        assert torch.get_num_threads() == 2
        assert seen and set(seen) == {1}  # the library's thread policy (pyrocompress.rng)
        post.inclusion_probabilities(num_samples=20, estimator="draws", threads=None)
        assert seen[-1] == 2  # threads=None: torch's own setting
    finally:
        torch.set_num_threads(before)


def test_spike_and_slab_pip_is_the_inclusion_probability(fitted):
    bnn = fitted["spike-slab"]
    pip = pc.Posterior(bnn).inclusion_probabilities()["layer"]
    torch.testing.assert_close(pip, torch.sigmoid(bnn.guide["layer"].inclusion_logit.detach()))


def test_gaussian_prior_has_none(relevant_data):
    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([8, 4, 2]), "gaussian", seed=0)
    pc.fit(bnn, (X, y), epochs=1, batch_size=300, progress=False)
    with pytest.raises(ValueError, match="no inclusion"):
        pc.Posterior(bnn).inclusion_probabilities()


def test_datatree_carries_the_relevance_draws_whose_mean_is_the_pip(fitted):
    bnn = fitted["group-horseshoe"]
    X, y = _controlled()
    post = pc.Posterior(bnn)
    tree = post.to_datatree(X, y, num_samples=400, seed=1)
    rel = tree["posterior"]["layer_relevance"].values  # [chain, draw, group]
    by_draws = post.inclusion_probabilities(estimator="draws")["layer"].numpy()
    # two guide-draw estimates of one quantity from independent draws (400 and the default
    # 256): their difference has a standard error below 0.5 * sqrt(1/400 + 1/256) = 0.040
    assert rel.shape == (1, 400, 6)
    assert abs(rel.mean((0, 1)) - by_draws).max() < 4 * 0.040
    # the tree's PIP is the default estimate (for this linear model, the normal-means one)
    pip = tree["variational"]["layer_pip"].values
    assert pip == pytest.approx(post.inclusion_probabilities()["layer"].numpy())
    assert tree["variational"]["layer_threshold"].values == pytest.approx(
        post.relevance_thresholds()["layer"].numpy()
    )


# ------------------------------------------------------------ normal-means estimator
@pytest.mark.parametrize("key", ["group-horseshoe", "regularized-horseshoe"])
def test_normal_means_pips_match_the_exact_posterior_of_a_linear_model(key):
    # a linear model's default PIP integrates the weights out given the others: with
    # orthogonal columns it is the exact posterior probability, which the exact sampler
    # estimates (Rao-Blackwellised over its draws; Monte-Carlo error from the ESS of the
    # plain indicator, an upper bound); 0.02 covers the quadratures' grids and the
    # intercept, which is not orthogonal to the columns
    from arviz_stats.base.array import array_stats

    X, y = _controlled()
    bnn = pc.bayesianize(nn.Linear(6, 1), registered_priors()[key](scale_global=0.02), seed=0,
                         likelihood=GaussianLikelihood(1.0, learn_noise=False))  # fmt: skip
    pc.fit(bnn, (X, y), **RECIPE)
    post = pc.Posterior(bnn)
    pip = post.inclusion_probabilities()["layer"].double()
    tree = pc.infer.linear_gibbs(bnn, X, y, num_samples=1500, warmup_steps=200, num_chains=4)
    exact = post.inclusion_probabilities(draws=tree)["layer"].double()
    beta = tree["posterior"]["layer_effective_weight"].values[..., 0, :]  # [chain, draw, 6]
    t = post.relevance_thresholds()["layer"].double().numpy()
    gates = tree["posterior"]["layer_local_a"].values ** 0.5  # with global_a: tau lambda
    gates = gates * tree["posterior"]["layer_global_a"].values[..., None] ** 0.5
    if key == "regularized-horseshoe":
        c2 = tree["posterior"]["layer_slab_var"].values[..., None]
        gates = (gates**-2 + 1 / c2) ** -0.5
    above = (gates > t).astype(float)
    ess = array_stats.ess(above, chain_axis=0, draw_axis=1)
    frac = torch.as_tensor(above.mean((0, 1)))
    se = torch.as_tensor((frac.numpy() * (1 - frac.numpy()) / ess) ** 0.5).nan_to_num(0.0)
    assert (exact - frac).abs().max() < 4.5 * se.max() + 0.01  # the sampler agrees with itself
    assert ((pip - exact).abs() <= 4.5 * se + 0.02).all(), (pip, exact, se)
    assert bool(beta.std() > 0)


def test_normal_means_is_refused_where_it_does_not_apply(fitted):
    X, y = _controlled()
    mlp = pc.bayesianize(pc.mlp([6, 3, 1]), "group-horseshoe", seed=0,
                         likelihood=GaussianLikelihood(1.0, learn_noise=False))  # fmt: skip
    pc.fit(mlp, (X, y), epochs=2, batch_size=N, progress=False, tol=None)
    with pytest.raises(ValueError, match="one Linear layer"):
        pc.Posterior(mlp).inclusion_probabilities(estimator="normal-means")
    # auto falls back to the guide's draws there
    first = next(iter(pc.Posterior(mlp).inclusion_probabilities(num_samples=8).values()))
    assert first.shape == (6,)
    with pytest.raises(ValueError, match="proper density"):
        pc.Posterior(fitted["group-nj"]).inclusion_probabilities(estimator="normal-means")
    post = pc.Posterior(fitted["group-horseshoe"])
    draws = {f"layer.{k}": v for k, v in next(post._layer_draws("layer", None, 4, 0)).items()}
    with pytest.raises(ValueError, match="not draws"):
        post.inclusion_probabilities(draws=draws, estimator="normal-means")
    with pytest.raises(ValueError, match="estimator must be one of"):
        post.inclusion_probabilities(estimator="laplace")


def test_normal_means_leaves_groups_without_information_out(fitted):
    # a group the data do not inform (h = 0: a constant column, a removed group) is not
    # relevant and says nothing of the global scale: the others' PIPs do not move
    # whatever its recorded estimate (as a fake observation b = 0 with variance s^2, or a
    # large one, it would pull the global scale down or up)
    bnn = copy.deepcopy(fitted["group-horseshoe"])
    bnn.guide["layer"].information[0] = 0.0
    pips = []
    for square in (0.0, 100.0):
        bnn.guide["layer"].newton_square[0] = square
        pips.append(pc.Posterior(bnn).inclusion_probabilities()["layer"])
    assert float(pips[0][0]) == float(pips[1][0]) == 0.0
    torch.testing.assert_close(pips[0], pips[1], atol=0, rtol=0)
    assert bool((pips[0][1:] > 0).all())


def test_normal_means_is_for_one_weight_per_group():
    X, y = _controlled()
    labels = (y > 0).long() + (y > 1).long()
    bnn = pc.bayesianize(nn.Linear(6, 3), "group-horseshoe", seed=0)
    pc.fit(bnn, (X, labels), epochs=2, batch_size=N, progress=False, tol=None)
    assert pc.infer.glm_layer(bnn) == "layer"  # a multinomial regression: recorded...
    post = pc.Posterior(bnn)
    with pytest.raises(ValueError, match="several weights"):
        post.inclusion_probabilities(estimator="normal-means")
    pip = post.inclusion_probabilities(num_samples=16)["layer"]  # ...but auto: the draws
    torch.testing.assert_close(
        pip, post.inclusion_probabilities(num_samples=16, estimator="draws")["layer"]
    )
