"""Norm statistics of the posterior-mean network (recalibrate_norms)."""

import torch
from torch import nn

import pyrocompress as pc
from pyrocompress.infer import recalibrate_norms


def _net():
    return nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
        nn.Linear(3 * 4 * 4, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2),
    )  # fmt: skip


def test_fit_leaves_norm_statistics_of_the_posterior_mean_network():
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(64, 2, 6, 6, generator=g), torch.randint(0, 2, (64,), generator=g)
    bnn = pc.bayesianize(_net(), "group-horseshoe", seed=0)
    pc.fit(bnn, (X, y), epochs=2, batch_size=16, seed=0, progress=False)
    layer = bnn.bayesian_layers()["0"]
    # the statistics a norm should hold: those of the point network's pre-activations
    with torch.no_grad(), bnn.point_estimate():
        pre = layer._op(X, *layer.point_weights(bnn.guide["0"])[:2])
    torch.testing.assert_close(layer.norm.running_mean, pre.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    var = pre.transpose(0, 1).reshape(3, -1).var(1)  # unbiased, as BatchNorm keeps it
    torch.testing.assert_close(layer.norm.running_var, var, rtol=1e-4, atol=1e-5)
    assert layer.norm.momentum == 0.1  # restored
    assert not bnn.training


def test_a_network_without_norms_is_left_alone():
    bnn = pc.bayesianize(pc.mlp([4, 3, 2]), "group-nj", seed=0)
    before = {k: v.clone() for k, v in bnn.state_dict().items()}
    assert not recalibrate_norms(bnn, torch.randn(10, 4))
    for k, v in bnn.state_dict().items():
        assert torch.allclose(v, before[k], equal_nan=True)  # NaN: information unknown
