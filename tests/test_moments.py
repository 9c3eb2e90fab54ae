"""Moment propagation against Monte Carlo, the moments objective, unit scores."""

import copy
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

import pyrocompress as pc
from pyrocompress.moments import (
    MomentELBO,
    expected_log_likelihood,
    maxpool2d_moments,
    predictive_moments,
    propagate,
    relu_moments,
    unit_scores,
)

DRAWS = 40_000


def _gaussian_bnn(net: nn.Sequential, seed: int = 0, log_var: float = -3.0):
    """A Gaussian-prior network whose guide has visible variances (not the -9 init), and
    a plain copy of ``net`` to run Monte Carlo draws through."""
    plain = copy.deepcopy(net)
    bnn = pc.bayesianize(net, "gaussian", seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in bnn.bayesian_layers():
            q = bnn.guide[name]
            q.weight_log_var.copy_(log_var + 0.5 * torch.randn(q.weight_log_var.shape, generator=g))
            q.bias_log_var.copy_(log_var + 0.5 * torch.randn(q.bias_log_var.shape, generator=g))
            q.bias_loc.copy_(0.3 * torch.randn(q.bias_loc.shape, generator=g))
    return bnn, plain


def _monte_carlo(bnn, net: nn.Sequential, x: torch.Tensor, draws: int = DRAWS, seed: int = 1):
    """Outputs of ``net`` with weights drawn from ``bnn``'s guide: [draws, *out]."""
    torch.manual_seed(seed)
    params = {}
    for name in bnn.bayesian_layers():
        q = bnn.guide[name]
        for part in ("weight", "bias"):
            loc, log_var = getattr(q, f"{part}_loc"), getattr(q, f"{part}_log_var")
            eps = torch.randn(draws, *loc.shape)
            params[f"{name}.{part}"] = (loc + (0.5 * log_var).exp() * eps).detach()
    with torch.no_grad():
        return vmap(lambda p: functional_call(net, p, (x,)), chunk_size=5000)(params)


def _assert_moments(mean, var, samples, *, z: float = 4.5):
    """Mean and variance within ``z`` Monte-Carlo standard errors of the sample's."""
    n = samples.shape[0]
    s_mean, s_var = samples.mean(0), samples.var(0)
    centred = samples - s_mean
    se_mean = (s_var / n).sqrt()
    se_var = ((centred**4).mean(0) - s_var**2).clamp_min(0).div(n).sqrt()
    assert torch.all((mean - s_mean).abs() <= z * se_mean + 1e-6), (mean - s_mean).abs().max()
    assert torch.all((var - s_var).abs() <= z * se_var + 1e-6), (var - s_var).abs().max()


def test_linear_relu_linear_matches_monte_carlo():
    """Exact for this stack: hidden units are independent given the inputs."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    bnn, plain = _gaussian_bnn(net)
    x = torch.randn(4, 5)
    mean, var = propagate(bnn, x)
    _assert_moments(mean, var, _monte_carlo(bnn, plain, x))


def test_conv2d_relu_avgpool_flatten_match_monte_carlo_layer_by_layer():
    """Conv2d then ReLU: exact per unit. AvgPool2d: exact given independent inputs, which
    a shared kernel breaks, so it is checked on independent Gaussian inputs directly."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten())
    bnn, plain = _gaussian_bnn(net)
    x = torch.randn(2, 2, 6, 6)
    mean, var = propagate(bnn, x)
    _assert_moments(mean, var, _monte_carlo(bnn, plain, x))

    pool = nn.AvgPool2d(2)
    m, v = torch.randn(1, 2, 4, 4), torch.rand(1, 2, 4, 4)
    samples = pool(m + v.sqrt() * torch.randn(DRAWS, 2, 4, 4))
    _assert_moments(pool(m), pool(v) / 4, samples)


def test_relu_moments_match_monte_carlo():
    torch.manual_seed(0)
    m = torch.tensor([-2.0, -0.5, 0.0, 0.7, 3.0])
    v = torch.tensor([0.5, 1.0, 2.0, 0.1, 4.0])
    samples = torch.relu(m + v.sqrt() * torch.randn(DRAWS, 5))
    _assert_moments(*relu_moments(m, v), samples)
    # a deterministic input: relu itself
    mm, vv = relu_moments(m, torch.zeros(5))
    assert torch.allclose(mm, torch.relu(m), atol=1e-5) and torch.all(vv < 1e-5)


def test_maxpool_is_exact_for_two_and_approximate_for_four():
    torch.manual_seed(0)
    m, v = torch.randn(1, 3, 2, 4), torch.rand(1, 3, 2, 4) + 0.1
    draw = lambda: m + v.sqrt() * torch.randn(DRAWS, 3, 2, 4)  # noqa: E731
    pair = nn.MaxPool2d((1, 2))  # max of two independent Gaussians: Clark is exact
    _assert_moments(*maxpool2d_moments(pair, m, v), pair(draw()))
    quad = nn.MaxPool2d(2)  # four: pairwise moment matching, an approximation
    mean, var = maxpool2d_moments(quad, m, v)
    samples = quad(draw())
    sd = samples.std(0)
    assert torch.all((mean - samples.mean(0)).abs() < 0.05 * sd)
    assert torch.all((var.sqrt() / sd - 1).abs() < 0.10)
    with pytest.raises(TypeError, match="without padding"):
        maxpool2d_moments(nn.MaxPool2d(2, padding=1), m, v)


def test_deeper_stacks_are_close_to_monte_carlo():
    """Past one hidden layer the units share random inputs and the diagonal propagation
    ignores their covariance: close, not exact (Wu et al. 2019 report the same)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 6),
        nn.ReLU(), nn.Linear(6, 3),
    )  # fmt: skip
    bnn, plain = _gaussian_bnn(net, log_var=-4.0)
    x = torch.randn(3, 1, 8, 8)
    mean, var = propagate(bnn, x)
    samples = _monte_carlo(bnn, plain, x)
    sd = samples.std(0)
    assert torch.all((mean - samples.mean(0)).abs() < 0.25 * sd)
    assert torch.all((var.sqrt() / sd - 1).abs() < 0.35)


def test_expected_log_likelihoods():
    torch.manual_seed(0)
    m, v = torch.randn(6, 4), torch.rand(6, 4) * 0.3
    y = torch.randint(0, 4, (6,))
    f = m + v.sqrt() * torch.randn(DRAWS, 6, 4)
    mc = torch.log_softmax(f, -1).gather(-1, y.expand(DRAWS, 6).unsqueeze(-1)).squeeze(-1)
    bound = expected_log_likelihood(pc.CategoricalLikelihood(), m, v, y)
    # Jensen: a lower bound, at most max_k v_k / 2 below the expectation
    se = mc.std(0) / math.sqrt(DRAWS)
    assert torch.all(bound <= mc.mean(0) + 4.5 * se)
    assert torch.all(mc.mean(0) - bound <= 0.5 * v.max(-1).values + 4.5 * se)
    # Bernoulli likewise
    mb, vb, yb = torch.randn(6, 1), torch.rand(6, 1), torch.randint(0, 2, (6,))
    fb = (mb + vb.sqrt() * torch.randn(DRAWS, 6, 1)).squeeze(-1)
    mcb = torch.distributions.Bernoulli(logits=fb).log_prob(yb.float())
    seb = mcb.std(0) / math.sqrt(DRAWS)
    bound_b = expected_log_likelihood(pc.BernoulliLikelihood(), mb, vb, yb)
    assert torch.all(bound_b <= mcb.mean(0) + 4.5 * seb)
    assert torch.all(mcb.mean(0) - bound_b <= 0.5 * vb.squeeze(-1) + 4.5 * seb)
    # Gaussian: exact
    lik = pc.GaussianLikelihood(0.7, learn_noise=False)
    m1, v1, y1 = torch.randn(5, 1), torch.rand(5, 1), torch.randn(5)
    f1 = m1 + v1.sqrt() * torch.randn(DRAWS, 5, 1)
    mc1 = torch.distributions.Normal(f1.squeeze(-1), 0.7).log_prob(y1)
    se = mc1.std(0) / math.sqrt(DRAWS)
    assert torch.all((expected_log_likelihood(lik, m1, v1, y1) - mc1.mean(0)).abs() < 4.5 * se)


def test_moment_elbo_is_the_expected_sampled_elbo_for_a_linear_gaussian_model():
    """Linear regression: the expected log-likelihood is exact, so the moments objective
    equals the mean of the sampled (local reparametrisation) ELBO."""
    from pyrocompress.reparam import LocalReparamELBO

    torch.manual_seed(0)
    bnn, _ = _gaussian_bnn(nn.Sequential(nn.Linear(3, 1)))
    bnn.likelihood = pc.GaussianLikelihood(0.5, learn_noise=False)
    X, y = torch.randn(16, 3), torch.randn(16)
    kw = dict(dataset_size=100, subsample=torch.arange(16))
    exact = MomentELBO().loss(bnn, bnn.guide, X, y, **kw)
    with torch.no_grad():
        sampled = torch.tensor(
            [LocalReparamELBO().loss(bnn, bnn.guide, X, y, **kw) for _ in range(2000)]
        )
    se = sampled.std() / math.sqrt(len(sampled))
    assert abs(exact - sampled.mean().item()) < 4.5 * se.item()


def test_fit_with_the_moments_objective_trains_and_predicts(relevant_data):
    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([8, 16, 2]), "gaussian", seed=0)
    history = pc.fit(bnn, (X, y), epochs=30, lr=1e-2, objective="moments", progress=False)
    assert history.loss[-1] < history.loss[0]
    pred = predictive_moments(bnn, X)
    assert torch.allclose(pred["probs"].sum(-1), torch.ones(len(X)))
    accuracy = (pred["probs"].argmax(-1) == y).float().mean()
    assert accuracy > 0.85
    assert torch.all(pred["var"] >= 0)


def test_moments_objective_needs_the_gaussian_prior(relevant_data):
    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([8, 4, 2]), "group-nj", seed=0)
    with pytest.raises(ValueError, match="gaussian"):
        pc.fit(bnn, (X, y), epochs=1, objective="moments", progress=False)
    with pytest.raises(ValueError, match="objective must be one of"):
        pc.fit(bnn, (X, y), epochs=1, objective="sampling", progress=False)


def test_unit_scores_find_the_inputs_that_matter(relevant_data):
    """Inputs 0, 1, 2 of 8 drive the label: every score ranks them first."""
    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([8, 16, 2]), "gaussian", seed=0)
    pc.fit(bnn, (X, y), epochs=60, lr=1e-2, objective="moments", progress=False)
    scores = unit_scores(bnn, X)
    assert set(scores) == {"output_snr", "kernel_norm", "variance_share"}
    for name, by_layer in scores.items():
        first = by_layer["1"]
        assert first.shape == (8,)
        assert set(first.argsort(descending=True)[:3].tolist()) == {0, 1, 2}, name
    share = scores["variance_share"]["3"]  # shares times the number of groups: mean 1
    assert torch.isclose(share.mean(), torch.tensor(1.0))


@pytest.mark.parametrize("score", ["output_snr", "kernel_norm", "variance_share"])
def test_moment_scores_drive_the_pruning_plan_and_export(relevant_data, score):
    X, y = relevant_data
    bnn = pc.bayesianize(pc.mlp([8, 16, 2]), "gaussian", seed=0)
    pc.fit(bnn, (X, y), epochs=40, lr=1e-2, objective="moments", progress=False)
    result = pc.prune(bnn, "sparsity", sparsity=0.5, score=score, validation=(X, y))
    assert result.plan.score == score
    kept_inputs = result.plan.masks["1"].nonzero().flatten().tolist()
    assert {0, 1, 2} <= set(kept_inputs)
    assert result.report["architecture_after"][0] < 8
    auto = pc.prune(bnn, "auto", score=score, validation=(X, y), tolerance=0.02)
    assert auto.report["params_after"] < auto.report["params_before"]
    with pytest.raises(ValueError, match="propagated over data"):
        pc.prune(bnn, "sparsity", sparsity=0.5, score=score, example_input=X[:1])


def _assert_covariance(cov, samples, *, z: float = 4.5):
    """Every entry of ``cov`` [n, d, d] within ``z`` Monte-Carlo standard errors of the
    sample covariance of ``samples`` [draws, n, d]."""
    draws = samples.shape[0]
    c = samples - samples.mean(0)
    products = c.unsqueeze(-1) * c.unsqueeze(-2)  # [draws, n, d, d]
    s_cov = products.mean(0)
    se = products.var(0).div(draws).sqrt()
    assert torch.all((cov - s_cov).abs() <= z * se + 1e-6), (cov - s_cov).abs().max()


def _positive_means(bnn, layers):
    """Make the weight means of ``layers`` positive, so that the units they feed share
    their random inputs coherently and are strongly correlated."""
    with torch.no_grad():
        for name in layers:
            bnn.guide[name].weight_loc.abs_()


def test_full_covariance_is_exact_through_linear_layers():
    """Three Linear layers: the second's outputs share the first's random outputs and are
    correlated, which the third's output variance feels. The full propagation gets every
    mean, variance and covariance within Monte Carlo error; the diagonal one does not."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3))
    bnn, plain = _gaussian_bnn(net, log_var=-1.0)
    _positive_means(bnn, ["1", "2"])
    x = torch.randn(3, 4)
    samples = _monte_carlo(bnn, plain, x)
    mean, cov = propagate(bnn, x, covariance="full")
    assert cov.shape == (3, 3, 3)
    _assert_moments(mean, cov.diagonal(0, -2, -1), samples)
    _assert_covariance(cov, samples)
    _, var_diag = propagate(bnn, x)
    s_var = samples.var(0)
    err_full = (cov.diagonal(0, -2, -1) / s_var - 1).abs()
    err_diag = (var_diag / s_var - 1).abs()
    assert err_diag.mean() > 5 * err_full.mean(), (err_diag.mean(), err_full.mean())


def test_full_covariance_through_relus_is_closer_to_monte_carlo_than_diagonal():
    """With ReLUs the off-diagonal covariance is first order in the correlation and the
    pre-activations past the first layer are not Gaussian: not exact, but the output
    variances come far closer to Monte Carlo than the diagonal propagation's, and the
    covariance stays positive semi-definite."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)
    )  # fmt: skip
    bnn, plain = _gaussian_bnn(net, log_var=-3.5)
    _positive_means(bnn, ["2", "4"])
    x = torch.randn(4, 5)
    samples = _monte_carlo(bnn, plain, x)
    s_var = samples.var(0)
    mean, cov = propagate(bnn, x, covariance="full")
    _, var_diag = propagate(bnn, x)
    err_full = (cov.diagonal(0, -2, -1) / s_var - 1).abs()
    err_diag = (var_diag / s_var - 1).abs()
    assert err_full.mean() < 0.5 * err_diag.mean(), (err_full.mean(), err_diag.mean())
    assert err_full.max() < 0.15
    assert torch.linalg.eigvalsh(cov).min() > -1e-6


def test_full_and_diagonal_agree_while_units_are_uncorrelated():
    """Linear-ReLU-Linear: the second layer's inputs are independent, so the full
    propagation's variances are the diagonal one's (and both exact)."""
    torch.manual_seed(0)
    bnn, _ = _gaussian_bnn(nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)))
    x = torch.randn(4, 5)
    m_full, c_full = propagate(bnn, x, covariance="full")
    m_diag, v_diag = propagate(bnn, x)
    assert torch.allclose(m_full, m_diag, atol=1e-5)
    assert torch.allclose(c_full.diagonal(0, -2, -1), v_diag, rtol=1e-5, atol=1e-6)


def test_full_covariance_predictions_objective_and_errors():
    torch.manual_seed(0)
    bnn, _ = _gaussian_bnn(nn.Sequential(nn.Flatten(), nn.Linear(9, 5), nn.ReLU(), nn.Linear(5, 3)))
    X = torch.randn(6, 1, 3, 3)
    y = torch.randint(0, 3, (6,))
    out = predictive_moments(bnn, X, covariance="full")
    assert out["cov"].shape == (6, 3, 3)
    assert torch.allclose(out["var"], out["cov"].diagonal(0, -2, -1))
    assert torch.allclose(out["probs"].sum(-1), torch.ones(6), atol=1e-5)
    loss_full = MomentELBO(covariance="full").differentiable_loss(bnn, bnn.guide, X, y)
    loss_diag = MomentELBO().differentiable_loss(bnn, bnn.guide, X, y)
    assert torch.isfinite(loss_full) and torch.isfinite(loss_diag)
    loss_full.backward()  # differentiable in the guide's parameters
    conv = pc.bayesianize(nn.Sequential(nn.Conv2d(1, 2, 2), nn.Flatten()), "gaussian")
    with pytest.raises(TypeError, match="covariance='diagonal' for convolutional"):
        propagate(conv, X, covariance="full")
    with pytest.raises(ValueError, match="covariance must be one of"):
        propagate(bnn, X, covariance="dense")
    with pytest.raises(ValueError, match="record=True"):
        propagate(bnn, X, covariance="full", record=True)
