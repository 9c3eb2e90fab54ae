"""Moment propagation against Monte Carlo, the moments objective, unit scores."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

import pyrocompress as pc
from pyrocompress.analysis import predictive_moments, unit_scores
from pyrocompress.infer import MomentELBO
from pyrocompress.nn.moments import (
    avgpool2d_moments,
    expected_log_likelihood,
    maxpool2d_moments,
    propagate,
    relu_moments,
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


def test_conv2d_relu_flatten_match_monte_carlo():
    """Conv2d then ReLU: exact per unit."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten())
    bnn, plain = _gaussian_bnn(net)
    x = torch.randn(2, 2, 6, 6)
    mean, var = propagate(bnn, x)
    _assert_moments(mean, var, _monte_carlo(bnn, plain, x))


def test_strided_padded_dilated_conv_with_dropout_and_identity_match_monte_carlo():
    """Stride, padding and dilation go through the layer's own op; Dropout and Identity
    are the identity at evaluation (Monte Carlo runs the plain network in eval mode).
    Exact per unit (a Linear layer after it would see correlated positions)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=2), nn.Dropout2d(0.3), nn.ReLU(),
        nn.Identity(), nn.Flatten(), nn.Dropout(0.5),
    )  # fmt: skip
    bnn, plain = _gaussian_bnn(net)
    plain.eval()
    x = torch.randn(2, 2, 7, 7)
    mean, var = propagate(bnn, x)
    assert mean.shape == (2, 27)
    _assert_moments(mean, var, _monte_carlo(bnn, plain, x))


@pytest.mark.parametrize("pool", [nn.AvgPool2d(2), nn.AvgPool2d((2, 3), stride=1),
                                  nn.AvgPool2d(2, divisor_override=3)])  # fmt: skip
def test_avgpool_is_exact_for_uncorrelated_inputs(pool):
    torch.manual_seed(0)
    m, v = torch.randn(1, 2, 4, 6), torch.rand(1, 2, 4, 6)
    samples = pool(m + v.sqrt() * torch.randn(DRAWS, 2, 4, 6))
    _assert_moments(*avgpool2d_moments(pool, m, v), samples)
    with pytest.raises(TypeError, match="without padding"):
        avgpool2d_moments(nn.AvgPool2d(2, padding=1), m, v)


def test_propagate_pools_with_the_layer_functions():
    """Inside a network the pools get the propagated moments of the layer before them
    (whose positions share a kernel, so they are correlated and the diagonal propagation
    is an approximation there: see the deeper-stack test)."""
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU())
    for pool, moments in ((nn.AvgPool2d(2, divisor_override=3), avgpool2d_moments),
                          (nn.MaxPool2d(2), maxpool2d_moments)):  # fmt: skip
        bnn, _ = _gaussian_bnn(nn.Sequential(*conv, pool))
        x = torch.randn(2, 2, 6, 6)
        mean, var = propagate(bnn, x)
        head = pc.bayesianize(nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU()), "gaussian")
        head.load_state_dict(bnn.state_dict())
        expected = moments(pool, *propagate(head, x))
        assert torch.allclose(mean, expected[0]) and torch.allclose(var, expected[1])


def test_relu_moments_match_monte_carlo():
    torch.manual_seed(0)
    m = torch.tensor([-2.0, -0.5, 0.0, 0.7, 3.0])
    v = torch.tensor([0.5, 1.0, 2.0, 0.1, 4.0])
    samples = torch.relu(m + v.sqrt() * torch.randn(DRAWS, 5))
    _assert_moments(*relu_moments(m, v), samples)
    # a deterministic input: relu itself
    mm, vv = relu_moments(m, torch.zeros(5))
    assert torch.allclose(mm, torch.relu(m), atol=1e-5) and torch.all(vv < 1e-5)


def _exact_max_moments(m: torch.Tensor, s: torch.Tensor, points: int = 8001):
    """Mean and variance of the maximum of independent N(m_i, s_i²) (last axis) by
    quadrature of its CDF, prod_i Phi((x - m_i) / s_i), in float64."""
    m, s = m.double(), s.double()
    lo, hi = (m - 12 * s).min(-1).values, (m + 12 * s).max(-1).values
    x = lo[..., None] + (hi - lo)[..., None] * torch.linspace(0, 1, points, dtype=m.dtype)
    cdf = torch.special.ndtr((x[..., None, :] - m[..., :, None]) / s[..., :, None]).prod(-2)
    mass, mid = cdf.diff(dim=-1), 0.5 * (x[..., 1:] + x[..., :-1])
    first, second = (mid * mass).sum(-1), (mid.square() * mass).sum(-1)
    return first, second - first.square()


def test_maxpool_is_exact_for_two_windows():
    """The maximum of two independent Gaussians: Clark's moments are exact."""
    torch.manual_seed(0)
    m, v = torch.randn(1, 3, 2, 4), torch.rand(1, 3, 2, 4) + 0.1
    pair = nn.MaxPool2d((1, 2))
    samples = pair(m + v.sqrt() * torch.randn(DRAWS, 3, 2, 4))
    _assert_moments(*maxpool2d_moments(pair, m, v), samples)
    with pytest.raises(TypeError, match="without ceil_mode"):
        maxpool2d_moments(nn.MaxPool2d(2, ceil_mode=True), m, v)


def test_maxpool_of_four_against_quadrature():
    """Four elements: Clark's pairwise moment matching is an approximation. Its error is
    measured against the exact moments by quadrature (which Monte Carlo confirms within its
    standard error) over 500 random windows (means N(0, 1), variances U(0.01, 2.01)): the
    figures the ``maxpool2d_moments`` docstring states — median error 0.005 sd in the mean
    and 2.5 % in the sd, worst 0.11 sd and 32 %."""
    g = torch.Generator().manual_seed(0)
    n = 500
    m = torch.randn(n, 4, generator=g, dtype=torch.float64)
    v = torch.rand(n, 4, generator=g, dtype=torch.float64) * 2 + 0.01
    e_mean, e_var = _exact_max_moments(m, v.sqrt())
    torch.manual_seed(1)
    samples = (m[:20] + v[:20].sqrt() * torch.randn(DRAWS, 20, 4, dtype=m.dtype)).max(-1).values
    _assert_moments(e_mean[:20], e_var[:20], samples)  # the reference is right
    c_mean, c_var = maxpool2d_moments(nn.MaxPool2d((1, 4)), m.view(1, 1, n, 4), v.view(1, 1, n, 4))
    mean_err = (c_mean.flatten() - e_mean).abs() / e_var.sqrt()
    sd_err = (c_var.flatten().sqrt() / e_var.sqrt() - 1).abs()
    assert mean_err.median() < 0.006 and sd_err.median() < 0.03, (
        mean_err.median(),
        sd_err.median(),
    )
    assert mean_err.max() < 0.11 and sd_err.max() < 0.33, (mean_err.max(), sd_err.max())


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
    from pyrocompress.infer import LocalReparamELBO

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


def test_regression_predictive_variance_matches_monte_carlo():
    """Gaussian likelihood: the predictive variance is the output variance plus the noise
    variance, exactly."""
    torch.manual_seed(0)
    bnn, plain = _gaussian_bnn(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)))
    bnn.likelihood = pc.GaussianLikelihood(0.5, learn_noise=False)
    x = torch.randn(5, 3)
    out = predictive_moments(bnn, x)
    f = _monte_carlo(bnn, plain, x)
    y = f + 0.5 * torch.randn_like(f)
    _assert_moments(out["mean"], out["predictive_var"], y)


def test_probit_predictive_against_monte_carlo():
    """A linear logistic model has exactly Gaussian logits, so the only error is the
    probit approximation of E sigmoid(f) (MacKay 1992), whose largest error over means in
    [-6, 6] and variances in [1e-3, 100] is 0.013 (computed here by Gauss-Hermite
    quadrature)."""
    import numpy as np

    nodes, weights = map(torch.from_numpy, np.polynomial.hermite_e.hermegauss(80))
    grid_m = torch.linspace(-6, 6, 241, dtype=torch.float64)[:, None, None]
    grid_v = torch.logspace(-3, 2, 101, dtype=torch.float64)[None, :, None]
    exact = (torch.sigmoid(grid_m + grid_v.sqrt() * nodes) * weights).sum(-1) / math.sqrt(
        2 * math.pi
    )
    probit = torch.sigmoid(grid_m[..., 0] / torch.sqrt(1 + math.pi * grid_v[..., 0] / 8))
    max_error = (exact - probit).abs().max().item()
    assert 0.012 < max_error < 0.014
    torch.manual_seed(0)
    bnn, plain = _gaussian_bnn(nn.Sequential(nn.Linear(3, 1)), log_var=0.0)
    bnn.likelihood = pc.BernoulliLikelihood()
    x = 2 * torch.randn(6, 3)
    probs = predictive_moments(bnn, x)["probs"].squeeze(-1)
    p = torch.sigmoid(_monte_carlo(bnn, plain, x).squeeze(-1))
    se = p.std(0) / math.sqrt(len(p))
    assert torch.all((probs - p.mean(0)).abs() <= max_error + 4.5 * se)


def _masks(bnn, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, layer in bnn.bayesian_layers().items():
        m = torch.rand(layer.spec.num_groups, generator=g) < 0.5
        m[0] = True
        out[name] = m
    return out


def test_propagation_of_a_restricted_network_is_that_of_the_network_without_the_groups():
    """BayesianNetwork.restrict removes groups (inputs of a Linear layer, output channels
    of a Conv2d): the propagated moments, the moments objective and the unit scores must
    be those of the network whose removed groups have zero weights and zero variance."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 6), nn.ReLU(), nn.Linear(6, 3)
    )
    bnn, _ = _gaussian_bnn(net)
    zeroed = copy.deepcopy(bnn)
    masks = _masks(bnn)
    bnn.restrict(masks)
    with torch.no_grad():
        for name, layer in zeroed.bayesian_layers().items():
            q, keep = zeroed.guide[name], masks[name].float()
            shape = (1, -1) if layer.spec.kind == "linear" else (-1, 1, 1, 1)
            q.weight_loc.mul_(keep.view(shape))
            q.weight_log_var.add_((1 - keep.view(shape)) * -200.0)
            if layer.spec.kind != "linear":  # an output channel's bias goes too
                q.bias_loc.mul_(keep)
                q.bias_log_var.add_((1 - keep) * -200.0)
    x = torch.randn(5, 1, 6, 6)
    for got, want in zip(propagate(bnn, x), propagate(zeroed, x), strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    kept = masks["0"].nonzero().flatten()
    scores = unit_scores(bnn, x)
    for name, by_layer in scores.items():
        for layer, score in by_layer.items():
            assert torch.all(score[~masks[layer]] == 0), (name, layer)
    y = torch.randint(0, 3, (5,))
    bnn.guide.zero_grad()
    MomentELBO().differentiable_loss(bnn, bnn.guide, x, y).backward()
    grad = bnn.guide["0"].weight_loc.grad
    removed = ~masks["0"]
    # a removed channel's mean weights only feel their own KL term: gradient mu / prior var
    assert torch.allclose(grad[removed], bnn.guide["0"].weight_loc[removed].detach(), atol=1e-5)
    assert kept.numel() > 0


def test_output_snr_of_a_first_linear_layer_in_closed_form():
    """For a first layer (deterministic inputs x) the input x_j cancels:
    SNR_j = sum_i M_ij² / sum_i S_ij."""
    torch.manual_seed(0)
    bnn, _ = _gaussian_bnn(nn.Sequential(nn.Linear(5, 4)))
    q = bnn.guide["0"]
    expected = q.weight_loc.square().sum(0) / q.weight_log_var.exp().sum(0)
    got = unit_scores(bnn, torch.randn(7, 5))["output_snr"]["0"]
    assert torch.allclose(got, expected.detach(), rtol=1e-4)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_variance_share_is_the_share_of_the_output_variance(kind):
    """The group's contributions to the pre-activations it feeds, drawn over the examples
    (uniformly) and the guide: their variance summed over the units it feeds, as a share of
    the layer's total, times the number of groups — within Monte Carlo error."""
    torch.manual_seed(0)
    layer = nn.Linear(4, 3) if kind == "linear" else nn.Conv2d(1, 3, 2)
    bnn, _ = _gaussian_bnn(nn.Sequential(layer), log_var=-1.0)
    q = bnn.guide["0"]
    x = torch.randn(6, 4) + 1.0 if kind == "linear" else torch.randn(6, 1, 3, 3) + 1.0
    draws = 20_000
    w = q.weight_loc + (0.5 * q.weight_log_var).exp() * torch.randn(draws, *q.weight_loc.shape)
    w = w.detach()
    n = torch.randint(0, len(x), (draws,))
    if kind == "linear":  # contribution c_ij = w_ij x_j: [draws, out, in]; groups = inputs j
        c = w * x[n][:, None, :]
    else:  # a channel's pre-activation without bias: [draws, out, h, w]; groups = channels
        c = torch.stack([F.conv2d(x[k : k + 1], w[d])[0] for d, k in enumerate(n.tolist())])

    def share(c):
        per_group = c.var(0).sum(0) if kind == "linear" else c.var(0).sum((1, 2))
        return per_group * len(per_group) / per_group.sum()

    expected = share(c)
    batches = torch.stack([share(b) for b in c.chunk(20)])  # batch means: the MC error
    se = batches.std(0) / math.sqrt(len(batches))
    got = unit_scores(bnn, x)["variance_share"]["0"]
    assert torch.all((got - expected).abs() <= 4.5 * se), (got - expected) / se
