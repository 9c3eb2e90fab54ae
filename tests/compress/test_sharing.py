"""Weight sharing: 1-D k-means, codebook sizes from a budget, PruneResult.share, packed codebooks.

Tolerances: k-means centres are float64 means of their clusters, compared with a
recomputed mean to 1e-12 (a few ulp of values of order one); a shared float32 tensor's
mean squared change may exceed the float64 distortion the size was chosen by only through
the rounding of its centres to float32, by at most (2^-24 max|c|)^2 < 1e-12 here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pyrocompress as pc
from pyrocompress.compress.packed import load_packed, packed_spec, save_packed
from pyrocompress.compress.sharing import kmeans_1d, share_weights


def _state_bytes(module: nn.Module) -> dict[str, bytes]:
    return {
        k: v.detach().cpu().contiguous().reshape(-1).numpy().tobytes()
        for k, v in module.state_dict().items()
    }


def _distortion(x: np.ndarray, k: int) -> float:
    centres, index = kmeans_1d(x, k)
    return float(np.mean((x - centres[index]) ** 2))


# ---------------------------------------------------------------------------- kmeans_1d
def test_kmeans_is_deterministic_sorted_and_uses_at_most_k_centres():
    x = np.random.default_rng(0).normal(size=(20, 15))
    for k in (1, 2, 3, 8, 64):
        centres, index = kmeans_1d(x, k)
        again = kmeans_1d(x.copy(), k)
        assert np.array_equal(centres, again[0]) and np.array_equal(index, again[1])
        assert 1 <= len(centres) <= k
        assert bool((np.diff(centres) > 0).all())
        assert index.shape == x.shape and index.min() >= 0 and index.max() < len(centres)


def test_kmeans_returns_a_lloyd_fixed_point():
    """Each centre is its cluster's mean and each value is assigned to its nearest centre."""
    x = np.random.default_rng(1).laplace(size=400)
    centres, index = kmeans_1d(x, 16)
    assert len(np.unique(index)) == len(centres)  # no empty cluster is returned
    for j, c in enumerate(centres):
        assert c == pytest.approx(x[index == j].mean(), abs=1e-12)
    gap = np.abs(x[:, None] - centres[None, :])
    assert bool((gap[np.arange(x.size), index] <= gap.min(axis=1) + 1e-12).all())


def test_kmeans_keeps_at_most_k_distinct_values_exactly():
    x = np.array([[0.3, -1.25, 0.3], [7.0, -1.25, 1 / 3]])
    for k in (4, 5, 100):
        centres, index = kmeans_1d(x, k)
        assert centres.tolist() == sorted({-1.25, 0.3, 1 / 3, 7.0})
        assert np.array_equal(centres[index], x)
    centres, index = kmeans_1d(np.full(7, 2.5), 1)
    assert centres.tolist() == [2.5] and index.tolist() == [0] * 7


def test_one_centre_is_the_mean_and_empty_input_has_none():
    x = np.random.default_rng(2).normal(size=50)
    centres, index = kmeans_1d(x, 1)
    assert centres == pytest.approx([x.mean()], abs=1e-12) and not index.any()
    centres, index = kmeans_1d(np.zeros((0, 3)), 4)
    assert centres.size == 0 and index.shape == (0, 3)
    with pytest.raises(ValueError, match="k must be at least 1"):
        kmeans_1d(x, 0)


def test_distortion_decreases_with_k_on_random_data():
    rng = np.random.default_rng(3)
    for x in (rng.normal(size=500), rng.laplace(scale=0.1, size=300), rng.uniform(size=200)):
        d = [_distortion(x, 2**b) for b in range(0, 8)]
        assert all(later <= earlier for earlier, later in zip(d, d[1:], strict=False))
        assert d[-1] < d[0] / 100


# ------------------------------------------------------------------------ share_weights
@pytest.fixture
def net() -> nn.Sequential:
    g = torch.Generator().manual_seed(0)
    module = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return module


@pytest.mark.parametrize("max_bits", [3, 8])
def test_the_codebook_is_the_smallest_within_the_budget(net, max_bits):
    """Recomputed: the k whose k-means distortion first falls within the budget.

    The budgets lie between the distortions of 5 and 6 centres (and of 2 and 3), where
    every k below fails and every k above fits, so "the smallest" is one k.
    """
    most = 2**max_bits
    weights = {key: net.state_dict()[key].double().numpy() for key in ("0.weight", "2.weight")}
    curves = {key: [_distortion(w, k) for k in range(1, most + 1)] for key, w in weights.items()}
    budgets = {
        "0.weight": (curves["0.weight"][4] + curves["0.weight"][5]) / 2,
        "2.weight": (curves["2.weight"][1] + curves["2.weight"][2]) / 2,
    }
    shared, sizes = share_weights(net, budgets, max_bits=max_bits)
    assert sizes == {"0.weight": 6, "2.weight": 3}
    for key, w in weights.items():
        k = sizes[key]
        fits = [curves[key][j - 1] <= budgets[key] for j in range(1, most + 1)]
        assert fits == [j >= k for j in range(1, most + 1)]  # the precondition
        centres, index = kmeans_1d(w, k)
        got = shared.state_dict()[key]
        assert torch.equal(got, torch.from_numpy(centres.astype(np.float32)[index]))
        assert got.unique().numel() == k
        assert float(((got.double().numpy() - w) ** 2).mean()) <= budgets[key] + 1e-12


def test_the_largest_codebook_is_used_when_none_is_within_the_budget(net):
    w = net[0].weight.detach().double().numpy()
    budget = _distortion(w, 9) / 2  # no k <= 8 fits
    shared, sizes = share_weights(net, {"0.weight": budget}, max_bits=3)
    centres, index = kmeans_1d(w, 8)
    got = shared.get_parameter("0.weight")
    assert torch.equal(got, torch.from_numpy(centres.astype(np.float32)[index]))
    assert sizes["0.weight"] == len(centres) <= 8


def test_sharing_returns_a_copy_and_keeps_other_tensors(net):
    before = _state_bytes(net)
    shared, _ = share_weights(net, {"0.weight": 1e-3})
    assert shared is not net and _state_bytes(net) == before
    after = _state_bytes(shared)
    assert after["0.weight"] != before["0.weight"]
    assert {k: v for k, v in after.items() if k != "0.weight"} == {
        k: v for k, v in before.items() if k != "0.weight"
    }
    again, _ = share_weights(net, {"0.weight": 1e-3})
    assert _state_bytes(again) == after  # deterministic


def test_a_zero_budget_keeps_few_distinct_values_exactly_and_caps_many(net):
    with torch.no_grad():
        net[2].weight.copy_(torch.tensor([-0.5, 0.25, 1 / 3])[torch.arange(150).reshape(5, 30) % 3])
    shared, sizes = share_weights(net, {"0.weight": 0.0, "2.weight": 0.0}, max_bits=4)
    assert torch.equal(shared.get_parameter("2.weight"), net[2].weight) and sizes["2.weight"] == 3
    # 600 distinct values: the largest codebook, 2^max_bits centres (empty clusters dropped)
    assert 12 <= sizes["0.weight"] <= 16
    assert shared.get_parameter("0.weight").unique().numel() == sizes["0.weight"]


@pytest.mark.parametrize("key", ["0.weight", "2.weight"])
def test_a_larger_budget_never_gives_a_larger_codebook(net, key):
    """A fine sweep: k-means distortion is not monotone in k beyond a dozen centres
    (Lloyd's iterations from a linear start), so a bisection over k can overshoot."""
    w = net.state_dict()[key].double().numpy()
    budgets = np.geomspace(1e-7, 1e-1, 200) * float(w.var())
    sizes = [share_weights(net, {key: float(v)})[1][key] for v in budgets]
    assert all(later <= earlier for earlier, later in zip(sizes, sizes[1:], strict=False))
    # the largest budget, a tenth of the variance: the optimal 8-level quantiser of a
    # Gaussian already has a distortion of 0.035 of its variance (Max 1960)
    assert sizes[0] >= 100 and sizes[-1] <= 8


@pytest.mark.parametrize(
    ("budgets", "max_bits", "match"),
    [
        ({"9.weight": 1e-3}, 8, "not a floating tensor"),
        ({"0.bias": 1e-3, "1.weight": 1e-3}, 8, "not a floating tensor"),  # ReLU has none
        ({"0.weight": -1e-3}, 8, "finite number >= 0"),
        ({"0.weight": float("nan")}, 8, "finite number >= 0"),
        ({"0.weight": float("inf")}, 8, "finite number >= 0"),
        ({"0.weight": True}, 8, "finite number >= 0"),
        ({"0.weight": "0.1"}, 8, "finite number >= 0"),
        ({"0.weight": 1e-3}, 0, "max_bits"),
        ({"0.weight": 1e-3}, 17, "max_bits"),
        ({"0.weight": 1e-3}, True, "max_bits"),
        ({"0.weight": 1e-3}, 2.0, "max_bits"),
    ],
)
def test_bad_arguments_are_refused(net, budgets, max_bits, match):
    before = _state_bytes(net)
    with pytest.raises(ValueError, match=match):
        share_weights(net, budgets, max_bits=max_bits)
    assert _state_bytes(net) == before


def test_an_integer_tensor_is_not_shared():
    from pyrocompress.compress import SelectFeatures

    module = nn.Sequential(SelectFeatures(torch.tensor([0, 2]), 4), nn.Linear(2, 1))
    with pytest.raises(ValueError, match="not a floating tensor"):
        share_weights(module, {"0.indices": 1.0})


# ------------------------------------------------------------------ PruneResult.share
@pytest.fixture(scope="module")
def pipeline():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    bnn = pc.bayesianize(pc.mlp([8, 16, 3]), "group-nj", seed=0)
    pc.fit(bnn, (x, y), epochs=3, batch_size=32, seed=0, progress=False)
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=x, quantize=True)
    return bnn, x, result


def _rounding_budget(exact: nn.Module, bits: dict[str, int]) -> dict[str, float]:
    """Each layer's mean squared error of rounding to its grid 2^-t, recomputed here."""
    state = exact.state_dict()
    budget = {}
    for key, t in bits.items():
        w = state[key].double()
        rounded = torch.floor(w * 2.0**t + 0.5) / 2.0**t  # exact in float64 for float32 w
        budget[key] = float((w - rounded).pow(2).mean())
    return budget


def test_mantissa_bits_are_the_posteriors_by_weight_key(pipeline):
    bnn, _, result = pipeline
    bits = pc.Posterior(bnn).bit_precision(result.plan.masks)
    keys = result.info.weight_keys
    assert len(keys) == 2
    assert result.mantissa_bits == {key: bits[name].mantissa for name, key in keys.items()}
    assert list(result.mantissa_bits.values()) == result.report["mantissa_bits"]


def test_quantized_rounds_the_exact_network_to_its_grids(pipeline):
    _, _, result = pipeline
    assert result.unquantized is not None and result.exact is result.unquantized
    exact_before = _state_bytes(result.exact)
    quantized = result.quantized()
    assert quantized is not result.exact and _state_bytes(result.exact) == exact_before
    assert _state_bytes(quantized) == _state_bytes(result.module)  # prune(quantize=True)'s
    rounded, exact = quantized.state_dict(), result.exact.state_dict()
    for key, t in result.mantissa_bits.items():
        grid = 2.0**t
        reference = torch.floor(exact[key].double() * grid + 0.5) / grid  # exact in float64
        assert torch.equal(rounded[key], reference.float())
    others = set(exact) - set(result.mantissa_bits)
    assert others and all(torch.equal(rounded[k], exact[k]) for k in others)


def test_sharing_a_pipeline_result_clusters_the_unrounded_weights(pipeline):
    """The budget is each layer's mean squared rounding error: at most (2^-t / 2)^2."""
    _, _, result = pipeline
    module_before, exact_before = _state_bytes(result.module), _state_bytes(result.exact)
    budget = _rounding_budget(result.exact, result.mantissa_bits)
    for key, t in result.mantissa_bits.items():
        assert 0 < budget[key] <= 4.0**-t / 4
    shared, sizes = result.share()
    expected, expected_sizes = share_weights(result.exact, budget)
    assert _state_bytes(shared) == _state_bytes(expected) and sizes == expected_sizes
    assert _state_bytes(result.module) == module_before
    assert _state_bytes(result.exact) == exact_before
    state, exact = shared.state_dict(), result.exact.state_dict()
    for key, size in sizes.items():
        assert state[key].unique().numel() == size <= 2**8
        change = float(((state[key].double() - exact[key].double()) ** 2).mean())
        assert change <= budget[key] + 1e-12 or size == 2**8


def test_an_unquantised_result_quantizes_and_shares_as_a_quantised_one(pipeline):
    """prune(quantize=False): module is exact, unquantized None; the same files follow."""
    bnn, x, quantised = pipeline
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=x)
    assert result.unquantized is None and result.exact is result.module
    assert result.report["quantized"] is False
    assert result.mantissa_bits == quantised.mantissa_bits
    assert _state_bytes(result.module) == _state_bytes(quantised.exact)
    before = _state_bytes(result.module)
    assert _state_bytes(result.quantized()) == _state_bytes(quantised.module)
    assert _state_bytes(result.module) == before  # quantized() is a copy
    shared, sizes = result.share()
    shared_q, sizes_q = quantised.share()
    assert _state_bytes(shared) == _state_bytes(shared_q) and sizes == sizes_q


@pytest.mark.parametrize("max_bits", [2, 3])
def test_a_shared_pipeline_network_is_stored_as_codebooks_and_loads_exactly(
    pipeline, tmp_path, max_bits
):
    _, x, result = pipeline
    shared, sizes = result.share(max_bits=max_bits)
    p = tmp_path / "shared.packed"
    info = save_packed(shared, p, entropy=True)
    codes = dict(zip(shared.state_dict(), packed_spec(p)["codes"], strict=True))
    for key, size in sizes.items():
        assert shared.state_dict()[key].unique().numel() == size <= 2**max_bits
        assert info["tensors"][key]["code"] == "codebook"
        assert codes[key][1] == size  # the codebook lists exactly the shared values
        assert info["tensors"][key]["bits"] <= max_bits
    loaded = load_packed(p)
    assert _state_bytes(loaded) == _state_bytes(shared)
    with torch.no_grad():
        assert torch.equal(loaded(x), shared.eval()(x))
    plain = save_packed(result.module, tmp_path / "q.packed", entropy=True)
    assert info["payload_bytes"] < plain["payload_bytes"]  # fewer bits than fixed point
