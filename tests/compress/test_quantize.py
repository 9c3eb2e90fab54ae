r"""quantize_weights: a copy with the named weights on their fixed-point grids :math:`2^{-t}`.

The rule is :math:`w \mapsto \delta\,\lfloor w/\delta + 1/2 \rfloor`, :math:`\delta = 2^{-t}`
(Louizos et al. 2017, §4): round to nearest, halves up. The reference here computes it in
float64, where it is exact for every float32 weight of magnitude below :math:`2^{52}\delta`
(:math:`w/\delta` is exact, and so is adding one half to a value of 24 significant bits),
so results are compared with ``torch.equal``: no tolerance.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pyrocompress.compress import quantize_weights


def _net(seed: int = 0) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return net


def _reference(w: torch.Tensor, t: int) -> torch.Tensor:
    """Round half up to the grid 2^-t in float64, back to w's dtype."""
    return (torch.floor(w.double() * 2.0**t + 0.5) / 2.0**t).to(w.dtype)


def _state_bytes(module: nn.Module) -> dict[str, bytes]:
    return {k: v.detach().reshape(-1).numpy().tobytes() for k, v in module.state_dict().items()}


def test_a_copy_is_returned_and_the_original_is_unchanged():
    net = _net()
    before = _state_bytes(net)
    out = quantize_weights(net, {"0.weight": 3, "2.weight": 5})
    assert out is not net and type(out) is type(net)
    assert _state_bytes(net) == before
    assert all(
        a.data_ptr() != b.data_ptr()
        for a, b in zip(net.state_dict().values(), out.state_dict().values(), strict=True)
    )
    after = _state_bytes(out)
    assert after["0.weight"] != before["0.weight"] and after["2.weight"] != before["2.weight"]
    # the tensors not named are kept exactly
    assert after["0.bias"] == before["0.bias"] and after["2.bias"] == before["2.bias"]


@pytest.mark.parametrize("t", [0, 1, 4, 7, 12])
def test_weights_land_on_the_grid_within_half_a_step(t):
    net = _net(seed=t)
    w = net.state_dict()["0.weight"]
    q = quantize_weights(net, {"0.weight": t}).state_dict()["0.weight"]
    assert q.dtype == w.dtype and q.shape == w.shape
    k = q.double() * 2.0**t
    assert torch.equal(k, torch.round(k))  # on the grid 2^-t
    assert float((q.double() - w.double()).abs().max()) <= 0.5 * 2.0**-t
    assert torch.equal(q, _reference(w, t))
    assert not torch.signbit(q[q == 0]).any()  # floor(. + 1/2) never gives -0.0


def test_values_already_on_the_grid_are_kept_and_rounding_is_idempotent():
    net = _net()
    once = quantize_weights(net, {"0.weight": 6})
    twice = quantize_weights(once, {"0.weight": 6})
    assert _state_bytes(twice) == _state_bytes(once)
    finer = quantize_weights(once, {"0.weight": 8})  # a finer grid holds the coarse one
    assert _state_bytes(finer) == _state_bytes(once)


@pytest.mark.parametrize("t", [0, 2, 5])
def test_halves_round_up(t):
    """Ties go towards +inf (not to even, not away from zero): -0.5 -> 0, 2.5 -> 3."""
    steps = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    net = nn.Sequential(nn.Linear(6, 1, bias=False))
    with torch.no_grad():
        net.get_parameter("0.weight").copy_(steps * 2.0**-t)
    q = quantize_weights(net, {"0.weight": t}).state_dict()["0.weight"]
    expected = torch.tensor([[-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]]) * 2.0**-t
    assert torch.equal(q, expected)
    assert not torch.signbit(q[0, 2])  # -0.5 steps rounds to +0.0


@pytest.mark.parametrize(
    ("w", "t"),
    [(0.5 - 2**-25, 0), ((0.5 - 2**-25) * 2**-4, 4), (1 + 2**-23, 23)],
    ids=["below-a-half", "below-a-half-t4", "on-the-grid-t23"],
)
def test_float32_sums_do_not_move_a_weight_past_half_a_step(w, t):
    """The largest float32 below one half step rounds down; a value on the grid stays."""
    net = nn.Sequential(nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        net.get_parameter("0.weight").fill_(w)
    q = quantize_weights(net, {"0.weight": t}).state_dict()["0.weight"]
    assert torch.equal(q, _reference(net.get_parameter("0.weight").detach(), t))


def test_an_empty_mapping_copies_the_network_unchanged():
    net = _net()
    out = quantize_weights(net, {})
    assert out is not net and _state_bytes(out) == _state_bytes(net)


def test_an_unknown_key_is_refused_and_the_original_is_unchanged():
    net = _net()
    before = _state_bytes(net)
    with pytest.raises((KeyError, ValueError), match=r"9\.weight"):
        quantize_weights(net, {"9.weight": 3})
    assert _state_bytes(net) == before
