"""Column groups of a Linear layer (``LayerSpec.column_groups``): one gate on several input
columns. The spec's maps (expand, sum, sizes), their validation, and every prior's layer
with tied columns: its guide is sized by the groups and the columns of a group share one
gate on every path (point, sampled, locally reparametrised)."""

from __future__ import annotations

import pyro.poutine as poutine
import pytest
import torch

import pyrocompress as pc
from pyrocompress.effects import PointEstimate
from pyrocompress.priors import LayerSpec, prior_keys

TIES = (0, 0, 1, 2, 1, 3)  # 6 input columns in 4 groups
TIED = LayerSpec("l", "linear", (3, 6), True, TIES)


def test_groups_of_tied_columns():
    assert TIED.num_groups == 4
    assert TIED.group_sizes == (6, 6, 3, 3)  # columns per group times 3 output units
    g = torch.tensor([10.0, 20.0, 30.0, 40.0])
    assert TIED.expand_inputs(g).tolist() == [10.0, 10.0, 20.0, 30.0, 20.0, 40.0]
    # broadcasts against the weight [out, in], also with leading (batch) dimensions
    w = torch.ones(3, 6)
    assert torch.equal(w * TIED.expand_groups(g), TIED.expand_inputs(g).expand(3, 6))
    assert TIED.expand_groups(torch.ones(5, 4)).shape == (5, 1, 6)
    assert TIED.expand_inputs(torch.tensor([True, False, True, False])).tolist() == [
        True, True, False, True, False, False,
    ]  # fmt: skip


def test_group_sum_adds_the_columns_of_a_group_and_is_differentiable():
    t = torch.arange(18.0).reshape(3, 6).requires_grad_()
    total = TIED.group_sum(t)
    col = t.detach().sum(0)
    expected = torch.stack([col[[0, 1]].sum(), col[[2, 4]].sum(), col[3], col[5]])
    torch.testing.assert_close(total.detach(), expected)
    total.sum().backward()
    assert torch.equal(t.grad, torch.ones(3, 6))


def test_without_ties_nothing_changes():
    plain = LayerSpec("l", "linear", (3, 6), True)
    assert plain.column_groups is None and plain.num_groups == 6
    assert plain.group_sizes == (3,) * 6
    g = torch.randn(6)
    assert plain.expand_inputs(g) is g
    # a map that ties nothing computes what no map computes
    ident = LayerSpec("l", "linear", (3, 6), True, tuple(range(6)))
    t = torch.randn(3, 6)
    torch.testing.assert_close(ident.group_sum(t), plain.group_sum(t))
    assert ident != plain


@pytest.mark.parametrize(
    ("groups", "error", "match"),
    [
        ((0, 0, 1), ValueError, "has 3 entries but the layer has 6 input columns"),
        ((0, 0, 1, 3, 1, 3), ValueError, r"leaves group id\(s\) 2 unused"),
        ((0, 0, 1, -1, 1, 2), ValueError, "negative group id"),
        ((0, 0, 1.0, 2, 1, 3), TypeError, "integer group ids"),
        ((0, 0, True, 2, 1, 3), TypeError, "integer group ids"),
        ("001213", TypeError, "a sequence of integer group ids"),
    ],
)
def test_bad_column_groups_are_refused_with_the_fix(groups, error, match):
    with pytest.raises(error, match=match):
        LayerSpec("l", "linear", (3, 6), True, groups)


def test_column_groups_only_tie_the_inputs_of_a_linear_layer():
    with pytest.raises(ValueError, match="groups are its output channels"):
        LayerSpec("c", "conv2d", (3, 2, 2, 2), True, (0, 0, 1))


def test_column_groups_accept_arrays_and_tensors():
    import numpy as np

    a = LayerSpec("l", "linear", (3, 6), True, np.array(TIES))  # type: ignore[arg-type]
    b = LayerSpec("l", "linear", (3, 6), True, torch.tensor(TIES))  # type: ignore[arg-type]
    assert a == b == TIED and isinstance(a.column_groups, tuple)


# ------------------------------------------------------------------ priors' layers
def _tied_network(prior: str, seed: int = 0) -> pc.BayesianNetwork:
    return pc.bayesianize(pc.mlp([6, 5, 2]), prior, groups=list(TIES), seed=seed)


@pytest.mark.parametrize("prior", prior_keys())
def test_every_prior_sizes_its_gate_by_the_groups_and_trains(prior):
    bnn = _tied_network(prior)
    first = next(iter(bnn.bayesian_layers()))
    guide = bnn.guide[first]
    for name, p in guide.named_parameters():
        if not name.startswith(("weight_", "bias_")) and p.dim() > 0 and p.shape[-1] > 1:
            assert p.shape[-1] == 4, (name, p.shape)  # one per group, not per column
    X, y = torch.randn(32, 6), torch.randint(0, 2, (32,))
    history = pc.fit(bnn, (X, y), epochs=2, batch_size=16, progress=False, seed=0)
    assert all(torch.isfinite(torch.tensor(history.loss)))


@pytest.mark.parametrize("prior", prior_keys(inclusion_probabilities=True))
def test_sampled_weights_share_one_gate_per_group(prior):
    """The plain Pyro path: a draw of the guide, replayed in the model, gates the columns
    of a group with the same value."""
    bnn = _tied_network(prior)
    first = next(iter(bnn.bayesian_layers()))
    trace = poutine.trace(bnn.guide).get_trace()
    values = {k: v["value"] for k, v in trace.nodes.items() if v["type"] == "sample"}
    gate, w = bnn.effective_weights(values)[first]
    assert gate is not None and gate.shape[-1] == 4
    w_tilde = values[f"{first}.weight"]
    torch.testing.assert_close(w, w_tilde * TIED.expand_inputs(gate).unsqueeze(-2))


@pytest.mark.parametrize("prior", prior_keys(inclusion_probabilities=True))
def test_locally_reparametrised_gates_are_shared_by_a_groups_columns(prior):
    """Per-example gates ``[batch, G]`` (or their moments) act on the group's columns:
    the layer's output equals an untied layer's given the gates copied to each column."""
    bnn = _tied_network(prior)
    layer = next(iter(bnn.bayesian_layers().values()))
    plain = pc.bayesianize(pc.mlp([6, 5, 2]), prior, seed=0)
    plain_layer = next(iter(plain.bayesian_layers().values()))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 6, generator=g)
    weight = (torch.randn(5, 6, generator=g), torch.rand(5, 6, generator=g))
    bias = (torch.randn(5, generator=g), torch.rand(5, generator=g))
    draws = torch.rand(7, 4, generator=g)
    moments = (torch.rand(4, generator=g), 1 + torch.rand(4, generator=g))
    for gate, columns in [
        (draws, TIED.expand_inputs(draws)),
        (moments, tuple(TIED.expand_inputs(m) for m in moments)),
    ]:
        got = layer.output_moments(x, None, weight, bias, gate)
        want = plain_layer.output_moments(x, None, weight, bias, columns)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)


def test_point_weights_and_restrict_drop_every_column_of_a_group():
    bnn = _tied_network("spike-slab")
    first = next(iter(bnn.bayesian_layers()))
    masks = {
        k: torch.ones(m.spec.num_groups, dtype=torch.bool) for k, m in bnn.bayesian_layers().items()
    }
    masks[first] = torch.tensor([True, False, True, True])  # group 1: columns 2 and 4
    weights = bnn.point_weights(masks)
    w = next(w for layer, (w, _) in weights.items() if layer.spec.name == first)
    assert torch.equal(w[:, [2, 4]], torch.zeros(5, 2))
    assert (w[:, [0, 1, 3, 5]] != 0).all()
    # restrict zeroes the group's inputs: the same outputs as zeroing the columns by hand
    x = torch.randn(9, 6)
    x0 = x.clone()
    x0[:, [2, 4]] = 0.0
    with PointEstimate(bnn.point_weights()):
        expected = bnn.net(x0)
    bnn.restrict(masks)
    with PointEstimate(bnn.point_weights()):
        torch.testing.assert_close(bnn.net(x), expected)
