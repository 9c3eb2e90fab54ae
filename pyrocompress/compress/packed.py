r"""Packed files: a compact network at the bits its report counts, in a safetensors container.

A quantised compact network (``prune(..., quantize=True)``) holds each layer's weights on
the fixed-point grid :math:`2^{-t}` of its mantissa bits :math:`t`
:cite:p:`louizos2017bayesian{§4}`, yet ``model.pt`` stores them as float32. :func:`save_packed`
stores every tensor of the network's state losslessly in the cheapest of four codes:

``"fixed"``
    A per-tensor scale :math:`2^{-t}` and integer codes: :math:`w = (k_{\min} + u)\,2^{-t}`
    with :math:`u` an unsigned integer of :math:`b = \lceil\log_2(k_{\max}-k_{\min}+1)\rceil`
    bits, bit-packed. :math:`t` is the smallest integer that puts every value on the grid,
    so a weight rounded to :math:`2^{-t}` costs :math:`b \approx t + 1 + \log_2\max|w|`
    bits, against the :math:`1 + e + t` sign, exponent and mantissa bits the report
    counts (:math:`e = \lceil\log_2(\log_2 m + 1) + 1\rceil \ge 1` for
    :math:`m = \max|w|`): one or two bits fewer while :math:`m < 8`, as many up to
    :math:`m \approx 16`, more beyond (networks' weights rarely reach it). Integer
    tensors use it with :math:`t = 0`.
``"set"``
    A strictly increasing integer tensor (``SelectFeatures``' kept indices) as a bitmask
    over its range.
``"codebook"``
    The tensor's distinct values as a float32 codebook of :math:`K` entries and each
    value's index in :math:`\lceil\log_2 K\rceil` bits, bit-packed: the code of a network
    after weight sharing (:func:`~pyrocompress.compress.share_weights`; :cite:p:`han2016deep{§3}`;
    the "maximum compression" of :cite:t:`louizos2017bayesian`).
``"raw"``
    The values as they are (little-endian), when no code is smaller: biases and norm
    statistics, which the report also counts at 32 bits.

With ``entropy=True`` the integer codes of ``"fixed"`` and ``"codebook"`` tensors are
Huffman-coded (:cite:t:`huffman1952method`; canonical codes, as in DEFLATE) wherever that is
smaller, table included: weights concentrate near zero, so their codes carry fewer bits of
information than their width :cite:p:`han2016deep{§4}`.

The file is a safetensors file (the ``safetensors`` package; nothing is pickled) holding one
``uint8`` tensor, ``"packed"``, and the metadata ``{"format": FORMAT_PACKED}``. The tensor
opens with the spec — a JSON document, raw-DEFLATE-compressed with a preset dictionary of
the format's common words — followed by every state tensor's bytes in ``state_dict`` order.
The spec holds the architecture (as :func:`~pyrocompress.compress.files.describe_architecture`
writes it for :func:`~pyrocompress.save_compact`; a module of the format's frozen table
:data:`_POSITIONAL` as ``[type, *arguments]``, any other by name), each tensor's code, a
CRC-32 of the state's names, dtypes and shapes, and the user's metadata; the names, shapes
and dtypes themselves come from the rebuilt architecture, and the checksum refuses a
network that registers other ones (another version of a factory). One tensor and a
compressed spec keep the header small: a safetensors tensor entry costs about 70 bytes and
a module's JSON description about 60, as much as a hundred 5-bit weights, and the demo's
compact network is about 400 bytes of codes. :func:`packed_spec` returns the spec for
inspection.

:func:`load_packed` validates the container, the spec, every code and every segment's
length before it decodes anything, and rebuilds the network as
:func:`~pyrocompress.load_compact` does (a factory is called only if trusted or given); its
outputs equal the saved network's exactly, bit for bit.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pyrocompress.compress.files import (
    DTYPES,
    _class_named,
    build_architecture,
    describe_architecture,
)
from pyrocompress.infer.checkpoint import atomic_write_bytes

__all__ = ["FORMAT_PACKED", "load_packed", "packed_bytes", "packed_spec", "save_packed"]

#: The format name a packed file's ``"format"`` metadata holds.
FORMAT_PACKED = "pyrocompress.packed/1"
_TENSOR = "packed"
_DTYPES = DTYPES
_NP = {"float32": "<f4", "float64": "<f8", "float16": "<f2", "int64": "<i8", "int32": "<i4"}
#: widest fixed-point code: the values of a float32 tensor on its grid need at most 24 bits
#: of significand, so wider codes only arise from far-apart exponents (then raw is smaller)
_MAX_FIXED_BITS = 32
#: largest codebook considered when a tensor's distinct values are counted
_MAX_CODEBOOK = 1 << 16
_CHUNK = 1 << 20  # values bit-packed at a time (a multiple of 8)
#: the most characters a spec may inflate to (a real one is a few kB)
_MAX_SPEC = 1 << 20
#: the most values of zero-width fixed-point codes (all-equal tensors) a file may declare:
#: every other code costs at least one bit a value, so the file's length bounds them
_MAX_FREE_VALUES = 1 << 24


@dataclass(frozen=True)
class _Kind:
    """A code's layout in the spec.

    ``[name, *fields]``, then ``[lengths, bytes]`` when Huffman-coded (if ``huffman``);
    for a code of symbols the last plain field is their width.
    """

    fields: int
    huffman: bool


#: the codes of the format (module docstring), in one place
_KINDS = {
    "raw": _Kind(0, False),
    "set": _Kind(2, False),
    "fixed": _Kind(3, True),
    "codebook": _Kind(2, True),
}


def _huffman_coded(code: list) -> bool:
    return len(code) == 1 + _KINDS[code[0]].fields + 2


def _width(code: list) -> int:
    """Return the symbol width of a ``fixed`` or ``codebook`` code (its last plain field)."""
    return code[_KINDS[code[0]].fields]


#: Positional module descriptions, frozen with the format: ``[type, *values]`` lists the
#: constructor arguments in this order (trailing defaults cut). A module type that is not
#: here is described by name (a dict), so that a later change of an op rule's ``args``
#: never changes how an old file reads.
_POSITIONAL: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features", "bias"),
    "Conv1d": (
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
        "groups", "padding_mode", "bias",
    ),
    "Conv2d": (
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
        "groups", "padding_mode", "bias",
    ),
    "ReLU": (),
    "Tanh": (),
    "Sigmoid": (),
    "Identity": (),
    "Flatten": ("start_dim", "end_dim"),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    "AdaptiveAvgPool2d": ("output_size",),
    "BatchNorm1d": ("num_features", "eps", "momentum", "affine", "track_running_stats", "bias"),
    "BatchNorm2d": ("num_features", "eps", "momentum", "affine", "track_running_stats", "bias"),
    "SelectFeatures": ("indices", "in_features"),
    "Dropout": ("p",),
}  # fmt: skip
#: DEFLATE's preset dictionary for the spec (part of the format: never change it within
#: one format version). The spec of a small network is a few hundred characters of JSON
#: whose words — module types, keys, codes — recur in every file; with them in the
#: dictionary a word costs a back-reference of two or three bytes instead of its letters,
#: which on the 500-byte networks of the demo is a fifth of the file. Later strings are
#: cheaper to refer to, so the commonest come last.
_SPEC_DICTIONARY = (
    b'"metadata":{"factory":"pyrocompress.nn.models:","factory_kwargs":{"num_classes":10},'
    b'"modules":{"BatchNorm2d",["BatchNorm1d",["Conv1d",["Conv2d",["MaxPool2d",'
    b'["AvgPool2d",["AdaptiveAvgPool2d",["Tanh"],["Sigmoid"],["GELU"],["SiLU"],'
    b'["Dropout",["Identity"],["codebook",["set",{"tensor":[","dtype":"int64"},'
    b'["fixed",0,["fixed",1,["fixed",2,["fixed",3,["fixed",4,["fixed",5,["fixed",6,'
    b'["fixed",7,["fixed",8,["raw"],["fixed",2'
    b'{"architecture":[["Flatten"],["SelectFeatures",["ReLU"],["Linear",'
    b'"codes":[["fixed",'
)


# ------------------------------------------------------------------------ bit packing
def _pack_bits(u: np.ndarray, bits: int) -> bytes:
    """Return unsigned integers ``u`` (< 2**bits) as a big-endian bit stream, byte-padded."""
    if bits == 0 or u.size == 0:
        return b""
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    out = []
    for start in range(0, u.size, _CHUNK):
        chunk = u[start : start + _CHUNK].astype(np.uint64)
        planes = ((chunk[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
        out.append(planes.reshape(-1))
    return np.packbits(np.concatenate(out)).tobytes()


def _unpack_bits(buf: bytes, n: int, bits: int) -> np.ndarray:
    """Inverse of :func:`_pack_bits`: ``n`` unsigned integers of ``bits`` bits."""
    if bits == 0 or n == 0:
        return np.zeros(n, dtype=np.uint64)
    stream = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), count=n * bits)
    weights = np.uint64(1) << np.arange(bits - 1, -1, -1, dtype=np.uint64)
    out = np.empty(n, dtype=np.uint64)
    for start in range(0, n, _CHUNK):
        rows = stream[start * bits : (start + _CHUNK) * bits].reshape(-1, bits)
        out[start : start + len(rows)] = (rows.astype(np.uint64) * weights).sum(axis=1)
    return out


def _nbytes(n: int, bits: int) -> int:
    return (n * bits + 7) // 8


# ---------------------------------------------------------------- entropy coding
#: longest Huffman code; a table of 2**_MAX_CODE_LEN entries decodes
_MAX_CODE_LEN = 20
#: tensors longer than this are not Huffman-coded (the decoder steps once per value)
_MAX_HUFFMAN_VALUES = 1 << 21


def _code_lengths(counts: np.ndarray) -> np.ndarray:
    """Return Huffman code lengths for symbol ``counts`` (0 for absent symbols).

    :cite:t:`huffman1952method`: merge the two least frequent subtrees until one is left; a symbol's
    code length is its depth. A single present symbol gets length 1.
    """
    import heapq

    present = np.flatnonzero(counts)
    lengths = np.zeros(len(counts), dtype=np.int64)
    if len(present) == 1:
        lengths[present] = 1
        return lengths
    heap = [(int(counts[i]), int(i), [int(i)]) for i in present]
    heapq.heapify(heap)
    tie = len(counts)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def _canonical(lengths: np.ndarray) -> np.ndarray:
    """Return the canonical Huffman codes of code ``lengths`` (Deflate's construction)."""
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, previous = 0, 0
    for symbol in sorted(np.flatnonzero(lengths), key=lambda i: (lengths[i], i)):
        code <<= int(lengths[symbol]) - previous
        codes[symbol], previous = code, int(lengths[symbol])
        code += 1
    return codes


def _huffman_encode(u: np.ndarray, lengths: np.ndarray) -> bytes:
    """Return symbols ``u`` as the concatenation of their canonical codes, byte-padded."""
    codes = _canonical(lengths)
    size, value = lengths[u], codes[u]
    start = np.cumsum(size) - size
    stream = np.zeros(int(size.sum()), dtype=np.uint8)
    for j in range(int(size.max()) if size.size else 0):
        has = size > j
        stream[start[has] + j] = (value[has] >> (size[has] - 1 - j)) & 1
    return np.packbits(stream).tobytes()


def _huffman_decode(buf: bytes, n: int, lengths: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_huffman_encode`: ``n`` symbols (table-driven, one step each)."""
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    top = int(lengths.max())
    codes = _canonical(lengths)
    symbol_of = np.full(1 << top, -1, dtype=np.int64)
    length_of = np.zeros(1 << top, dtype=np.int64)
    for s in np.flatnonzero(lengths):
        shift = top - int(lengths[s])
        first = int(codes[s]) << shift
        symbol_of[first : first + (1 << shift)] = s
        length_of[first : first + (1 << shift)] = lengths[s]
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8))
    padded = np.concatenate([bits, np.zeros(top, dtype=np.uint8)]).astype(np.int64)
    window = np.zeros(len(bits), dtype=np.int64)
    for j in range(top):  # the next `top` bits at every position, as an integer
        window = (window << 1) | padded[j : j + len(bits)]
    step = length_of[window].tolist()
    where, pos = [], 0
    for _ in range(n):
        if pos >= len(step) or step[pos] == 0:
            raise ValueError("the entropy-coded bits end early or hold an unknown code")
        where.append(pos)
        pos += step[pos]
    return symbol_of[window[np.asarray(where, dtype=np.int64)]].astype(np.uint64)


def _with_entropy(u: np.ndarray, bits: int, plain: int) -> tuple[list, bytes] | None:
    """Return ``(lengths, bytes)`` when Huffman codes make ``u`` smaller than ``plain``.

    The code-length table is counted at one byte per symbol it lists (it goes in the
    spec), so a small tensor with many symbols stays plain.
    """
    if u.size == 0 or u.size > _MAX_HUFFMAN_VALUES or bits > 16:
        return None
    counts = np.bincount(u.astype(np.int64), minlength=1 << bits)
    lengths = _code_lengths(counts)
    if lengths.max() > _MAX_CODE_LEN:
        return None
    listed = int(np.flatnonzero(lengths).max()) + 1
    coded = (int((counts * lengths).sum()) + 7) // 8
    if coded + listed >= plain:
        return None
    return lengths[:listed].tolist(), _huffman_encode(u.astype(np.int64), lengths)


# ---------------------------------------------------------------------------- codes
def _grid(x: np.ndarray) -> tuple[int, int, int] | None:
    r"""Return ``(t, k_min, b)`` with ``x = (k_min + u) 2^{-t}``, ``u < 2^b``, or ``None``.

    ``t`` is the smallest integer putting every value on the grid :math:`2^{-t}`: a value
    :math:`m 2^e` (:func:`numpy.frexp`, 53-bit significand :math:`M`) needs
    :math:`53 - e - \mathrm{tz}(M)` fractional bits, ``tz`` its trailing zero bits.
    """
    if x.dtype.kind in "iub":  # integers: codes are the values
        k = x.astype(np.int64).reshape(-1)
        if k.size == 0:
            return 0, 0, 0
        lo, hi = int(k.min()), int(k.max())
        bits = (hi - lo).bit_length()
        return (0, lo, bits) if bits <= _MAX_FIXED_BITS else None
    x = x.astype(np.float64).reshape(-1)
    if not np.isfinite(x).all() or bool(((x == 0) & np.signbit(x)).any()):
        return None  # no integer code holds inf, NaN or -0.0
    nz = x[x != 0]
    if nz.size == 0:
        return 0, 0, 0
    m, e = np.frexp(np.abs(nz))
    sig = (m * 2.0**53).astype(np.int64)
    low = sig & -sig  # the lowest set bit, a power of two
    tz = np.log2(low.astype(np.float64)).astype(np.int64)
    t = int((53 - e.astype(np.int64) - tz).max())
    k = np.ldexp(x, t)
    if np.abs(k).max() >= 2.0**62:
        return None
    k = k.astype(np.int64)
    lo, hi = int(k.min()), int(k.max())
    bits = (hi - lo).bit_length()
    return (t, lo, bits) if bits <= _MAX_FIXED_BITS else None


def _encode(value: torch.Tensor, entropy: bool = False) -> tuple[list, bytes]:
    """Return the cheapest lossless code of ``value`` and its bytes (module docstring)."""
    dtype = str(value.dtype).removeprefix("torch.")
    if dtype not in _DTYPES:
        raise TypeError(f"cannot pack a tensor of dtype {value.dtype}")
    x = value.detach().cpu().numpy().reshape(-1)
    if dtype == "bool":
        x = x.astype(np.int64)
    n = x.size
    candidates: list[tuple[int, list, Any]] = []
    if dtype != "bool":
        raw = x.astype(_NP[dtype]).tobytes()
        candidates.append((len(raw), ["raw"], raw))
    increasing = dtype in ("int64", "int32") and n > 0 and bool((np.diff(x) > 0).all())
    if increasing and int(x[-1]) - int(x[0]) < 64 * n:  # an index set: a bitmask
        lo, span = int(x[0]), int(x[-1]) - int(x[0]) + 1
        member = np.zeros(span, dtype=np.uint8)
        member[x - lo] = 1
        candidates.append((_nbytes(span, 1), ["set", lo, span], np.packbits(member).tobytes()))
    grid = _grid(x)
    if grid is not None:
        t, lo, bits = grid
        k = x.astype(np.int64) if x.dtype.kind in "iub" else np.ldexp(x, t).astype(np.int64)
        candidates.append(_symbols(["fixed", t, lo, bits], (k - lo).astype(np.uint64), entropy))
    if dtype.startswith("float") and n > 0:
        as32 = x.astype("<f4")
        exact = dtype == "float32" or np.array_equal(
            as32.astype(x.dtype).view(np.uint8), x.view(np.uint8)
        )
        # distinct bit patterns, so that -0.0 and every NaN payload keep their own entry
        patterns, index = np.unique(as32.view("<u4"), return_inverse=True)
        if len(patterns) <= _MAX_CODEBOOK and exact:
            bits = max(1, (len(patterns) - 1).bit_length())
            head = patterns.astype("<u4").tobytes()
            size, code, data = _symbols(
                ["codebook", len(patterns), bits], index.reshape(-1), entropy
            )
            candidates.append((len(head) + size, code, head + data))
    _, code, data = min(candidates, key=lambda c: c[0])
    return code, data


def _symbols(code: list, u: np.ndarray, entropy: bool) -> tuple[int, list, bytes]:
    """Return ``(bytes, code, data)`` of symbols ``u``: bit-packed, or Huffman-coded."""
    bits = code[-1]
    data = _pack_bits(u, bits)
    if entropy:
        coded = _with_entropy(u, bits, len(data))
        if coded is not None:
            lengths, data = coded
            return len(data) + len(lengths), [*code, lengths, len(data)], data
    return len(data), code, data


def _segment_bytes(dtype: str, n: int, code: list) -> int:
    """Return the byte length of a tensor's segment, from its (validated) code."""
    kind = code[0]
    if kind == "raw":
        return n * np.dtype(_NP[dtype]).itemsize
    if kind == "set":
        return _nbytes(code[2], 1)
    head = 4 * code[1] if kind == "codebook" else 0
    if _huffman_coded(code):  # its byte count is stored
        return head + code[-1]
    return head + _nbytes(n, _width(code))


def _read_symbols(code: list, data: bytes, n: int) -> np.ndarray:
    """Return the ``n`` symbols of a ``fixed`` or ``codebook`` segment."""
    if _huffman_coded(code):
        return _huffman_decode(data, n, np.asarray(code[-2], dtype=np.int64))
    return _unpack_bits(data, n, _width(code))


def _decode(dtype: str, shape: list[int], code: list, data: bytes) -> torch.Tensor:
    n = math.prod(shape)
    if code[0] == "raw":
        x = np.frombuffer(data, dtype=_NP[dtype]).copy()
    elif code[0] == "fixed":
        t, lo = code[1], code[2]
        k = _read_symbols(code, data, n).astype(np.int64) + lo
        x = np.ldexp(k.astype(np.float64), -t) if dtype.startswith("float") else k
    elif code[0] == "set":
        member = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=code[2])
        x = np.flatnonzero(member).astype(np.int64) + code[1]
        if x.size != n:
            raise ValueError(f"the index set has {x.size} members, the tensor {n}")
    else:
        size = code[1]
        book = np.frombuffer(data[: 4 * size], dtype="<f4")
        index = _read_symbols(code, data[4 * size :], n)
        if n and index.max() >= size:
            raise ValueError("a codebook index is out of range")
        x = book[index.astype(np.int64)]
    out = torch.from_numpy(np.ascontiguousarray(x)).reshape(shape)
    return out.to(_DTYPES[dtype])


# ---------------------------------------------------------------- the compact spec
def _positional(spec: dict) -> list | dict:
    """Return a module description as ``[type, *values]``, or as it is.

    Positional when the type is in :data:`_POSITIONAL` (trailing defaults cut).

    The dict descriptions of :func:`~pyrocompress.compress.files.describe_architecture`
    repeat every argument's name; in a file of a few hundred bytes the names would cost
    more than the weights of a small layer.
    """
    names = _POSITIONAL.get(spec["type"])
    if names is None or set(spec) - {"type"} - set(names):
        return spec
    values = [spec[n] for n in names if n in spec]
    if len(values) != len(spec) - 1 or any(n not in spec for n in names[: len(values)]):
        return spec
    params = inspect.signature(_class_named(spec["type"])).parameters
    while values and names[len(values) - 1] in params:
        default = params[names[len(values) - 1]].default
        if default is inspect.Parameter.empty or values[-1] != default:
            break
        values.pop()
    return [spec["type"], *values]


def _named(entry: object, p: Path) -> dict:
    """Inverse of :func:`_positional`."""
    if isinstance(entry, dict):
        return entry
    names = _POSITIONAL.get(entry[0]) if isinstance(entry, list) and entry else None
    if names is None or len(entry) - 1 > len(names):  # type: ignore[arg-type]
        raise ValueError(f"{p}: malformed module description {str(entry)[:60]} in the spec")
    assert isinstance(entry, list)
    return {"type": entry[0], **dict(zip(names, entry[1:], strict=False))}


def _compact_arch(arch: dict) -> dict:
    if "architecture" in arch:
        return {"architecture": [_positional(x) for x in arch["architecture"]]}
    return {**arch, "modules": {k: _positional(v) for k, v in arch["modules"].items()}}


def _expanded_arch(spec: dict, p: Path) -> dict:
    if "factory" not in spec:
        arch = spec.get("architecture")
        if not isinstance(arch, list):
            raise ValueError(f"{p}: the packed model's architecture is missing")
        return {"architecture": [_named(x, p) for x in arch]}
    modules = spec.get("modules")
    if not isinstance(modules, dict):
        raise ValueError(f"{p}: the packed model's modules are missing")
    return {
        "factory": spec.get("factory"),
        "factory_kwargs": spec.get("factory_kwargs"),
        "modules": {k: _named(v, p) for k, v in modules.items()},
    }


def _layout(state: dict[str, torch.Tensor]) -> int:
    """Return a checksum (CRC-32) of the state's names, dtypes and shapes, in order.

    Codes are matched to the rebuilt network's tensors by position; the checksum refuses
    a file whose network registers its tensors otherwise (another version of a factory),
    or in other dtypes.
    """
    text = ";".join(
        f"{k}:{str(v.dtype).removeprefix('torch.')}:{list(v.shape)}" for k, v in state.items()
    )
    return zlib.crc32(text.encode())


# ----------------------------------------------------------------------------- files
def save_packed(
    module: nn.Module,
    path: str | os.PathLike,
    *,
    factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None,
    entropy: bool = True,
    **metadata: Any,
) -> dict[str, Any]:
    """Write ``module`` as a packed file, atomically (module docstring).

    The file's bytes are those of :func:`packed_bytes`; see it for the parameters and the
    returned summary.

    Examples
    --------
    >>> import os, tempfile, torch
    >>> from torch import nn
    >>> from pyrocompress.compress import quantize_weights
    >>> net = quantize_weights(nn.Sequential(nn.Linear(3, 2)), {"0.weight": 4})  # grid 2^-4
    >>> path = os.path.join(tempfile.mkdtemp(), "model.packed")
    >>> info = save_packed(net, path)
    >>> info["tensors"]["0.weight"]["code"], info["bytes"] == os.path.getsize(path)
    ('fixed', True)
    >>> x = torch.randn(5, 3)
    >>> torch.equal(load_packed(path)(x), net(x))
    True
    """
    blob, info = packed_bytes(
        module, factory=factory, factory_kwargs=factory_kwargs, entropy=entropy, **metadata
    )
    atomic_write_bytes(blob, path)
    return info


def packed_bytes(
    module: nn.Module,
    *,
    factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None,
    entropy: bool = True,
    **metadata: Any,
) -> tuple[bytes, dict[str, Any]]:
    """Return the bytes of the packed file of ``module`` and a summary of them.

    Parameters
    ----------
    module
        The compact network: an ``nn.Sequential`` of modules with op rules, or (with
        ``factory``) an instance of the class the factory builds. Quantise it first
        (:meth:`~pyrocompress.PruneResult.quantized`) for fixed-point codes; the file is
        lossless for any network, but float32 weights off every coarse grid are stored
        raw.
    factory, factory_kwargs
        As for :func:`~pyrocompress.save_compact`.
    entropy
        Huffman-code the integer codes of every tensor where that makes it smaller
        (module docstring).
    **metadata
        JSON-serialisable entries stored in the spec (``packed_spec(path)["metadata"]``).

    Returns
    -------
    blob : bytes
        The file's bytes.
    summary : dict
        ``bytes`` (the file's size), ``payload_bytes`` (the tensors' codes),
        ``header_bytes`` (the rest: the safetensors header and the spec) and ``tensors``:
        per state entry its ``code`` and ``bits`` per value (mean bits when entropy-coded).

    Raises
    ------
    TypeError
        If a module cannot be described (as :func:`~pyrocompress.save_compact`), a tensor
        has a dtype no code covers, ``entropy`` is not a bool, or an ``nn.Sequential``
        holds tensors its modules would not rebuild (other dtypes: call ``.float()``).
    ValueError
        If the metadata or ``factory_kwargs`` are not JSON-serialisable.
    """
    from safetensors.numpy import save as st_save

    if not isinstance(entropy, bool):
        raise TypeError(f"entropy must be True or False, got {entropy!r}")
    arch = describe_architecture(
        module, factory=factory, factory_kwargs=factory_kwargs, tensors_in_state=True
    )
    state = module.state_dict()
    if factory is None:  # the modules rebuild themselves: check that they rebuild this
        rebuilt = _probe(arch, "the network", None)
        if _layout(rebuilt.state_dict()) != _layout(state):
            raise TypeError(
                "the network's tensors differ from those its modules build (names, dtypes "
                "or shapes): a packed file rebuilds float32 modules, so call .float() first"
            )
    names, codes, chunks, numels = [], [], [], []
    for name, value in state.items():
        code, data = _encode(value, entropy)
        names.append(name)
        codes.append(code)
        chunks.append(data)
        numels.append(value.numel())
    payload = b"".join(chunks)
    spec: dict[str, Any] = {**_compact_arch(arch), "codes": codes, "layout": _layout(state)}
    if metadata:
        spec["metadata"] = metadata
    try:
        text = json.dumps(spec, separators=(",", ":"))
    except TypeError as e:
        raise ValueError(f"metadata and factory_kwargs must be JSON-serialisable ({e})") from None
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=_SPEC_DICTIONARY)
    head = deflater.compress(text.encode()) + deflater.flush()  # raw DEFLATE ends itself
    blob = st_save(
        {_TENSOR: np.frombuffer(head + payload, dtype=np.uint8)},
        metadata={"format": FORMAT_PACKED},
    )
    return blob, {
        "bytes": len(blob),
        "payload_bytes": len(payload),
        "header_bytes": len(blob) - len(payload),
        "tensors": {
            name: {"code": code[0], "bits": _bits_per_value(code, len(data), n)}
            for name, code, data, n in zip(names, codes, chunks, numels, strict=True)
        },
    }


def _probe(arch: dict, p: object, factory) -> nn.Module:
    """Build the architecture on the meta device: its tensors' shapes, no memory, no draws."""
    with torch.device("meta"):
        return build_architecture(arch, p, factory=factory)


def _bits_per_value(code: list, nbytes: int, n: int) -> float:
    """Bits per value of a segment: its code's width, or its mean when entropy-coded."""
    if code[0] == "codebook":
        nbytes -= 4 * code[1]
    if code[0] in ("raw", "set") or _huffman_coded(code):
        return 8.0 * nbytes / max(n, 1)
    return float(_width(code))


def _read(path: str | os.PathLike) -> tuple[dict, bytes]:
    """Return the validated spec and the packed bytes of a packed file."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"packed model {p} not found")
    raw = p.read_bytes()
    try:
        tensors = st_load(raw)
        header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
        meta = header.get("__metadata__") or {}
    except (SafetensorError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise ValueError(f"{p} is not a readable safetensors file ({e})") from None
    if meta.get("format") != FORMAT_PACKED or set(tensors) != {_TENSOR}:
        raise ValueError(f"{p} is not a pyrocompress packed model (format {FORMAT_PACKED})")
    if tensors[_TENSOR].dtype != np.uint8 or tensors[_TENSOR].ndim != 1:
        raise ValueError(f"{p}: the packed bytes are not a one-dimensional uint8 tensor")
    inflate = zlib.decompressobj(-15, zdict=_SPEC_DICTIONARY)
    try:
        text = inflate.decompress(tensors[_TENSOR].tobytes(), _MAX_SPEC)
        if not inflate.eof:
            raise ValueError("truncated, or longer than a spec can be")
        spec = json.loads(text)
    except (zlib.error, ValueError, RecursionError) as e:
        raise ValueError(f"{p}: the packed model's spec is corrupt ({e})") from None
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("codes"), list)
        or not _is_int(spec.get("layout"), 0, 2**32 - 1)
    ):
        raise ValueError(f"{p}: the packed model's spec is malformed")
    return spec, inflate.unused_data


def _is_int(v: object, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _check_code(code: object, dtype: str, n: int, name: str, p: Path) -> list:
    """Validate the code of state entry ``name`` (``n`` values of ``dtype``); return it."""
    if not (isinstance(code, list) and code and code[0] in _KINDS):
        raise ValueError(f"{p}: malformed code {str(code)[:60]} for {name!r} in the spec")
    kind, fields = code[0], code[1:]
    plain = _KINDS[kind].fields
    huffman = _KINDS[kind].huffman and len(fields) == plain + 2
    ok = len(fields) == plain or huffman
    if ok and kind == "raw":
        ok = dtype in _NP
    elif ok and kind == "set":
        ok = (
            dtype in ("int64", "int32")
            and _is_int(fields[0], -(2**63), 2**63 - 1)
            and _is_int(fields[1], 1, 2**34)
        )
    elif ok and kind == "fixed":
        ok = (
            _is_int(fields[0], -1100, 1100)
            and _is_int(fields[1], -(2**63), 2**63 - 1)
            and _is_int(fields[2], 0, _MAX_FIXED_BITS)
        )
    elif ok:  # codebook
        ok = (
            dtype.startswith("float")
            and _is_int(fields[0], 1, _MAX_CODEBOOK)
            and _is_int(fields[1], 1, 16)
        )
    if ok and huffman:  # the code lengths of a prefix code (Kraft), and the coded bytes
        lengths, nbytes = fields[plain], fields[plain + 1]
        ok = (
            n <= _MAX_HUFFMAN_VALUES
            and isinstance(lengths, list)
            and 0 < len(lengths) <= (1 << min(fields[plain - 1], 16))
            and all(_is_int(v, 0, _MAX_CODE_LEN) for v in lengths)
            and any(lengths)
            and _is_int(nbytes, 0, 2**40)
            and sum(2.0**-v for v in lengths if v) <= 1.0
        )
    if not ok:
        raise ValueError(f"{p}: malformed code {str(code)[:60]} for {name!r} in the spec")
    return code


def packed_spec(path: str | os.PathLike) -> dict[str, Any]:
    """Return the spec of a packed file: architecture, tensor codes and metadata.

    Parameters
    ----------
    path
        A file written by :func:`save_packed`.

    Returns
    -------
    dict
        The architecture (``architecture``, or ``factory``, ``factory_kwargs`` and
        ``modules``; each module as ``[type, *arguments]`` or by name), ``codes`` (one per
        entry of the rebuilt network's ``state_dict``, in its order: ``["raw"]``,
        ``["set", first, span]``, ``["fixed", t, k_min, b]`` or ``["codebook", K, b]``, the
        last two followed by the Huffman code lengths and byte count when entropy-coded),
        ``layout`` (a CRC-32 of the state's names, dtypes and shapes) and ``metadata``.

    Raises
    ------
    ValueError
        If the file is not a valid packed model.
    """
    return _read(path)[0]


def load_packed(
    path: str | os.PathLike, *, factory: Callable[..., nn.Module] | str | None = None
) -> nn.Module:
    """Rebuild the network written by :func:`save_packed`.

    The architecture is first built on the meta device (no memory, no random draws), and
    every code and segment length is checked against it, before the network is built for
    real (with torch's global random state left as it was) and the tensors are decoded.

    Parameters
    ----------
    path
        The file.
    factory
        For a network rebuilt by a factory: as for :func:`~pyrocompress.load_compact`.

    Returns
    -------
    torch.nn.Module
        The network in eval mode; its outputs equal the saved network's exactly.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a packed model, is truncated or corrupt, names an unknown
        module type, a factory that is neither trusted nor given, or tensors that do not
        match the architecture. No code stored in the file is executed: only the
        registered module classes and a trusted (or given) factory are called, with the
        file's arguments.

    Examples
    --------
    A round trip of a pruned network with its weights on their fixed-point grids, in a
    temporary folder:

    >>> import os, tempfile, torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
    >>> result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=X)
    >>> net = result.quantized()
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.packed")
    ...     info = pc.save_packed(net, path)
    ...     size = os.path.getsize(path)
    ...     loaded = pc.load_packed(path)
    >>> info["bytes"] == size, loaded.training
    (True, False)
    >>> torch.equal(loaded(X), net(X))
    True
    """
    p = Path(path)
    spec, body = _read(p)
    arch = _expanded_arch(spec, p)
    target = _probe(arch, p, factory).state_dict()
    if len(target) != len(spec["codes"]) or _layout(target) != spec["layout"]:
        raise ValueError(
            f"{p}: the file's tensors (names, dtypes, shapes) differ from those of the "
            "architecture it names: another version of its factory, a network saved in "
            "another dtype than the factory builds (float32), or a corrupt file"
        )
    layout, total, free = [], 0, 0
    for (name, ref), code in zip(target.items(), spec["codes"], strict=True):
        dtype = str(ref.dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            raise ValueError(f"{p}: the architecture's {name!r} has dtype {dtype}")
        code = _check_code(code, dtype, ref.numel(), name, p)
        size = _segment_bytes(dtype, ref.numel(), code)
        free += ref.numel() if size == 0 else 0
        layout.append((name, dtype, list(ref.shape), code, total, size))
        total += size
    if free > _MAX_FREE_VALUES:
        raise ValueError(
            f"{p}: the file declares {free} values of zero-width codes, more than the "
            f"{_MAX_FREE_VALUES} a packed model may hold (a corrupt or crafted file)"
        )
    if total != len(body):
        raise ValueError(
            f"{p}: the packed bytes are {len(body)} long, the architecture needs {total} "
            "(a truncated or corrupt file)"
        )
    state = {}
    for name, dtype, shape, code, offset, size in layout:
        try:
            state[name] = _decode(dtype, shape, code, body[offset : offset + size])
        except ValueError as e:
            raise ValueError(f"{p}: tensor {name!r}: {e}") from None
    module = build_architecture(arch, p, factory=factory)
    module.load_state_dict(state, strict=True)
    return module.eval()
