import arviz_stats as azs
import numpy as np
import pytest
import torch

import pyrocompress as pc
from pyrocompress.likelihoods import GaussianLikelihood
from pyrocompress.mcmc import compare_svi_nuts, run_nuts


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
    # the criterion: means within 0.05 posterior sd, sds within 10 %
    assert np.all(np.abs(svi_mean - nuts_mean) < 0.05 * nuts_sd)
    assert np.all(np.abs(svi_sd.numpy() / nuts_sd - 1) < 0.10)
    # both against the exact posterior; NUTS within 4 Monte-Carlo standard errors
    summary = azs.summary(tree)
    order = ["layer_weight[0, 0]", "layer_weight[0, 1]", "layer_weight[0, 2]", "layer_bias[0]"]
    mcse = summary.loc[order, "mcse_mean"].to_numpy(dtype=float)
    assert np.all(np.abs(nuts_mean - exact_mean) < 4 * mcse)
    assert np.all(np.abs(svi_mean - exact_mean) < 0.05 * exact_sd)
    assert summary["r_hat"].astype(float).max() < 1.01
    assert tree["posterior"].sizes["chain"] == 2


def test_compare_svi_nuts_lays_both_side_by_side(conjugate):
    bnn, tree, *_ = conjugate
    table = compare_svi_nuts(bnn, tree, num_samples=500)
    assert set(table) == {"layer_weight", "layer_bias"}
    assert table["layer_weight"]["svi_mean"].shape == table["layer_weight"]["nuts_mean"].shape


def test_nuts_refuses_spike_and_slab():
    bnn = pc.bayesianize(torch.nn.Linear(2, 1), prior="spike-slab", likelihood="gaussian")
    with pytest.raises(ValueError, match="discrete"):
        run_nuts(bnn, torch.zeros(3, 2), torch.zeros(3), num_samples=2, warmup_steps=2)
