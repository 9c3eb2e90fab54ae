"""pyrocompress.predict: the posterior predictive on new inputs, for every prior; and
``to_datatree(X)`` without targets (issue 27).

The statistical tests compare Monte-Carlo estimates with a reference within ``K``
Monte-Carlo standard errors. ``K = 4.5``: a two-sided normal tail beyond 4.5 sd has
probability 7e-6, so over the at most 60 compared values of a test the chance of a false
alarm with other seeds is below 5e-4; a predictive that is wrong by a bias of the order of
its own standard deviation (a missing noise term, draws not shared across a batch, the
prior instead of the guide) is 10 or more standard errors off with 400 draws.
"""

import math

import numpy as np
import pytest
import torch

import pyrocompress as pc
from pyrocompress.analysis import Prediction, posterior_draws, predictive_moments, vi_diagnostics
from pyrocompress.analysis.predictive import guide_traces
from pyrocompress.distributions import GaussianLikelihood

K = 4.5
PRIORS = pc.priors.prior_keys()  # every registered prior


def _inputs(n=12, p=3, seed=0):
    return torch.randn(n, p, generator=torch.Generator().manual_seed(seed))


def _widen(bnn, variance=0.3):
    """Give every Gaussian factor of the guide the variance ``variance``.

    The initial guide is nearly a point mass (variance 5e-4), whose predictive would
    barely differ from the posterior-mean network's.
    """
    with torch.no_grad():
        for name, param in bnn.guide.named_parameters():
            if name.endswith("log_var"):
                param.fill_(math.log(variance))
    return bnn


def test_gaussian_linear_regression_matches_the_exact_moments():
    """A linear layer with Gaussian weights: f(x) is Gaussian with the propagated moments
    (exact for a linear map), so predict's mean and variance are checked against them: the
    mean within K standard errors sqrt(v / S), the variance over the draws within K
    standard errors of a Gaussian sample variance, v sqrt(2 / (S - 1))."""
    X = _inputs()
    bnn = _widen(
        pc.bayesianize(pc.mlp([3, 1]), "gaussian", likelihood=GaussianLikelihood(0.5), seed=0)
    )
    S = 400
    pred = pc.predict(bnn, X, num_samples=S, seed=0)
    exact = predictive_moments(bnn, X)
    m, v = exact["mean"].squeeze(-1).double(), exact["var"].squeeze(-1).double()
    assert pred.task == "regression" and pred.mean.shape == (12,)
    assert ((pred.mean.double() - m).abs() <= K * (v / S).sqrt()).all()
    v_hat = pred.epistemic_sd.double().square()
    assert ((v_hat - v).abs() <= K * v * math.sqrt(2 / (S - 1))).all()
    # the predictive sd adds the noise variance sigma^2 = 0.25 to the draws' variance
    torch.testing.assert_close(pred.sd.square(), pred.epistemic_sd.square() + 0.25)
    torch.testing.assert_close(pred.mean_se, pred.epistemic_sd / math.sqrt(S))
    # and the analytic predictive variance is the same quantity
    assert ((pred.sd.double().square() - exact["predictive_var"].squeeze(-1)).abs()
            <= K * v * math.sqrt(2 / (S - 1))).all()  # fmt: skip


@pytest.mark.parametrize("likelihood, classes", [("categorical", 3), ("bernoulli", 2)])
def test_gaussian_linear_classifier_matches_the_exact_predictive(likelihood, classes):
    """E[softmax(f)] for f ~ N(m, diag v) (independent weights: the logits of one input
    are independent Gaussians), computed from the exact moments with 2e5 draws of f, whose
    own Monte-Carlo error (<= 0.5 / sqrt(2e5) = 0.0011) is added to predict's."""
    X = _inputs()
    outputs = classes if likelihood == "categorical" else 1
    bnn = _widen(pc.bayesianize(pc.mlp([3, outputs]), "gaussian", likelihood=likelihood, seed=0))
    S = 400
    pred = pc.predict(bnn, X, num_samples=S, seed=0)
    exact = predictive_moments(bnn, X)
    g = torch.Generator().manual_seed(1)
    f = exact["mean"].double() + exact["var"].double().sqrt() * torch.randn(
        200_000, *exact["mean"].shape, generator=g, dtype=torch.float64
    )
    if likelihood == "bernoulli":
        p1 = torch.sigmoid(f[..., 0])
        reference = torch.stack([1 - p1, p1], -1).mean(0)
    else:
        reference = torch.softmax(f, -1).mean(0)
    assert pred.task == "classification" and pred.mean.shape == (12, classes)
    torch.testing.assert_close(pred.mean.sum(-1), torch.ones(12))
    error = (pred.mean.double() - reference).abs()
    assert (error <= K * (pred.mean_se.double() + 0.5 / math.sqrt(200_000))).all()
    assert pred.mean_se.max() > 0.001  # the draws differ: a real predictive, not one network
    torch.testing.assert_close(pred.sd, pred.epistemic_sd)


@pytest.mark.parametrize("prior", PRIORS)
def test_every_prior_agrees_with_the_posterior_predictive_draws(prior):
    """For every registered prior, predict agrees with the outcomes that posterior_draws
    (the sampler behind to_datatree) draws at the same inputs with other draws (another
    seed): the means within K standard errors of their difference (predict's mean_se and
    the outcomes' sd / sqrt(S)); predict's variance sd^2 and the outcomes' sample
    variance within K standard errors of the difference of two sample variances,
    sqrt(2 (m4 - s^4) / S) with m4 the outcomes' fourth central moment (no Gaussian
    assumption: the gates make the predictive heavy-tailed). A point network in place of
    the draws (no posterior spread) is 4 to 7.5 of these errors off (seeds 0 and 5)."""
    X = _inputs(n=8)
    bnn = pc.bayesianize(pc.mlp([3, 4, 1]), prior, likelihood=GaussianLikelihood(0.3), seed=0)
    _widen(bnn, 0.1)
    S = 200
    pred = pc.predict(bnn, X, num_samples=S, seed=0)
    draws = torch.as_tensor(posterior_draws(bnn, X, None, S, seed=1)["y_pred"]).double()
    se = (pred.mean_se.double().square() + draws.var(0) / S).sqrt()
    assert ((pred.mean.double() - draws.mean(0)).abs() <= K * se).all()
    centred = draws - draws.mean(0)
    m2, m4 = centred.square().mean(0), centred.pow(4).mean(0)
    se_var = (2 * (m4 - m2.square()) / S).sqrt()
    assert ((pred.sd.double().square() - draws.var(0)).abs() <= K * se_var).all()
    assert (pred.sd >= pred.epistemic_sd).all() and (pred.sd >= 0.3 * (1 - 1e-5)).all()


@pytest.mark.parametrize("prior", PRIORS)
def test_every_prior_predicts_classes_without_touching_the_caller(prior):
    X = _inputs(n=30)
    bnn = pc.bayesianize(pc.mlp([3, 4, 3]), prior, seed=0)
    bnn.train()
    state = torch.get_rng_state()
    pred = pc.predict(bnn, X, num_samples=10, seed=3, batch_size=7)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's stream is untouched
    assert bnn.training  # the mode is restored
    assert isinstance(pred, Prediction) and pred.num_samples == 10
    assert pred.mean.shape == pred.sd.shape == (30, 3)
    assert torch.isfinite(pred.mean).all() and torch.isfinite(pred.sd).all()
    torch.testing.assert_close(pred.mean.sum(-1), torch.ones(30))
    # the same draws whatever the batch or the other inputs: a row's prediction is its own
    part = pc.predict(bnn, X[5:9], num_samples=10, seed=3)
    torch.testing.assert_close(part.mean, pred.mean[5:9])
    torch.testing.assert_close(part.sd, pred.sd[5:9])
    other = pc.predict(bnn, X, num_samples=10, seed=4)
    assert not torch.equal(other.mean, pred.mean)  # the seed chooses the draws


def test_prediction_reads_as_what_it_is():
    X = _inputs(n=5)
    clf = pc.predict(pc.bayesianize(pc.mlp([3, 2]), "group-nj", seed=0), X, num_samples=4)
    reg = pc.predict(
        pc.bayesianize(pc.mlp([3, 1]), "spike-slab", likelihood="gaussian", seed=0),
        X,
        num_samples=4,
    )
    assert repr(clf) == "Prediction(classification; 5 inputs x 2 classes; 4 draws)"
    assert repr(reg) == "Prediction(regression; 5 inputs; 4 draws)"
    assert clf.probs is clf.mean
    with pytest.raises(AttributeError, match="classification"):
        _ = reg.probs


def test_a_restricted_network_ignores_its_removed_inputs():
    X = _inputs(n=10)
    bnn = pc.bayesianize(pc.mlp([3, 4, 2]), "group-horseshoe", seed=0)
    bnn.restrict({"1": torch.tensor([True, False, False]), "3": torch.ones(4, dtype=torch.bool)})
    moved = X.clone()
    moved[:, 1:] = 100.0 * torch.randn(10, 2, generator=torch.Generator().manual_seed(2))
    a, b = pc.predict(bnn, X, num_samples=5), pc.predict(bnn, moved, num_samples=5)
    torch.testing.assert_close(a.mean, b.mean)


def test_predict_refuses_bad_arguments():
    bnn = pc.bayesianize(pc.mlp([3, 2]), "gaussian", seed=0)
    X = _inputs(n=4)
    with pytest.raises(ValueError, match="num_samples must be at least 2"):
        pc.predict(bnn, X, num_samples=1)
    with pytest.raises(ValueError, match="batch_size"):
        pc.predict(bnn, X, batch_size=0)
    with pytest.raises(ValueError, match="X is empty"):
        pc.predict(bnn, X[:0])
    with pytest.raises(TypeError, match="bayesianize"):
        pc.predict(torch.nn.Linear(3, 2), X)  # type: ignore[arg-type]
    # numpy input, float64: converted to the guide's dtype
    out = pc.predict(bnn, np.asarray(X, dtype=np.float64), num_samples=3)
    assert out.mean.dtype == torch.float32


def test_predictive_moments_points_group_priors_to_predict():
    bnn = pc.bayesianize(pc.mlp([3, 2]), "group-horseshoe", seed=0)
    with pytest.raises(ValueError, match=r"pyrocompress\.predict"):
        predictive_moments(bnn, _inputs(n=4))


def test_guide_traces_restore_the_state_when_the_loop_stops_early():
    bnn = pc.bayesianize(pc.mlp([3, 2]), "group-nj", seed=0)
    bnn.train()
    state = torch.get_rng_state()
    traces = guide_traces(bnn, 5, seed=0)
    next(traces)
    assert not bnn.training
    traces.close()
    assert bnn.training and torch.equal(torch.get_rng_state(), state)


@pytest.fixture(scope="module")
def fitted():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(60, 4, generator=g)
    y = (X[:, 0] - X[:, 1] > 0).long()
    bnn = pc.bayesianize(pc.mlp([4, 5, 2]), prior="group-nj", feature_names=list("abcd"), seed=0)
    pc.fit(bnn, (X, y), epochs=20, progress=False, tol=None)
    return bnn, X, y


def test_datatree_of_new_inputs_has_their_posterior_predictive(fitted):
    bnn, X, y = fitted
    new = X[:7] + 0.5
    tree = pc.Posterior(bnn).to_datatree(new, num_samples=30, seed=0)
    assert set(tree.children) == {"posterior", "posterior_predictive", "variational"}
    obs = tree["posterior_predictive"]["obs"]
    assert dict(obs.sizes) == {"chain": 1, "draw": 30, "obs_id": 7}
    assert set(np.unique(obs.values)) <= {0, 1}  # class labels drawn from the likelihood
    # each outcome is a Bernoulli draw of the predictive probability (the draw of the
    # network and then of the class), so their mean estimates the mean probability of
    # class 1 over the inputs, with variance sum p(1 - p) / (30 * 7)^2
    outcomes = torch.as_tensor(obs.values[0]).double()
    pred = pc.predict(bnn, new, num_samples=200, seed=1)
    p1 = pred.mean[:, 1].double()
    se = (p1 * (1 - p1)).sum().sqrt() / outcomes.numel() + pred.mean_se[:, 1].double().mean()
    assert abs(outcomes.mean() - p1.mean()) <= K * se
    with pytest.raises(ValueError, match="sample_stats"):
        vi_diagnostics(tree)
    # with the targets, as before
    full = pc.Posterior(bnn).to_datatree(X, y, num_samples=5)
    assert {"log_likelihood", "observed_data", "sample_stats"} <= set(full.children)
