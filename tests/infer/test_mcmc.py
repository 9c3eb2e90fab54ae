import arviz_stats as azs
import numpy as np
import pytest
import torch

import pyrocompress as pc
from pyrocompress.distributions import GaussianLikelihood
from pyrocompress.infer.mcmc import compare_svi_nuts, run_nuts


@pytest.fixture(scope="module")
def conjugate():
    """y = X w + b + N(0, 0.5^2), w, b ~ N(0, 1): the posterior is Gaussian and known."""
    g = torch.Generator().manual_seed(0)
    n, p, sig = 200, 3, 0.5
    X = torch.randn(n, p, generator=g)
    y = X @ torch.tensor([1.0, -0.5, 0.0]) + 0.3 + sig * torch.randn(n, generator=g)
    Z = torch.cat([X, torch.ones(n, 1)], 1).double()
    precision = torch.eye(p + 1, dtype=torch.float64) + Z.T @ Z / sig**2
    cov = torch.linalg.inv(precision)
    mean = cov @ Z.T @ y.double() / sig**2
    bnn = pc.bayesianize(
        torch.nn.Linear(p, 1),
        prior=pc.Gaussian(1.0),
        likelihood=GaussianLikelihood(sig, learn_noise=False),
        seed=0,
    )
    pc.fit(bnn, (X, y), epochs=2000, batch_size=n, lr=1e-2, progress=False)
    tree = run_nuts(bnn, X, y, num_samples=1000, warmup_steps=300, num_chains=2, seed=0)
    return bnn, tree, mean.numpy(), cov.diag().sqrt().numpy()


def _nuts(tree):
    post = tree["posterior"]
    w, b = post["layer_weight"].values, post["layer_bias"].values
    draws = np.concatenate([w.reshape(*w.shape[:2], -1), b], axis=-1)
    return draws.reshape(-1, draws.shape[-1])


def test_svi_and_nuts_agree_on_conjugate_regression(conjugate):
    bnn, tree, exact_mean, exact_sd = conjugate
    g = bnn.guide["layer"]
    svi_mean = torch.cat([g.weight_loc.flatten(), g.bias_loc]).detach().numpy()
    svi_sd = torch.cat([g.weight_log_var.flatten(), g.bias_log_var]).detach().mul(0.5).exp()
    draws = _nuts(tree)
    nuts_mean, nuts_sd = draws.mean(0), draws.std(0)
    summary = azs.summary(tree)
    order = ["layer_weight[0, 0]", "layer_weight[0, 1]", "layer_weight[0, 2]", "layer_bias[0]"]
    mcse = summary.loc[order, "mcse_mean"].to_numpy(dtype=float)
    # the criterion: means within 0.05 posterior sd, sds within 10 %; the NUTS
    # mean itself is known only to its Monte-Carlo standard error (about 0.03 sd here), so
    # the comparison allows 4 of them on top
    assert np.all(np.abs(svi_mean - nuts_mean) < 0.05 * nuts_sd + 4 * mcse)
    assert np.all(np.abs(svi_sd.numpy() / nuts_sd - 1) < 0.10)
    # both against the exact posterior; NUTS within 4 Monte-Carlo standard errors
    assert np.all(np.abs(nuts_mean - exact_mean) < 4 * mcse)
    assert np.all(np.abs(svi_mean - exact_mean) < 0.05 * exact_sd)
    assert summary["r_hat"].astype(float).max() < 1.01
    assert tree["posterior"].sizes["chain"] == 2


def test_compare_svi_nuts_lays_both_side_by_side(conjugate):
    bnn, tree, *_ = conjugate
    table = compare_svi_nuts(bnn, tree, num_samples=500)
    assert set(table) == {"layer_weight", "layer_bias", "layer_effective_weight"}
    assert table["layer_weight"]["svi_mean"].shape == table["layer_weight"]["nuts_mean"].shape


@pytest.mark.parametrize("prior, message", [("spike-slab", "discrete"), ("group-nj", "improper")])
def test_nuts_refuses_priors_it_cannot_sample(prior, message):
    bnn = pc.bayesianize(torch.nn.Linear(2, 1), prior=prior, likelihood="gaussian")
    with pytest.raises(ValueError, match=message):
        run_nuts(bnn, torch.zeros(3, 2), torch.zeros(3), num_samples=2, warmup_steps=2)


def test_nuts_on_horseshoe_regression_and_a_tiny_network():
    """Several chains as a DataTree with R-hat and ESS, for a horseshoe regression and a
    tiny horseshoe network; SVI and NUTS side by side for the regression."""
    g = torch.Generator().manual_seed(2)
    X = torch.randn(60, 3, generator=g)
    y = 2 * X[:, 0] + 0.5 * torch.randn(60, generator=g)
    reg = pc.bayesianize(
        torch.nn.Linear(3, 1),
        prior=pc.GroupHorseshoe(1.0),
        likelihood=GaussianLikelihood(0.5, learn_noise=False),
        seed=0,
    )
    pc.fit(reg, (X, y), epochs=300, batch_size=60, lr=1e-2, progress=False)
    tree = run_nuts(reg, X, y, num_samples=50, warmup_steps=50, num_chains=2, max_tree_depth=5)
    summary = azs.summary(tree)
    assert {"r_hat", "ess_bulk"} <= set(summary.columns)
    assert tree["posterior"].sizes["chain"] == 2
    table = compare_svi_nuts(reg, tree, num_samples=200)
    assert {"layer_weight", "layer_local_a", "layer_global_a"} <= set(table)
    # the one relevant input: both methods put its weight near 2
    assert abs(table["layer_effective_weight"]["nuts_mean"][0, 0] - 2) < 0.5
    assert abs(table["layer_effective_weight"]["svi_mean"][0, 0] - 2) < 0.5
    yc = (y > 0).long()
    net = pc.bayesianize(pc.mlp([3, 3, 2]), prior=pc.GroupHorseshoe(1.0), seed=0)
    tree = run_nuts(
        net, X[:30], yc[:30], num_samples=10, warmup_steps=10, num_chains=2, max_tree_depth=4
    )
    assert tree["posterior"]["layer1_weight"].shape == (2, 10, 3, 3)
