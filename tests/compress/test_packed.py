"""Packed files: lossless round trips, Huffman codes, refusals of bad files, atomic writes.

Every round trip is checked bit for bit: outputs with ``torch.equal`` and every state tensor
by its bytes (so that a NaN's payload or a zero's sign counts), since the format promises a
network identical to the saved one, not a close one. No tolerance is used anywhere here.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import save as st_save
from torch import nn

import pyrocompress as pc
from pyrocompress.compress import SelectFeatures
from pyrocompress.compress.packed import (
    _MAX_FREE_VALUES,
    _MAX_HUFFMAN_VALUES,
    _MAX_SPEC,
    _POSITIONAL,
    _SPEC_DICTIONARY,
    FORMAT_PACKED,
    _code_lengths,
    _encode,
    _huffman_decode,
    _huffman_encode,
    _pack_bits,
    _with_entropy,
    load_packed,
    packed_bytes,
    packed_spec,
    save_packed,
)
from pyrocompress.compress.packed import _layout as _state_layout


# ---------------------------------------------------------------------------- helpers
def _state_bytes(module: nn.Module) -> dict[str, tuple[torch.dtype, tuple[int, ...], bytes]]:
    """Every state tensor as (dtype, shape, bytes): equality is bit-exactness."""
    return {
        k: (v.dtype, tuple(v.shape), v.detach().cpu().contiguous().reshape(-1).numpy().tobytes())
        for k, v in module.state_dict().items()
    }


def _assert_identical(loaded: nn.Module, saved: nn.Module, inputs: torch.Tensor) -> None:
    assert type(loaded) is type(saved)
    assert not loaded.training
    assert list(loaded.state_dict()) == list(saved.state_dict())
    assert _state_bytes(loaded) == _state_bytes(saved)
    with torch.no_grad():
        assert torch.equal(loaded(inputs), saved.eval()(inputs))


def _round_trip(module, path, inputs, **kwargs) -> tuple[nn.Module, dict]:
    info = save_packed(module, path, **kwargs)
    factory = kwargs.get("factory")
    if factory is None or factory.startswith("pyrocompress.nn.models:"):
        loaded = load_packed(path)  # no factory, or a trusted one: nothing to pass
    else:
        loaded = load_packed(path, factory=type(module))
    _assert_identical(loaded, module, inputs)
    assert info["bytes"] == os.path.getsize(path)
    assert info["header_bytes"] + info["payload_bytes"] == info["bytes"]
    return loaded, info


def _layout(blob: bytes) -> tuple[int, int, bytes]:
    """Return (data start, spec length, packed bytes) of a packed file's bytes."""
    start = 8 + int.from_bytes(blob[:8], "little")
    inflate = zlib.decompressobj(-15, zdict=_SPEC_DICTIONARY)
    inflate.decompress(blob[start:])
    return start, len(blob) - start - len(inflate.unused_data), blob[start:]


def _write_spec(path: Path, spec: object, payload: bytes) -> Path:
    """Write a packed file with a hand-made ``spec`` (JSON) and ``payload``."""
    return _write_text(path, json.dumps(spec).encode(), payload)


def _write_text(path: Path, text: bytes, payload: bytes) -> Path:
    """Write a packed file whose spec is ``text`` (any bytes, DEFLATE-compressed)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=_SPEC_DICTIONARY)
    head = deflate.compress(text) + deflate.flush()
    blob = st_save(
        {"packed": np.frombuffer(head + payload, dtype=np.uint8)},
        metadata={"format": FORMAT_PACKED},
    )
    path.write_bytes(blob)
    return path


def _layout_of(build: Callable[[], nn.Module]) -> int:
    """The spec's ``layout`` of the network ``build()`` makes (built on the meta device)."""
    with torch.device("meta"):
        return _state_layout(build().state_dict())


def _payload(blob: bytes) -> bytes:
    _, spec_len, body = _layout(blob)
    return body[spec_len:]


def _spec_of(blob: bytes) -> dict:
    """The spec of a packed file's bytes, decoded here independently of the module."""
    return json.loads(zlib.decompressobj(-15, zdict=_SPEC_DICTIONARY).decompress(_layout(blob)[2]))


def _on_grid[M: nn.Module](module: M, t: int, seed: int = 0) -> M:
    """Put every float parameter and buffer on the grid 2^-t (as quantised weights are)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, v in module.state_dict().items():
            if v.is_floating_point():
                if "running_var" in name:
                    v.copy_(torch.rand(v.shape, generator=g) + 0.5)
                elif "running_mean" in name:
                    v.copy_(torch.randn(v.shape, generator=g))
                # prune(quantize=True)'s rounding: floor(w / delta + 1/2) never gives -0.0
                v.copy_(torch.floor(v * 2.0**t + 0.5) / 2.0**t)
    return module


class Holder(nn.Module):
    """A network whose state is the buffers it is given (rebuilt by a factory)."""

    def __init__(self, **buffers: torch.Tensor):
        super().__init__()
        for name, value in buffers.items():
            self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _hold_round_trip(path: Path, **buffers: torch.Tensor) -> tuple[Holder, list]:
    """Save buffers through a factory file; load them into different placeholders."""
    save_packed(Holder(**buffers), path, factory=f"{__name__}:Holder")
    codes = packed_spec(path)["codes"]

    def placeholders() -> Holder:
        return Holder(**{k: torch.ones_like(v) for k, v in buffers.items()})

    loaded = load_packed(path, factory=placeholders)
    assert isinstance(loaded, Holder)
    assert _state_bytes(loaded) == _state_bytes(Holder(**buffers))
    return loaded, codes


# -------------------------------------------------------------------- networks to save
@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return x, y


@pytest.fixture(scope="module")
def quantised(data):
    """The real pipeline: group-NJ MLP, three epochs, half pruned, quantised."""
    x, y = data
    bnn = pc.bayesianize(pc.mlp([8, 16, 3]), "group-nj", seed=0)
    pc.fit(bnn, (x, y), epochs=3, batch_size=32, seed=0, progress=False)
    return pc.prune(bnn, "sparsity", sparsity=0.5, example_input=x, quantize=True)


@pytest.fixture(scope="module")
def plain_result(data):
    """The same pipeline without quantisation: float32 weights off every coarse grid."""
    x, y = data
    bnn = pc.bayesianize(pc.mlp([8, 16, 3]), "group-nj", seed=0)
    # three small steps (the settings this test was written for): weights spread over a
    # wide range of exponents, which no fixed-point code holds in fewer than 32 bits
    pc.fit(bnn, (x, y), epochs=3, batch_size=32, lr=1e-3, tol=None, seed=0, progress=False)
    return pc.prune(bnn, "sparsity", sparsity=0.5, example_input=x)


def _small_net() -> nn.Sequential:
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    return _on_grid(net, 6)


# ------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("entropy", [False, True])
def test_a_quantised_pipeline_network_round_trips_bit_exactly(quantised, data, tmp_path, entropy):
    module = quantised.module
    assert any(
        isinstance(m, SelectFeatures) for m in module.children()
    )  # the "set" code is exercised
    _, info = _round_trip(module, tmp_path / "m.packed", data[0], entropy=entropy)
    tensors = info["tensors"]
    (selected,) = [k for k in tensors if k.endswith("indices")]
    assert tensors[selected]["code"] == "set"
    bits = dict(zip(quantised.info.weight_keys.values(), quantised.report["bits_per_layer"]))
    assert len(bits) == 2
    for key, width in bits.items():
        # the fixed-point code is never wider than the bits the report counts
        assert tensors[key]["code"] == "fixed"
        assert tensors[key]["bits"] <= width
    # the file holds the weights at fewer bits than the report's 32-bit dense count
    assert info["bytes"] < quantised.report["file_bytes_dense"]


def test_files_are_deterministic_and_packed_bytes_gives_the_files_bytes(quantised, tmp_path):
    p = tmp_path / "m.packed"
    save_packed(quantised.module, p, note="a")
    blob, _ = packed_bytes(quantised.module, note="a")
    assert p.read_bytes() == blob
    save_packed(quantised.module, p, note="a")
    assert p.read_bytes() == blob


def test_a_network_that_is_not_quantised_round_trips_exactly_with_raw_codes(
    plain_result, data, tmp_path
):
    _, info = _round_trip(plain_result.module, tmp_path / "m.packed", data[0], entropy=True)
    codes = {v["code"] for v in info["tensors"].values()}
    assert "raw" in codes
    assert "codebook" not in codes  # every weight distinct: no codebook is smaller


@pytest.mark.parametrize("entropy", [False, True])
def test_a_conv_net_from_the_pipeline_round_trips(tmp_path, entropy):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 3)
    )
    bnn = pc.bayesianize(net, "group-nj", seed=0)
    pc.fit(bnn, (x, y), epochs=2, batch_size=16, seed=0, progress=False)
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=x, quantize=True)
    types = {type(m) for m in result.module.children()}
    assert {nn.Conv2d, nn.MaxPool2d, nn.Flatten, nn.Linear} <= types
    _, info = _round_trip(result.module, tmp_path / "c.packed", x, entropy=entropy)
    conv_key = next(k for k in info["tensors"] if k.endswith("weight"))
    assert info["tensors"][conv_key]["code"] == "fixed"


class Residual(nn.Module):
    """Two conv + BatchNorm, a residual sum, global pooling: exported through the graph."""

    def __init__(self, c: int = 4, k: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, k)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        h = F.relu(self.bn2(self.conv2(h)) + h)
        return self.fc(torch.flatten(self.pool(h), 1))


@pytest.mark.parametrize("entropy", [False, True])
def test_a_graph_exported_network_with_batchnorm_round_trips_through_its_factory(tmp_path, entropy):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
    bnn = pc.bayesianize(Residual(), "group-nj", seed=0)
    pc.fit(bnn, (x, y), epochs=2, batch_size=16, seed=0, progress=False)
    result = pc.prune(bnn, "sparsity", sparsity=0.3, example_input=x, quantize=True)
    module = result.module
    assert type(module) is Residual
    p = tmp_path / "r.packed"
    factory = f"{__name__}:Residual"
    _, info = _round_trip(module, p, x, factory=factory, entropy=entropy)
    assert info["tensors"]["bn.num_batches_tracked"]["code"] == "fixed"  # an int64 scalar
    for key in result.info.weight_keys.values():
        assert info["tensors"][key]["code"] == "fixed"
    spec = packed_spec(p)
    assert spec["factory"] == factory and spec["factory_kwargs"] == {}
    assert spec["modules"]["bn"][0] == "BatchNorm2d"
    # a factory outside the trusted models is not called unasked
    with pytest.raises(ValueError, match="does not call unasked"):
        load_packed(p)
    with pytest.raises(ValueError, match="not the file's factory"):
        load_packed(p, factory="subprocess:run")


def test_a_trusted_factory_network_loads_without_being_asked(tmp_path):
    module = _on_grid(pc.resnet20(num_classes=4, in_channels=1), 8).eval()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    loaded, info = _round_trip(
        module,
        tmp_path / "resnet20.packed",
        x,
        factory="pyrocompress.nn.models:resnet20",
        factory_kwargs={"num_classes": 4, "in_channels": 1},
    )
    assert type(loaded) is type(module)
    weights = [k for k in info["tensors"] if k.endswith("conv1.weight")]
    assert weights and all(info["tensors"][k]["code"] == "fixed" for k in weights)
    assert all(info["tensors"][k]["bits"] <= 9 for k in weights)  # |w| < 2: t + 1 bits


def test_a_weight_sharing_codebook_round_trips(tmp_path):
    net = nn.Sequential(nn.Linear(40, 30))
    book = torch.tensor([-0.3, -0.1, 0.0, 0.05, 0.2, 1 / 3])  # 1/3 is on no coarse grid
    index = torch.randint(0, 6, (30, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.get_parameter("0.weight").copy_(book[index])
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(1))
    for entropy in (False, True):
        _, info = _round_trip(net, tmp_path / "s.packed", x, entropy=entropy)
        assert info["tensors"]["0.weight"]["code"] == "codebook"
        assert info["tensors"]["0.weight"]["bits"] <= 3


# ---------------------------------------------------------------- tensors of every kind
@pytest.mark.parametrize(
    ("value", "code"),
    [
        (torch.tensor([3, -7, 12, 0, 5]), "fixed"),
        (torch.tensor([[2, 9], [4, 4]], dtype=torch.int32), "fixed"),
        (torch.tensor([1, 2, 4, 5, 6, 8, 9], dtype=torch.int32), "set"),
        (torch.arange(0, 300, 3), "set"),
        (torch.tensor(7), "fixed"),  # a 0-d int64, as BatchNorm's num_batches_tracked
        (torch.tensor([-(2**63), 2**63 - 1]), "raw"),
        (torch.tensor([True, False, False, True, True]), "fixed"),
        (torch.tensor([[True, True], [True, True]]), "fixed"),
        (torch.zeros(0), "raw"),
        (torch.zeros(0, dtype=torch.bool), "fixed"),
        (torch.zeros(0, 3, dtype=torch.int64), "raw"),
        (torch.zeros(5, 4), "fixed"),
        (torch.full((10,), 0.3), "fixed"),
        (torch.full((3, 3), -2.5, dtype=torch.float64), "fixed"),
        (torch.tensor([0.1, 0.2, 0.7], dtype=torch.float16), "fixed"),
        (torch.tensor([0.1, 0.2, 0.7], dtype=torch.float64), "raw"),
        (torch.tensor([float("nan"), 1.0, float("inf"), -float("inf")]), "raw"),
        (torch.tensor([1e-45, 3e38, -1.0]), "raw"),  # subnormal and huge: no grid fits
        (torch.tensor([5e-324], dtype=torch.float64), "fixed"),  # the smallest double
    ],
    ids=lambda v: None if isinstance(v, str) else f"{str(v.dtype)[6:]}{list(v.shape)}",
)
def test_buffers_of_every_dtype_and_shape_round_trip_bit_exactly(tmp_path, value, code):
    _, codes = _hold_round_trip(tmp_path / "b.packed", b=value)
    assert codes[0][0] == code
    if code == "fixed" and value.numel() and bool((value == value.reshape(-1)[0]).all()):
        assert codes[0][3] == 0  # a single distinct value costs no bits per value


_NAN_PAYLOADS = torch.tensor([0x7FC00001, -0x400000], dtype=torch.int32).view(torch.float32)


def test_nan_and_inf_stay_exact_in_raw_codes(tmp_path):
    values = torch.randn(40, generator=torch.Generator().manual_seed(0))
    values = torch.cat([_NAN_PAYLOADS, values, torch.tensor([float("inf"), -float("inf")])])
    loaded, codes = _hold_round_trip(tmp_path / "n.packed", b=values)
    assert codes == [["raw"]]
    b = loaded.get_buffer("b")
    assert torch.isnan(b[:2]).all() and torch.isinf(b[-2:]).all()


def test_nan_payloads_stay_exact_in_codebooks(tmp_path):
    """Two NaNs of different bits are two codebook entries (np.unique merges them)."""
    values = torch.cat([_NAN_PAYLOADS, torch.full((64,), 1 / 3), torch.tensor([-float("inf")])])
    _, codes = _hold_round_trip(tmp_path / "n.packed", b=values)
    assert codes[0][0] == "codebook"


def test_a_bool_buffer_that_looks_like_an_index_set_round_trips(tmp_path):
    """[False, True] is strictly increasing as integers: it must not get a "set" code.

    The encoder offers the bitmask of an index set for any integer tensor, bool included,
    but the loader accepts "set" only for int64 / int32 tensors.
    """
    _hold_round_trip(tmp_path / "b.packed", b=torch.tensor([False, True]))


@pytest.mark.parametrize(
    "value",
    [
        torch.tensor([2**60, 2**60 + 1]),  # a "set" or "fixed" code with first = 2^60
        torch.tensor([2**60, 2**60 + 5, 2**60 + 9]),
        torch.tensor([-(2**62)]),  # one distinct value: "fixed" with k_min = -2^62
        # doubles whose grid codes reach below -2^53 (k_min = -(2^53 + 2))
        torch.tensor([-(2 - 2**-52), -(2 + 2**-51)], dtype=torch.float64),
    ],
    ids=["int64-pair", "int64-set", "int64-single", "float64"],
)
def test_codes_with_a_first_value_beyond_2_to_53_round_trip(tmp_path, value):
    """The encoder writes k_min of any size; the loader must accept what it writes."""
    _hold_round_trip(tmp_path / "b.packed", b=value)


@pytest.mark.parametrize(
    "value",
    [torch.tensor([-0.0, 1.0, 0.5]), torch.tensor([-0.0, 0.0] * 8 + [1 / 3] * 8)],
    ids=["fixed", "codebook"],
)
def test_negative_zero_keeps_its_sign(tmp_path, value):
    """A lossless file keeps -0.0 (1 / -0.0 = -inf): the fixed code and the codebook lose it.

    ``torch.round(w * 2**t) / 2**t`` (the rounding of ``save_packed``'s own example) turns
    every small negative weight into -0.0.
    """
    _hold_round_trip(tmp_path / "z.packed", b=value)


def test_a_tensor_of_a_dtype_no_code_covers_is_refused_before_writing(tmp_path):
    p = tmp_path / "u.packed"
    with pytest.raises(TypeError, match="dtype"):
        save_packed(Holder(b=torch.zeros(3, dtype=torch.uint8)), p, factory="m:Holder")
    with pytest.raises(TypeError, match="entropy"):
        save_packed(_small_net(), p, entropy=1)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------- Huffman internals
def _kraft(lengths: np.ndarray) -> float:
    return float(sum(2.0 ** -int(v) for v in lengths if v))


def test_code_lengths_match_a_textbook_huffman_code():
    # Cormen et al., "Introduction to Algorithms", 3rd ed., §16.3, Fig. 16.3: a..f
    counts = np.array([45, 13, 12, 16, 9, 5])
    lengths = _code_lengths(counts)
    assert lengths.tolist() == [1, 3, 3, 3, 4, 4]
    assert int((counts * lengths).sum()) == 224
    assert _kraft(lengths) == 1.0


def test_code_lengths_are_optimal_prefix_codes():
    """Against an exhaustive search over every length assignment that satisfies Kraft."""
    rng = np.random.default_rng(0)
    for size in (2, 3, 4, 5, 6):
        for _ in range(4):
            counts = rng.geometric(0.3, size=size) * rng.integers(1, 4, size=size)
            lengths = _code_lengths(counts)
            assert (lengths > 0).all() and _kraft(lengths) <= 1.0
            best = min(
                int((counts * np.array(ls)).sum())
                for ls in itertools.product(range(1, size), repeat=size)
                if sum(2.0**-v for v in ls) <= 1.0
            )
            assert int((counts * lengths).sum()) == best
            p = counts / counts.sum()
            entropy = float(-(p * np.log2(p)).sum())
            mean = float((p * lengths).sum())
            assert entropy <= mean + 1e-12 and mean < entropy + 1  # Shannon's bounds


def test_code_lengths_give_absent_symbols_no_code_and_one_symbol_one_bit():
    assert _code_lengths(np.array([0, 5, 0, 3])).tolist() == [0, 1, 0, 1]
    assert _code_lengths(np.array([0, 0, 9])).tolist() == [0, 0, 1]


@pytest.mark.parametrize("alphabet", [1, 2, 7, 64])
def test_huffman_codes_decode_to_the_symbols_they_encode(alphabet):
    rng = np.random.default_rng(alphabet)
    for n in (1, 9, 1000):
        u = np.minimum(rng.geometric(0.35, size=n) - 1, alphabet - 1)
        if alphabet == 1:
            u = np.full(n, 5)  # a single symbol, not the first
        counts = np.bincount(u, minlength=max(alphabet, 6))
        lengths = _code_lengths(counts)
        data = _huffman_encode(u, lengths)
        assert len(data) == (int((counts * lengths).sum()) + 7) // 8
        assert _huffman_decode(data, n, lengths).tolist() == u.tolist()
    assert _huffman_decode(b"", 0, np.array([1, 1])).size == 0


def test_huffman_decoding_refuses_bits_that_end_early_or_hold_no_code():
    lengths = np.array([1, 2, 0, 0])  # codes 0 and 10; 11 is no code (Kraft sum 3/4)
    data = _huffman_encode(np.array([0, 1, 1, 0]), lengths)
    with pytest.raises(ValueError, match="end early"):
        _huffman_decode(data, 40, lengths)
    with pytest.raises(ValueError, match="unknown code"):
        _huffman_decode(b"\xff", 1, lengths)


def test_codes_longer_than_the_table_allows_fall_back_to_plain_bits():
    # Fibonacci counts give the deepest Huffman tree: 23 symbols, a code of 22 bits
    fib = [1, 1]
    while len(fib) < 23:
        fib.append(fib[-1] + fib[-2])
    u = np.repeat(np.arange(23), fib)
    assert _code_lengths(np.bincount(u)).max() > 20
    assert _with_entropy(u, 5, len(_pack_bits(u.astype(np.uint64), 5))) is None


def _segment(value: torch.Tensor, entropy: bool) -> tuple[list, int]:
    code, data = _encode(value, entropy)
    fields = {"fixed": 4, "codebook": 3}.get(code[0])
    table = len(code[fields]) if fields is not None and len(code) > fields else 0
    return code, len(data) + table


def test_entropy_coding_never_makes_a_segment_larger():
    rng = np.random.default_rng(1)
    tensors = [
        torch.from_numpy(np.floor(rng.laplace(0, 0.05, size=n) * 64 + 0.5) / 64).float()
        for n in (1, 10, 100, 5000)
    ]
    tensors += [
        torch.from_numpy(rng.integers(-8, 8, size=500) / 16).float(),  # uniform: no gain
        torch.tensor([-0.3, 0.1, 1 / 3])[torch.from_numpy(rng.integers(0, 3, size=900))],
        torch.from_numpy(rng.geometric(0.5, size=2000)),  # int64 counts
        torch.zeros(0),
    ]
    coded = 0
    for value in tensors:
        plain_code, plain = _segment(value, False)
        code, size = _segment(value, True)
        assert size <= plain
        coded += len(code) > len(plain_code)  # Huffman code lengths appended
    assert coded >= 2  # the skewed large tensors are entropy-coded


def test_entropy_coded_files_round_trip_and_are_smaller(tmp_path):
    rng = np.random.default_rng(2)
    net = nn.Sequential(nn.Linear(64, 48))
    with torch.no_grad():
        w = np.floor(rng.laplace(0, 0.03, size=(48, 64)) * 128 + 0.5) / 128  # no -0.0
        net.get_parameter("0.weight").copy_(torch.from_numpy(w))
        bias = net.get_parameter("0.bias")
        bias.copy_(torch.floor(bias * 64 + 0.5) / 64)
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    _, plain = _round_trip(net, tmp_path / "a.packed", x, entropy=False)
    _, coded = _round_trip(net, tmp_path / "b.packed", x)  # entropy=True is the default
    code = packed_spec(tmp_path / "b.packed")["codes"][0]
    assert code[0] == "fixed" and len(code) == 6  # t, k_min, bits, lengths, bytes
    assert coded["payload_bytes"] < plain["payload_bytes"]
    assert coded["tensors"]["0.weight"]["bits"] < plain["tensors"]["0.weight"]["bits"]


# ------------------------------------------------------------------------------ refusals
def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_packed(tmp_path / "nothing.packed")
    with pytest.raises(FileNotFoundError):
        packed_spec(tmp_path)  # a folder is no file


def _refused(path: Path, match: str | None = None, **kwargs) -> None:
    with pytest.raises(ValueError, match=match) as err:
        load_packed(path, **kwargs)
    assert str(path) in str(err.value)


def test_files_of_other_kinds_are_refused(tmp_path):
    net = _small_net()
    (tmp_path / "t.packed").write_text("not a model\n" * 10)
    _refused(tmp_path / "t.packed", "not a readable safetensors")
    torch.save(net.state_dict(), tmp_path / "s.pt")
    _refused(tmp_path / "s.pt", "not a readable safetensors")
    pc.save_compact(net, tmp_path / "c.pt")
    _refused(tmp_path / "c.pt", "not a readable safetensors")
    body = _layout(packed_bytes(net)[0])[2]
    other = {"packed": np.frombuffer(body, dtype=np.uint8), "w": np.zeros(3, np.float32)}
    (tmp_path / "o.packed").write_bytes(st_save(other, metadata={"format": FORMAT_PACKED}))
    _refused(tmp_path / "o.packed", "not a pyrocompress packed model")
    alone = {"packed": np.frombuffer(body, dtype=np.uint8)}
    (tmp_path / "f.packed").write_bytes(st_save(alone))  # no format
    _refused(tmp_path / "f.packed", "not a pyrocompress packed model")
    (tmp_path / "g.packed").write_bytes(st_save(alone, metadata={"format": "other/1"}))
    _refused(tmp_path / "g.packed", "not a pyrocompress packed model")
    # the same bytes with the format load: the refusals above are the container's
    (tmp_path / "ok.packed").write_bytes(st_save(alone, metadata={"format": FORMAT_PACKED}))
    _assert_identical(load_packed(tmp_path / "ok.packed"), net, torch.randn(2, 6))


def test_truncated_files_are_refused(tmp_path):
    net = _small_net()
    blob = packed_bytes(net, entropy=True)[0]
    start, spec_len, body = _layout(blob)
    p = tmp_path / "cut.packed"
    # cut in the safetensors header, in the spec and in the payload
    for cut in (0, 5, 8, start - 3, start + spec_len // 2, start + spec_len + 3, len(blob) - 1):
        p.write_bytes(blob[:cut])
        _refused(p)
    # the packed tensor itself cut short, in a sound container: spec or payload missing
    for cut in (0, 1, spec_len // 2, spec_len - 1, spec_len, spec_len + 1, len(body) - 1):
        p.write_bytes(
            st_save(
                {"packed": np.frombuffer(body[:cut], dtype=np.uint8)},
                metadata={"format": FORMAT_PACKED},
            )
        )
        _refused(p)
    # and a payload one byte too long
    p.write_bytes(
        st_save(
            {"packed": np.frombuffer(body + b"\x00", dtype=np.uint8)},
            metadata={"format": FORMAT_PACKED},
        )
    )
    _refused(p, "truncated or corrupt")


@pytest.mark.parametrize("entropy", [False, True])
def test_every_single_byte_corruption_is_a_value_error_or_a_payload_change(tmp_path, entropy):
    """Flip each byte of a small file two ways: a ValueError naming the file, or a module.

    A module may load where the byte is a payload value, or where the spec (raw DEFLATE,
    no checksum) still decodes to a valid one; no other exception may escape.
    """
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 24), nn.ReLU(), nn.Linear(24, 3))
    _on_grid(net, 6)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # mostly zeros: the entropy-coded file holds Huffman codes
        weight = net.get_parameter("1.weight")
        weight.mul_(torch.rand(weight.shape, generator=g) < 0.2)
    blob = packed_bytes(net, entropy=entropy, note="x")[0]
    codes = _spec_of(blob)["codes"]
    assert any(len(c) > 4 for c in codes) == entropy
    start, spec_len, _ = _layout(blob)
    p = tmp_path / "c.packed"
    outcomes = {"header": set(), "payload": set()}
    for pos, mask in itertools.product(range(len(blob)), (0x01, 0xFF)):
        corrupt = bytearray(blob)
        corrupt[pos] ^= mask
        p.write_bytes(bytes(corrupt))
        region = "payload" if pos >= start + spec_len else "header"
        try:
            module = load_packed(p)
        except ValueError as e:
            assert str(p) in str(e), (pos, mask, str(e))
            outcomes[region].add("refused")
        else:
            assert isinstance(module, nn.Sequential)
            outcomes[region].add("loaded")
    assert "refused" in outcomes["header"] and "loaded" in outcomes["payload"]


def _codes_file(tmp_path: Path, name: str, edit, net: nn.Module | None = None) -> Path:
    """A plain packed file of a small network with its spec edited by ``edit(spec)``."""
    blob = packed_bytes(net if net is not None else _small_net(), entropy=False)[0]
    spec = _spec_of(blob)
    edit(spec)
    return _write_spec(tmp_path / name, spec, _payload(blob))


def _set(i, code):
    def edit(spec):
        spec["codes"][i] = code

    return edit


def _seven_inputs(relayout: bool):
    """Make the first Linear read 7 features; with ``relayout`` the layout follows."""

    def edit(spec):
        spec["architecture"][1][1] = 7
        if relayout:  # past the layout check: the payload is then too short
            spec["layout"] = _layout_of(
                lambda: nn.Sequential(nn.Flatten(), nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))
            )

    return edit


_OTHER_TENSORS = "differ from those of the architecture"


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_set(0, ["zip"]), "malformed code"),
        (_set(0, "fixed"), "malformed code"),
        (_set(0, []), "malformed code"),
        (_set(0, ["fixed", 6, -25]), "malformed code"),
        (_set(0, ["fixed", 6, -25, -1]), "malformed code"),
        (_set(0, ["fixed", 6, -25, 33]), "malformed code"),
        (_set(0, ["fixed", 6.0, -25, 6]), "malformed code"),
        (_set(0, ["fixed", True, -25, 6]), "malformed code"),
        (_set(0, ["fixed", 5000, -25, 6]), "malformed code"),
        (_set(0, ["set", 0, 30]), "malformed code"),  # a float tensor is no index set
        (_set(0, ["raw", 1]), "malformed code"),
        (_set(0, ["codebook", 0, 1]), "malformed code"),
        (_set(0, ["codebook", 3, 17]), "malformed code"),
        (_set(0, ["fixed", 6, -25, 6, [1, 1, 1], 10]), "malformed code"),  # Kraft 3/2
        (_set(0, ["fixed", 6, -25, 6, [0, 0], 10]), "malformed code"),  # no symbol
        (_set(0, ["fixed", 6, -25, 6, [], 10]), "malformed code"),
        (_set(0, ["fixed", 6, -25, 6, [1, 21], 10]), "malformed code"),  # too long
        (_set(0, ["fixed", 6, -25, 6, [1, -1], 10]), "malformed code"),
        (_set(0, ["fixed", 6, -25, 2, [3] * 5, 10]), "malformed code"),  # > 2^bits
        (_set(0, ["fixed", 6, -25, 6, [1, 1], -1]), "malformed code"),
        (_set(0, ["fixed", 6, -25, 6, [1, 1]]), "malformed code"),  # bytes missing
        (_set(0, ["fixed", 6, -25, 5]), "needs"),  # a segment of another length
        (lambda s: s["codes"].append(["raw"]), _OTHER_TENSORS),  # too many codes
        (lambda s: s["codes"].pop(), _OTHER_TENSORS),
        (lambda s: s.update(codes={"0": ["raw"]}), "malformed"),
        (lambda s: s.pop("codes"), "malformed"),
        (lambda s: s.pop("architecture"), "architecture is missing"),
        (lambda s: s.update(architecture=[["Linear", 6, 5], "ReLU"]), "malformed module"),
        # a type outside the positional table, in a list: no constructor is looked up
        (lambda s: s.update(architecture=[["Popen", "ls"]]), "malformed module description"),
        (lambda s: s.update(architecture=[["LeakyReLU", 0.1]]), "malformed module description"),
        (lambda s: s.update(architecture=[{"type": "Popen", "args": "ls"}]), "unknown module"),
        (lambda s: s["architecture"].append(["Linear", 1, 2, True, 4]), "malformed module"),
        (_seven_inputs(relayout=False), _OTHER_TENSORS),
        (_seven_inputs(relayout=True), "needs"),
        # the layout: a CRC-32 of the state's names, dtypes and shapes
        (lambda s: s.update(layout=s["layout"] ^ 1), _OTHER_TENSORS),
        (lambda s: s.pop("layout"), "malformed"),
        (lambda s: s.update(layout=-1), "malformed"),
        (lambda s: s.update(layout=2**32), "malformed"),
        (lambda s: s.update(layout=float(s["layout"])), "malformed"),
        (lambda s: s.update(layout=str(s["layout"])), "malformed"),
    ],
)
def test_specs_with_malformed_codes_or_modules_are_refused(tmp_path, edit, match):
    _refused(_codes_file(tmp_path, "bad.packed", edit), match)


@pytest.mark.parametrize(
    "module",
    [["Linear", -1, 3], ["Conv2d", 1, 2, -3], ["Linear", "six", 3]],
    ids=["negative-features", "negative-kernel", "text"],
)
def test_modules_with_impossible_arguments_are_a_value_error(tmp_path, module):
    """The constructor's own RuntimeError / TypeError must not escape load_packed."""

    def edit(spec):  # no network has this layout: the constructor refuses first
        spec["architecture"] = [module]
        spec["codes"] = [["raw"], ["raw"]]

    _refused(_codes_file(tmp_path, "m.packed", edit), "malformed module description")


def test_a_factory_modules_impossible_arguments_are_a_value_error(tmp_path):
    spec = {"factory": "m:build", "factory_kwargs": {}, "modules": {"0": ["Linear", -1, 2]}}
    layout = _layout_of(lambda: nn.Sequential(nn.Linear(2, 2)))
    p = _write_spec(
        tmp_path / "f.packed", {**spec, "codes": [["raw"], ["raw"]], "layout": layout}, b""
    )
    _refused(p, "malformed module description", factory=lambda: nn.Sequential(nn.Linear(2, 2)))


def test_a_spec_that_is_not_an_object_is_refused(tmp_path):
    _refused(_write_spec(tmp_path / "l.packed", [["raw"]], b""), "malformed")
    p = tmp_path / "j.packed"
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=_SPEC_DICTIONARY)
    head = deflate.compress(b'{"codes": [') + deflate.flush()
    p.write_bytes(
        st_save({"packed": np.frombuffer(head, np.uint8)}, metadata={"format": FORMAT_PACKED})
    )
    _refused(p, "corrupt")


def _one_layer_file(tmp_path: Path, code: list, segment: bytes) -> Path:
    layout = _layout_of(lambda: nn.Sequential(nn.Linear(2, 2)))
    spec = {"architecture": [["Linear", 2, 2]], "codes": [code, ["raw"]], "layout": layout}
    return _write_spec(tmp_path / "one.packed", spec, segment + np.zeros(2, "<f4").tobytes())


def test_codebook_indices_out_of_range_and_bad_sets_are_refused(tmp_path):
    book = np.array([0.5, -0.25], "<f4").tobytes()
    index = _pack_bits(np.array([0, 1, 3, 1], dtype=np.uint64), 2)  # 3 >= K = 2
    _refused(_one_layer_file(tmp_path, ["codebook", 2, 2], book + index), "out of range")
    ok = _pack_bits(np.array([0, 1, 1, 0], dtype=np.uint64), 2)
    loaded = load_packed(_one_layer_file(tmp_path, ["codebook", 2, 2], book + ok))
    assert loaded.get_parameter("0.weight").reshape(-1).tolist() == [0.5, -0.25, -0.25, 0.5]
    # an entropy-coded codebook index that no code stands for
    lengths = [1, 2]  # codes 0 and 10: 11 is none
    bad = _one_layer_file(tmp_path, ["codebook", 2, 1, lengths, 1], book + b"\xff")
    _refused(bad, "unknown code")
    # an index set whose bitmask has another number of members than the tensor
    selected = nn.Sequential(SelectFeatures(torch.tensor([0, 2, 5]), 6), nn.Linear(3, 2))
    _on_grid(selected, 4)
    blob = packed_bytes(selected)[0]
    assert _spec_of(blob)["codes"][0] == ["set", 0, 6]
    spec = _spec_of(blob)
    payload = bytearray(_payload(blob))
    payload[0] |= 0b00010000  # a fourth member (index 3)
    _refused(_write_spec(tmp_path / "set.packed", spec, bytes(payload)), "members")


@pytest.mark.parametrize(
    ("factory", "kwargs", "match"),
    [
        ("os:system", {"command": "touch pwned"}, "does not call unasked"),
        ("subprocess:run", {"args": ["touch", "pwned"]}, "does not call unasked"),
        ("pyrocompress.nn.models:Path", {}, "does not call unasked"),
        ("torchvision.models:resnet18", {"weights": "DEFAULT"}, "download"),
    ],
)
def test_untrusted_factories_are_refused_and_never_called(
    tmp_path, monkeypatch, factory, kwargs, match
):
    calls = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(a) or 0)
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    # a valid layout (any: the factory is refused before it is compared) reaches the factory
    spec = {"factory": factory, "factory_kwargs": kwargs, "modules": {}, "codes": [], "layout": 0}
    p = _write_spec(tmp_path / "evil.packed", spec, b"")
    _refused(p, match)
    assert packed_spec(p)["factory"] == factory  # inspecting the spec calls nothing either
    assert calls == []
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


# ------------------------------------------------------------- layout, limits, factories
class Pair(nn.Module):
    """Two buffers of one shape, registered in either order: ``x * a + b``."""

    def __init__(self, swap: bool = False, dtype: torch.dtype = torch.float32):
        super().__init__()
        a, b = torch.zeros(3, dtype=dtype), torch.zeros(3, dtype=dtype)
        for name, value in [("b", b), ("a", a)] if swap else [("a", a), ("b", b)]:
            self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.get_buffer("a") + self.get_buffer("b")


def test_a_factory_that_registers_its_tensors_in_another_order_is_refused(tmp_path):
    """Codes follow the state's order: a swap of same-shaped tensors would load silently."""
    pair = Pair()
    with torch.no_grad():
        pair.get_buffer("a").copy_(torch.tensor([1.0, 2.0, 3.0]))
        pair.get_buffer("b").copy_(torch.tensor([-0.5, 0.25, 8.0]))
    p = tmp_path / "pair.packed"
    save_packed(pair, p, factory=f"{__name__}:Pair")
    _assert_identical(load_packed(p, factory=Pair), pair, torch.ones(2, 3))  # the control
    _refused(p, _OTHER_TENSORS, factory=lambda: Pair(swap=True))
    _refused(p, _OTHER_TENSORS, factory=lambda: Pair(dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_a_sequential_holding_tensors_its_modules_would_not_rebuild_is_refused(tmp_path, dtype):
    """Its modules rebuild float32 tensors: the file could not hold what was saved."""
    p = tmp_path / "d.packed"
    net = _small_net().to(dtype)
    with pytest.raises(TypeError, match=r"call \.float\(\)"):
        save_packed(net, p)
    assert not p.exists()
    save_packed(net.float(), p)  # as the message says
    assert isinstance(load_packed(p), nn.Sequential)


def test_a_spec_of_at_most_the_limit_loads_and_a_longer_one_is_refused(tmp_path):
    """A zip bomb: a few kB that inflate past _MAX_SPEC characters are not inflated."""

    def spec_text(size: int) -> bytes:
        empty = {"architecture": [], "codes": [], "layout": _layout_of(nn.Sequential)}
        text = json.dumps({**empty, "metadata": {"pad": ""}}).encode()
        return json.dumps({**empty, "metadata": {"pad": "a" * (size - len(text))}}).encode()

    p = tmp_path / "s.packed"
    assert len(spec_text(_MAX_SPEC)) == _MAX_SPEC
    _write_text(p, spec_text(_MAX_SPEC), b"")
    assert packed_spec(p)["metadata"]["pad"] and isinstance(load_packed(p), nn.Sequential)
    _write_text(p, spec_text(_MAX_SPEC + 1), b"")
    assert p.stat().st_size < 4096
    _refused(p, "corrupt")
    _write_text(p, spec_text(64 * _MAX_SPEC), b"")
    _refused(p, "corrupt")


def test_a_deeply_nested_spec_is_a_value_error(tmp_path):
    """json.loads raises RecursionError on deep nesting: it must not escape."""
    depth = 200_000
    p = _write_text(tmp_path / "n.packed", b'{"codes": ' + b"[" * depth + b"]" * depth + b"}", b"")
    _refused(p, "corrupt")


@pytest.mark.parametrize("extra", [0, 1], ids=["at-the-limit", "beyond"])
def test_huffman_codes_of_more_values_than_the_limit_are_refused(tmp_path, extra):
    """Decoding steps once per value: a tensor beyond _MAX_HUFFMAN_VALUES is refused.

    The network is never built for real: the meta-device probe finds the tensor's size.
    """
    rows = _MAX_HUFFMAN_VALUES // 2048 + extra
    spec = {
        "architecture": [["Linear", 2048, rows]],
        "codes": [["fixed", 0, 0, 1, [1, 1], 10], ["raw"]],
        "layout": _layout_of(lambda: nn.Sequential(nn.Linear(2048, rows))),
    }
    p = _write_spec(tmp_path / "h.packed", spec, bytes(10))
    # at the limit the code is sound and the (too short) payload is what is refused
    _refused(p, "malformed code" if extra else "truncated or corrupt")


def test_zero_width_codes_are_limited_in_total(tmp_path):
    """All-equal tensors cost no bytes: a tiny file must not declare a huge network.

    Each layer is below _MAX_FREE_VALUES; together they exceed it.
    """
    cols = _MAX_FREE_VALUES // 4096 // 2 + 1
    assert 4096 * cols < _MAX_FREE_VALUES < 2 * 4096 * cols
    spec = {
        "architecture": [["Linear", 4096, cols, False], ["Linear", cols, 4096, False]],
        "codes": [["fixed", 0, 0, 0], ["fixed", 0, 0, 0]],
        "layout": _layout_of(
            lambda: nn.Sequential(nn.Linear(4096, cols, bias=False), nn.Linear(cols, 4096, False))
        ),
    }
    _refused(_write_spec(tmp_path / "z.packed", spec, b""))


def test_loading_leaves_torch_global_random_state_as_it_was(tmp_path):
    """Constructors draw initial weights; load_packed and load_compact must not consume them."""
    net = _small_net()
    save_packed(net, tmp_path / "m.packed")
    pc.save_compact(net, tmp_path / "m.pt")
    residual = _on_grid(Residual(), 8)
    save_packed(residual, tmp_path / "r.packed", factory=f"{__name__}:Residual")
    loads = [
        lambda: load_packed(tmp_path / "m.packed"),
        lambda: pc.load_compact(tmp_path / "m.pt"),
        lambda: load_packed(tmp_path / "r.packed", factory=Residual),
    ]
    for load in loads:
        before = torch.get_rng_state()
        load()
        assert torch.equal(torch.get_rng_state(), before)


def _residual_file(tmp_path: Path, edit) -> Path:
    """A packed file of :class:`Residual` (a factory network) with its spec edited."""
    blob = packed_bytes(_on_grid(Residual(), 8), factory=f"{__name__}:Residual")[0]
    spec = _spec_of(blob)
    edit(spec)
    return _write_spec(tmp_path / "r.packed", spec, _payload(blob))


@pytest.mark.parametrize(
    "kwargs",
    [{"nope": 1}, {"c": -1}, {"c": "four"}],
    ids=["unknown-argument", "negative-channels", "text"],
)
def test_a_factory_that_fails_on_the_files_arguments_is_a_value_error(tmp_path, kwargs):
    p = _residual_file(tmp_path, lambda s: s.update(factory_kwargs=kwargs))
    _refused(p, "failed", factory=Residual)


@pytest.mark.parametrize(
    "where",
    ["training", "_parameters", "forward", "bn._parameters", "", "conv.weight", "nope", "bn."],
)
def test_module_paths_of_a_factory_spec_must_name_submodules(tmp_path, where):
    """A path is a submodule's name: no attribute, no private field, no parameter."""
    p = _residual_file(tmp_path, lambda s: s["modules"].update({where: ["ReLU"]}))
    _refused(p, "has no module", factory=Residual)


def test_a_factory_spec_may_describe_any_of_its_submodules(tmp_path):
    """The control of the paths above: the same edit at a real submodule loads."""
    p = _residual_file(tmp_path, lambda s: s["modules"].update(pool=["AdaptiveAvgPool2d", 2]))
    module = load_packed(p, factory=Residual)
    assert isinstance(module, Residual)
    assert module.pool.output_size == 2


# ------------------------------------------------------------------- spec and metadata
def test_packed_spec_returns_the_architecture_codes_and_metadata(quantised, tmp_path):
    p = tmp_path / "m.packed"
    metadata = {"note": "run 3", "accuracy": 0.925, "tags": ["a", None, True], "n": {"k": 1}}
    info = save_packed(quantised.module, p, entropy=True, **metadata)
    spec = packed_spec(p)
    assert spec["metadata"] == metadata
    assert [m[0] for m in spec["architecture"]] == [type(m).__name__ for m in quantised.module]
    assert len(spec["codes"]) == len(quantised.module.state_dict())
    assert [c[0] for c in spec["codes"]] == [t["code"] for t in info["tensors"].values()]
    save_packed(quantised.module, p)
    assert "metadata" not in packed_spec(p)


def test_modules_are_positional_only_for_the_formats_frozen_table(tmp_path):
    """A type outside _POSITIONAL is written by name, so a later rule change reads the same."""
    assert "LeakyReLU" not in _POSITIONAL and "Linear" in _POSITIONAL
    net = _on_grid(
        nn.Sequential(nn.Linear(4, 3, bias=False), nn.LeakyReLU(0.25), nn.Linear(3, 2)), 5
    )
    p = tmp_path / "m.packed"
    _round_trip(net, p, torch.randn(6, 4, generator=torch.Generator().manual_seed(0)))
    assert packed_spec(p)["architecture"] == [
        ["Linear", 4, 3, False],
        {"type": "LeakyReLU", "negative_slope": 0.25},
        ["Linear", 3, 2],  # trailing defaults cut
    ]


@pytest.mark.parametrize("bad", [object(), torch.zeros(2), {1, 2}, b"bytes"])
def test_metadata_that_is_not_json_is_refused_before_writing(tmp_path, bad):
    p = tmp_path / "m.packed"
    with pytest.raises(ValueError, match="JSON"):
        save_packed(_small_net(), p, extra=bad)
    assert not p.exists()


# -------------------------------------------------------------------------- atomicity
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    p = tmp_path / "m.packed"
    save_packed(_small_net(), p)
    before = p.read_bytes()

    def refuse(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        save_packed(nn.Sequential(nn.Linear(3, 1)), p)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["m.packed"]
    monkeypatch.undo()
    assert isinstance(load_packed(p), nn.Sequential)


def test_a_packed_file_is_readable_by_all_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        save_packed(_small_net(), tmp_path / "m.packed")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m.packed").st_mode) == 0o644
