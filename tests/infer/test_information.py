"""The Fisher information recorded for the inclusion probabilities (infer/information.py)."""

import pytest
import torch
from torch import nn

import pyrocompress as pc
from pyrocompress.distributions import BernoulliLikelihood, GaussianLikelihood
from pyrocompress.infer import fisher_information, group_information, record_information


def _data(n=50, p=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p, generator=g)
    return X, X[:, 0] + 0.1 * torch.randn(n, generator=g)


def test_linear_gaussian_information_is_sum_of_squares_over_noise():
    # y = Xb + N(0, s^2): the Fisher information of b_j is sum_n x_nj^2 / s^2, exactly
    X, y = _data()
    bnn = pc.bayesianize(nn.Linear(4, 1), "group-nj", likelihood=GaussianLikelihood(0.5), seed=0)
    info = fisher_information(bnn, (X, y))["layer"]
    expected = (X.square().sum(0) / 0.25).unsqueeze(0)
    torch.testing.assert_close(info, expected, rtol=1e-5, atol=1e-5)


def test_logistic_information_is_weighted_sum_of_squares():
    # Bernoulli logit f = w.x + b: information of w_j is sum_n p_n (1 - p_n) x_nj^2
    X, y = _data()
    yb = (y > 0).long()
    bnn = pc.bayesianize(nn.Linear(4, 1), "group-horseshoe", likelihood=BernoulliLikelihood(),
                         seed=0)  # fmt: skip
    info = fisher_information(bnn, (X, yb))["layer"]
    p = torch.sigmoid(bnn.predict_point(X).squeeze(-1))
    expected = ((p * (1 - p)).unsqueeze(-1) * X.square()).sum(0, keepdim=True)
    torch.testing.assert_close(info, expected, rtol=1e-4, atol=1e-5)


def _brute_force(bnn, X):
    """Sum over examples and Fisher-factor columns of squared per-example gradients."""
    layers = bnn.bayesian_layers()
    point = {n: bnn.point_weights()[layer][0].clone().requires_grad_()
             for n, layer in layers.items()}  # fmt: skip
    total = {n: torch.zeros_like(w) for n, w in point.items()}
    from pyrocompress.effects import PointEstimate

    for i in range(len(X)):
        weights = {
            layer: (point[n], *bnn.point_weights()[layer][1:]) for n, layer in layers.items()
        }
        with PointEstimate(weights):
            out = bnn.net(X[i : i + 1])
        factor = bnn.likelihood.fisher_factor(out.detach())
        for k in range(factor.shape[-1]):
            grads = torch.autograd.grad(out, list(point.values()),
                                        grad_outputs=factor[..., k].reshape(out.shape),
                                        retain_graph=True)  # fmt: skip
            for n, gr in zip(point, grads, strict=True):
                total[n] += gr.square()
    return total


def test_generic_path_matches_per_example_autograd_for_a_conv_classifier():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(6, 1, 6, 6, generator=g)
    y = torch.randint(0, 3, (6,), generator=g)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    bnn = pc.bayesianize(net, "group-nj", seed=0)
    fast = fisher_information(bnn, (X, y), batch_size=4)
    slow = _brute_force(bnn, X)
    for name in fast:
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-4, atol=1e-6)


def test_linear_closed_form_equals_the_generic_vjp():
    layer = pc.bayesianize(nn.Linear(5, 3), "group-nj", seed=0).bayesian_layers()["layer"]
    g = torch.Generator().manual_seed(2)
    x, delta = torch.randn(7, 5, generator=g), torch.randn(7, 3, generator=g)
    generic = pc.nn.BayesianLayer.weight_information(layer, x, delta)
    torch.testing.assert_close(layer.weight_information(x, delta), generic)


@pytest.mark.parametrize("geometry", [{}, {"stride": 2, "padding": 1, "dilation": 2}])
def test_conv_closed_form_equals_the_generic_vjp(geometry):
    conv = nn.Conv2d(3, 4, 3, **geometry)
    layer = pc.bayesianize(conv, "group-nj", seed=0).bayesian_layers()["layer"]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 3, 9, 9, generator=g)
    delta = torch.randn(layer._op(x, torch.zeros(4, 3, 3, 3), None).shape, generator=g)
    generic = pc.nn.BayesianLayer.weight_information(layer, x, delta)
    torch.testing.assert_close(layer.weight_information(x, delta), generic)


def test_information_through_a_norm_and_a_depthwise_conv_matches_autograd():
    g = torch.Generator().manual_seed(4)
    X = torch.randn(6, 2, 6, 6, generator=g)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, groups=4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3),
    )  # fmt: skip
    bnn = pc.bayesianize(net, "group-nj", seed=0)
    norm = bnn.bayesian_layers()["0"].norm
    with torch.no_grad():  # running statistics away from (0, 1), so the norm's scale counts
        norm.running_var.uniform_(0.5, 2.0, generator=g)
        norm.running_mean.normal_(generator=g)
        norm.weight.uniform_(0.5, 1.5, generator=g)
    fast = fisher_information(bnn, (X, torch.zeros(6, dtype=torch.long)), batch_size=4)
    bnn.eval()  # the norm with its running statistics, as fisher_information computes
    slow = _brute_force(bnn, X)
    # the normed layer's information is that of a * g * w~ (a the norm's scale): per-example
    # autograd through the point network gives that of w~, (a g)^2 times as large, where
    # the recorded information holds a^2 but not the gate's g^2
    for name in fast:
        expected = slow[name]
        if name == "0":
            g0 = bnn.guide["0"].mean_multiplier()
            scale = g0 if g0 is not None else torch.ones(4)
            expected = expected / scale.reshape(-1, 1, 1, 1).square()
        torch.testing.assert_close(fast[name], expected, rtol=1e-4, atol=1e-6)


def test_random_projections_estimate_the_exact_information_without_bias():
    g = torch.Generator().manual_seed(5)
    X = torch.randn(8, 1, 6, 6, generator=g)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 4))
    bnn = pc.bayesianize(net, "group-nj", seed=0)
    data = (X, torch.zeros(8, dtype=torch.long))
    exact = group_information(bnn, data)
    sketch = group_information(bnn, data, projections=600, seed=1)
    # each group mean averages >= 8 examples x 600 projections of terms whose relative
    # variance is at most 2: relative sd <= sqrt(2 / 4800) = 0.02; 0.1 is 5 sd
    for name in exact:
        torch.testing.assert_close(sketch[name], exact[name], rtol=0.1, atol=0.0)
    one = group_information(bnn, data, projections=1, seed=1)
    assert all(bool((one[n] > 0).all()) for n in one)
    with pytest.raises(ValueError, match="projections"):
        group_information(bnn, data, projections=0)


def test_subset_is_scaled_to_the_data_set_and_seeded():
    X, y = _data(n=400)
    bnn = pc.bayesianize(nn.Linear(4, 1), "group-nj", likelihood=GaussianLikelihood(1.0), seed=0)
    full = group_information(bnn, (X, y))["layer"]
    part = group_information(bnn, (X, y), max_examples=200, seed=3)["layer"]
    again = group_information(bnn, (X, y), max_examples=200, seed=3)["layer"]
    torch.testing.assert_close(part, again)
    # a mean of 200 squares of N(0, 1) scaled by 2: relative sd sqrt(2/200) * sqrt(1/2) = 0.07
    assert torch.allclose(part, full, rtol=0.3)


def test_fit_records_information_and_state_dict_keeps_it(tmp_path):
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([4, 3, 1]), "group-horseshoe",
                         likelihood=GaussianLikelihood(1.0), seed=0)  # fmt: skip
    with pytest.raises(ValueError, match="record_information"):
        pc.Posterior(bnn).inclusion_probabilities()
    pc.fit(bnn, (X, y), epochs=2, batch_size=25, progress=False)
    info = pc.Posterior(bnn).information()
    assert all(bool(torch.isfinite(v).all()) for v in info.values())
    state = bnn.state_dict()
    other = pc.bayesianize(pc.mlp([4, 3, 1]), "group-horseshoe",
                           likelihood=GaussianLikelihood(1.0), seed=1)  # fmt: skip
    other.load_state_dict(state)
    assert torch.equal(pc.Posterior(other).information()["1"], info["1"])
    # a state saved before the information existed loads, with it unknown
    old = {k: v for k, v in state.items() if not k.endswith(".information")}
    fresh = pc.bayesianize(pc.mlp([4, 3, 1]), "group-horseshoe",
                           likelihood=GaussianLikelihood(1.0), seed=1)  # fmt: skip
    fresh.load_state_dict(old)
    assert bool(torch.isnan(pc.Posterior(fresh).information()["1"]).all())
    record_information(fresh, (X, y))
    assert bool(torch.isfinite(pc.Posterior(fresh).information()["1"]).all())


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_sizes_are_refused(bad):
    X, y = _data()
    bnn = pc.bayesianize(nn.Linear(4, 1), "group-nj", likelihood=GaussianLikelihood(1.0), seed=0)
    with pytest.raises(ValueError, match="max_examples"):
        fisher_information(bnn, (X, y), max_examples=bad)


# ------------------------------------------------------- one-step estimates of a GLM
def _point(bnn):
    layer = next(iter(bnn.bayesian_layers().values()))
    name = next(iter(bnn.bayesian_layers()))
    w, b = layer.point_weights(bnn.guide[name])[:2]
    return w.detach().double(), b.detach().double()


def test_linear_gaussian_one_step_estimates_are_least_squares_on_the_partial_residual():
    # b_j = w_j + x_j'(y - Xw - b) / x_j'x_j: the estimate of w_j with the others fixed
    X, y = _data()
    bnn = pc.bayesianize(nn.Linear(4, 1), "group-horseshoe", seed=0,
                         likelihood=GaussianLikelihood(0.5, learn_noise=False))  # fmt: skip
    pc.fit(bnn, (X, y), epochs=30, batch_size=50, progress=False, tol=None)
    w, b = _point(bnn)
    Xd, yd = X.double(), y.double()
    r = yd - Xd @ w[0] - b[0]
    expected = (w[0] + Xd.T @ r / Xd.square().sum(0)).square()
    torch.testing.assert_close(bnn.guide["layer"].newton_square.double(), expected, rtol=1e-4,
                               atol=1e-7)  # fmt: skip


def test_logistic_one_step_estimates_are_a_fisher_scoring_step():
    X, y = _data()
    yb = (y > 0).long()
    bnn = pc.bayesianize(nn.Linear(4, 1), "regularized-horseshoe", seed=0,
                         likelihood=BernoulliLikelihood())  # fmt: skip
    pc.fit(bnn, (X, yb), epochs=30, batch_size=50, progress=False, tol=None)
    w, b = _point(bnn)
    Xd = X.double()
    p = torch.sigmoid(Xd @ w[0] + b[0])
    info = ((p * (1 - p)).unsqueeze(-1) * Xd.square()).sum(0)
    expected = (w[0] + Xd.T @ (yb.double() - p) / info).square()
    torch.testing.assert_close(bnn.guide["layer"].newton_square.double(), expected, rtol=1e-3,
                               atol=1e-6)  # fmt: skip


def test_one_step_estimates_are_recorded_for_glms_only_and_saved():
    X, y = _data()
    mlp = pc.bayesianize(pc.mlp([4, 3, 1]), "group-horseshoe", seed=0,
                         likelihood=GaussianLikelihood(0.5))  # fmt: skip
    pc.fit(mlp, (X, y), epochs=2, batch_size=50, progress=False, tol=None)
    assert pc.infer.glm_layer(mlp) is None
    assert all((mlp.guide[n].newton_square == 0).all() for n in mlp.bayesian_layers())
    glm = pc.bayesianize(nn.Linear(4, 1), "group-horseshoe", seed=0,
                         likelihood=GaussianLikelihood(0.5))  # fmt: skip
    pc.fit(glm, (X, y), epochs=2, batch_size=50, progress=False, tol=None)
    assert pc.infer.glm_layer(glm) == "layer"
    state = glm.state_dict()
    assert torch.isfinite(state["guide.layers.layer.newton_square"]).all()
    fresh = pc.bayesianize(nn.Linear(4, 1), "group-horseshoe", seed=1,
                           likelihood=GaussianLikelihood(0.5))  # fmt: skip
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.guide["layer"].newton_square, glm.guide["layer"].newton_square)
    # a network saved before the estimates existed loads with them unknown
    old = {k: v for k, v in state.items() if not k.endswith("newton_square")}
    new = pc.bayesianize(nn.Linear(4, 1), "group-horseshoe", seed=1,
                         likelihood=GaussianLikelihood(0.5))  # fmt: skip
    new.load_state_dict(old)
    assert torch.isnan(new.guide["layer"].newton_square).all()
