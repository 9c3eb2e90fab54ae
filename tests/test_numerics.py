"""Numerical robustness: no NaN or inf over many seeds, and a diverged run stops loudly."""

import math

import pytest
import torch

import pyrocompress as pc


def _data(seed: int, n: int = 256, p: int = 10):
    g = torch.Generator().manual_seed(1000 + seed)
    X = torch.randn(n, p, generator=g) * 3.0  # unscaled inputs, as users will pass them
    y = 2.0 * X[:, 0] - X[:, 1] ** 2 + torch.randn(n, generator=g)
    return X, y


@pytest.mark.parametrize("prior", ["group-nj", "group-horseshoe"])
def test_twenty_seeds_train_without_nan_or_inf(prior):
    """20 seeds x 30 epochs at a large learning rate (1e-2) on a regression with large
    inputs: every epoch's loss and every parameter stay finite, and the posterior
    summaries used for pruning too."""
    for seed in range(20):
        X, y = _data(seed)
        bnn = pc.bayesianize(pc.mlp([10, 16, 8, 1]), prior, likelihood="gaussian", seed=seed)
        history = pc.fit(bnn, (X, y), epochs=30, batch_size=32, lr=1e-2, seed=seed, progress=False)
        assert all(math.isfinite(v) for v in history.loss), (prior, seed)
        for name, p in bnn.named_parameters():
            assert torch.isfinite(p).all(), (prior, seed, name)
        post = bnn.posterior()
        for name, v in post.log_alpha().items():
            assert not torch.isnan(v).any(), (prior, seed, name)
        for name, v in post.snr("group").items():
            assert torch.isfinite(v).all(), (prior, seed, name)


def test_a_non_finite_loss_stops_training_with_a_pointer_to_the_fix():
    X, y = _data(0)
    bnn = pc.bayesianize(pc.mlp([10, 4, 1]), "group-nj", likelihood="gaussian", seed=0)
    with torch.no_grad():
        bnn.guide["1"].weight_loc[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 1.*learning rate"):
        pc.fit(bnn, (X, y), epochs=3, progress=False)
