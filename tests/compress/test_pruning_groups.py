"""Pruning a network whose first layer ties input columns into groups
(``bayesianize(..., groups=...)``): a dropped group drops all of its columns, the compact
network selects exactly the kept groups' columns and computes the masked network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pyrocompress as pc
from pyrocompress.compress import SelectFeatures, build_compact
from pyrocompress.compress.pruning import _kept_params, prune, pruning_curve

GROUPS = [0, 0, 0, 1, 2, 2, 3, 4]  # 8 input columns in 5 groups


def _network(prior: str = "spike-slab") -> pc.BayesianNetwork:
    bnn = pc.bayesianize(pc.mlp([8, 6, 3]), prior, groups=GROUPS, seed=0)
    torch.manual_seed(0)
    with torch.no_grad():  # away from the initial gates, so that every group matters
        for p in bnn.guide.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return bnn


def _masks(bnn, first_mask):
    masks = {
        k: torch.ones(m.spec.num_groups, dtype=torch.bool) for k, m in bnn.bayesian_layers().items()
    }
    masks[next(iter(masks))] = torch.tensor(first_mask)
    return masks


@pytest.mark.parametrize("prior", ["spike-slab", "group-horseshoe", "gaussian"])
def test_compact_first_layer_holds_exactly_the_kept_groups_columns(prior):
    bnn = _network(prior)
    masks = _masks(bnn, [True, False, True, False, True])  # keep groups 0, 2, 4
    X = torch.randn(20, 8)
    compact, info = build_compact(bnn, masks, X)
    select = next(m for m in compact if isinstance(m, SelectFeatures))
    first = next(m for m in compact if isinstance(m, nn.Linear))
    assert select.indices.tolist() == [0, 1, 2, 4, 5, 7]  # the columns of groups 0, 2, 4
    assert isinstance(first, nn.Linear) and first.in_features == 6
    assert info.kept_inputs[next(iter(masks))] == [0, 1, 2, 4, 5, 7]
    assert info.architecture_after[0] == 6 and info.architecture_before[0] == 8
    with torch.no_grad():
        torch.testing.assert_close(compact(X), bnn.predict_point(X, masks), rtol=1e-5, atol=1e-6)


def test_kept_weights_count_the_columns_of_each_group():
    bnn = _network()
    masks = _masks(bnn, [False, True, True, True, True])  # drops group 0: 3 columns
    total = 8 * 6 + 6 * 3
    assert _kept_params(bnn, masks) == total - 3 * 6


def test_prune_end_to_end_drops_whole_groups():
    bnn = _network()
    X, y = torch.randn(40, 8), torch.randint(0, 3, (40,))
    result = prune(bnn, "sparsity", sparsity=0.4, score="snr", example_input=X)
    first = next(iter(bnn.bayesian_layers()))
    mask = result.plan.masks[first]
    assert mask.shape == (5,)  # one decision per group
    kept_columns = [j for j, g in enumerate(GROUPS) if mask[g]]
    assert result.report["kept_inputs"] == kept_columns
    with torch.no_grad():
        torch.testing.assert_close(result.module(X), bnn.predict_point(X, result.plan.masks))
    # the pruning curve counts the removed weights column by column
    curve = pruning_curve(bnn, (X, y), fractions=[0.0, 0.4])
    assert curve[0][0] == 0.0 and 0.0 < curve[1][0] < 1.0
