r"""ONNX export of a compact network, checked against torch, and its latency under ONNX Runtime.

:func:`export_onnx` writes the plain network :func:`~pyrocompress.prune` returns (an
``nn.Sequential`` of plain modules, or an instance of the user's own class with fewer
channels) as an ONNX file that any ONNX runtime serves without torch or pyrocompress;
:func:`onnx_latency` times it under ONNX Runtime side by side with torch.

The exporter is torch's ``torch.export``-based one (``torch.onnx.export(..., dynamo=True)``,
the default since torch 2.9): it captures the network with :func:`torch.export.export`
(non-strict), lowers it to ATen operators and translates them with ONNX Script's
``torchlib``, at opset :data:`OPSET`. The batch axis is a symbolic dimension (``"batch"``),
so one file serves batches of any size, one included. The legacy TorchScript exporter
(``dynamo=False``) also handles these networks but is deprecated and warns on every call.
:class:`~pyrocompress.compress.SelectFeatures` becomes an ONNX ``GatherElements`` whose
index is the stored indices expanded to the batch; BatchNorm (eval mode) is folded into
arithmetic on its running statistics.

The check runs the exported graph with ONNX Runtime's CPU provider on the example and on
a random batch of another size, and compares it with the torch module in float32 (the
maximum absolute difference, :math:`\max_i |y^{\text{onnx}}_i - y^{\text{torch}}_i|`);
the file is written, through a temporary file and :func:`os.replace`, only after the
check passed, so that a failed export or check never leaves a file behind.

``onnx`` and ``onnxruntime`` (and ``onnxscript``, which the exporter uses) are optional
dependencies, imported only when these functions run: ``pip install 'pyrocompress[onnx]'``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyrocompress.constraints import Constraint
from pyrocompress.infer.checkpoint import atomic_write_bytes
from pyrocompress.rng import intra_op_threads

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "export_onnx", "onnx_bytes", "onnx_latency"]

#: The ONNX operator set the files are written at (the torch 2.14 exporter's default,
#: stated so that a torch upgrade does not change the files; ONNX Runtime >= 1.17 runs it).
OPSET = 20
#: The names of the graph's input and output.
INPUT_NAME, OUTPUT_NAME = "input", "output"
#: The name of the symbolic batch dimension.
BATCH_DIM = "batch"

_INSTALL = "pip install 'pyrocompress[onnx]'"
_ATOL = Constraint("real", low=0, example="1e-5")
_OPSET = Constraint("integer", low=18, example=str(OPSET))
_POSITIVE = Constraint("integer", low=1, example="1")
_REPEATS = Constraint("integer", low=1, example="25")
_WARMUP = Constraint("integer", low=0, example="3")


# ------------------------------------------------------------------------- helpers
def _require(name: str) -> Any:
    """Import an optional dependency, or raise ``ImportError`` saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(
            f"ONNX export and timing need the optional package {name!r}: {_INSTALL}"
        ) from e


@contextlib.contextmanager
def _eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Put the modules in eval mode, and give every submodule its training flag back."""
    flags = [(m, m.training) for module in modules if module is not None for m in module.modules()]
    try:
        for module in modules:
            if module is not None:
                module.eval()
        yield
    finally:
        for m, training in flags:
            m.training = training


def _check_module(label: str, module: Any) -> nn.Module:
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"{label} must be a torch.nn.Module (e.g. pc.prune(...).module); "
            f"got {type(module).__name__}"
        )
    return module


def _check_cpu(label: str, module: nn.Module) -> None:
    tensors = [*module.parameters(), *module.buffers()]
    if any(t.device.type != "cpu" for t in tensors):
        raise ValueError(f"{label} must be on the CPU: pass {label}.cpu()")


def _check_bool(label: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{label} must be True or False; got {type(value).__name__}")
    return value


def _check_example(example: Any) -> torch.Tensor:
    if not isinstance(example, torch.Tensor):
        raise TypeError(
            "example must be a torch.Tensor, a batch of inputs of shape (batch, ...); "
            f"got {type(example).__name__}"
        )
    if example.dtype != torch.float32:
        raise ValueError(
            f"example must be float32 (the exported graph and its check are float32); got "
            f"{example.dtype}: pass example.float()"
        )
    if example.dim() < 1 or example.shape[0] < 1:
        raise ValueError(
            "example must be a non-empty batch whose first dimension is the batch, e.g. "
            f"shape (8, 1, 28, 28); got shape {tuple(example.shape)}"
        )
    if not bool(torch.isfinite(example).all()):
        raise ValueError("example must be finite (no NaN or infinity)")
    return example


def _check_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path must be a file name, not the folder {path}: e.g. {path}/model.onnx")
    if not path.parent.is_dir():
        raise ValueError(f"path's folder {path.parent} does not exist: create it first")
    return path


def _other_batch(example: torch.Tensor, dynamic_batch: bool) -> torch.Tensor:
    """Return a random batch like ``example``: its mean and spread, another size if dynamic.

    Drawn from a local generator (the global random state is untouched): batch 1 for an
    example of several, 5 for an example of one.
    """
    size = (1 if example.shape[0] > 1 else 5) if dynamic_batch else example.shape[0]
    loc = float(example.mean())
    scale = float(example.std(correction=0))
    if not math.isfinite(scale) or scale == 0.0:
        scale = 1.0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(size, *example.shape[1:], generator=g)
    return (loc + scale * x).to(example.device)


def _torch_output(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = module(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"module must return one tensor to be exported; it returned {type(out).__name__}"
        )
    return out


def _export_bytes(
    module: nn.Module, example: torch.Tensor, dynamic_batch: bool, opset: int
) -> tuple[Any, bytes]:
    """Export with the ``torch.export``-based exporter; return the model proto and bytes."""
    shapes = ({0: torch.export.Dim(BATCH_DIM)},) if dynamic_batch else None
    try:
        program = torch.onnx.export(
            module,
            (example,),
            None,
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_shapes=shapes,
            optimize=True,
            verbose=False,
        )
    except Exception as e:  # the exporter raises many types; one message with a fix
        hint = (
            "; if the network fixes its batch size, pass dynamic_batch=False"
            if dynamic_batch
            else ""
        )
        raise RuntimeError(
            f"torch.onnx.export could not export the {type(module).__name__}: "
            f"{type(e).__name__}: {e}{hint}"
        ) from e
    if program is None:  # only the legacy exporter returns None
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    proto = program.model_proto
    try:
        data = proto.SerializeToString()
    except ValueError as e:  # protobuf's 2 GiB limit
        raise ValueError(
            f"the {type(module).__name__} is too large for one ONNX file (2 GiB): {e}"
        ) from e
    return proto, data


def _opset_of(proto: Any) -> int:
    return next(int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _session(model: bytes | str, threads: int | None = None) -> Any:
    """Open an ONNX Runtime CPU session: ``threads`` intra-op threads, sequential execution."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def _check_agreement(
    module: nn.Module, data: bytes, inputs: Sequence[torch.Tensor], atol: float
) -> float:
    """Run the graph and the module on each input; return the largest absolute difference.

    Raises ``RuntimeError`` where a shape differs or the difference exceeds ``atol``.
    """
    session = _session(data)
    name = session.get_inputs()[0].name
    worst = 0.0
    for x in inputs:
        ref = _torch_output(module, x).detach().float().cpu()
        (got,) = session.run(None, {name: x.detach().cpu().numpy()})
        worst = max(worst, _compare(torch.from_numpy(got), ref, atol, "the ONNX graph", "torch"))
    return worst


def _compare(got: torch.Tensor, ref: torch.Tensor, atol: float, what: str, versus: str) -> float:
    """Return the largest absolute difference of an exported output ``got`` from ``ref``.

    ``RuntimeError`` (saying nothing was written) where the shapes differ or the difference
    exceeds ``atol`` (NaN included); ``what`` and ``versus`` name the two in the message.
    """
    batch = ref.shape[0] if ref.dim() else 0
    if tuple(got.shape) != tuple(ref.shape):
        raise RuntimeError(
            f"{what} gives shape {tuple(got.shape)} for a batch of {batch}, "
            f"torch {tuple(ref.shape)}: nothing was written"
        )
    diff = float((got - ref).abs().max()) if ref.numel() else 0.0
    if not diff <= atol:  # NaN disagrees too
        raise RuntimeError(
            f"{what} disagrees with {versus} on a batch of {batch}: max absolute "
            f"difference {diff:.3g} > atol {atol:g}; nothing was written (raise atol if "
            "the outputs are large, float32 rounding grows with them)"
        )
    return diff


# ---------------------------------------------------------------------------- export
def export_onnx(
    module: nn.Module,
    path: str | os.PathLike,
    example: torch.Tensor,
    *,
    check: bool = True,
    atol: float = 1e-5,
    dynamic_batch: bool = True,
    opset: int = OPSET,
) -> dict[str, Any]:
    r"""Export a compact network to an ONNX file, checked against torch under ONNX Runtime.

    The module is exported in eval mode (every submodule's training flag is given back
    after) with torch's ``torch.export``-based exporter (module docstring); the graph has
    one input ``"input"`` whose first axis is the symbolic ``"batch"`` and one output
    ``"output"``. With ``check``, ONNX's checker validates the graph and ONNX Runtime's CPU
    provider runs it on ``example`` and on a random batch of another size (batch 1, or 5
    for an example of one; the example's mean and spread, from a fixed local generator),
    and each output must be within ``atol`` of torch's:

    .. math::
        \max_i \bigl|y^{\text{onnx}}_i - y^{\text{torch}}_i\bigr| \le \text{atol}.

    The file is written only then, through a temporary file in its folder and
    :func:`os.replace`: on any error nothing is left at ``path`` (a file already there is
    kept as it was).

    Parameters
    ----------
    module
        The network, e.g. ``pc.prune(...).module``, on the CPU or the example's device;
        it must return one tensor.
    path
        The ``.onnx`` file to write; its folder must exist.
    example
        A float32 batch of inputs, first axis the batch, e.g. a few validation examples.
    check
        Validate the graph and compare it with torch (default); ``False`` only exports.
    atol
        The largest absolute difference allowed. Float32 networks evaluated in another
        order (fused, reassociated kernels) differ by a few units of the last place times
        the size of the outputs: about ``1e-6`` for outputs of order one.
    dynamic_batch
        A symbolic batch axis (default); ``False`` fixes the example's batch size, for a
        network whose code fixes it.
    opset
        The ONNX operator set, at least 18 (the exporter's translations start there).

    Returns
    -------
    dict
        ``path`` (str), ``opset`` (int), ``max_abs_diff`` (float, the largest difference
        over both batches; ``None`` without ``check``), ``batch_sizes`` (the batch sizes
        checked), ``bytes`` (the file size).

    Raises
    ------
    TypeError
        If ``module`` is not an ``nn.Module``, ``example`` not a tensor, ``path`` not a
        path, a flag not a bool, or the module returns something other than a tensor.
    ValueError
        If ``example`` is not a non-empty finite float32 batch, ``path`` is a folder or in
        a folder that does not exist, ``atol`` is not a number >= 0, ``opset`` < 18, or
        the network exceeds ONNX's 2 GiB limit.
    RuntimeError
        If the exporter fails, or the graph disagrees with torch (nothing written).
    ImportError
        If ``onnx``, ``onnxscript`` or (with ``check``) ``onnxruntime`` is missing.

    Examples
    --------
    Skipped by the doctests, which run without the optional packages; the same calls are
    tested in ``tests/compress/test_onnx.py``.

    >>> import tempfile, torch, pyrocompress as pc
    >>> from pyrocompress.compress.onnx import export_onnx
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> with tempfile.TemporaryDirectory() as d:  # doctest: +SKIP
    ...     info = export_onnx(net, f"{d}/net.onnx", torch.randn(8, 4))
    >>> info["opset"], info["batch_sizes"], info["max_abs_diff"] <= 1e-5  # doctest: +SKIP
    (20, [8, 1], True)
    """
    path = _check_path(path)
    data, info = onnx_bytes(
        module, example, check=check, atol=atol, dynamic_batch=dynamic_batch, opset=opset
    )
    atomic_write_bytes(data, path)
    return {"path": str(path), **info}


def onnx_bytes(
    module: nn.Module,
    example: torch.Tensor,
    *,
    check: bool = True,
    atol: float = 1e-5,
    dynamic_batch: bool = True,
    opset: int = OPSET,
) -> tuple[bytes, dict[str, Any]]:
    """Return the ONNX file of ``module`` as bytes, checked as :func:`export_onnx` checks it.

    Parameters
    ----------
    module, example, check, atol, dynamic_batch, opset
        As for :func:`export_onnx`.

    Returns
    -------
    data : bytes
        The serialised ONNX model.
    info : dict
        ``opset``, ``max_abs_diff`` (``None`` without ``check``), ``batch_sizes`` checked
        and ``bytes``.

    Raises
    ------
    TypeError, ValueError, RuntimeError, ImportError
        As :func:`export_onnx`.
    """
    module = _check_module("module", module)
    example = _check_example(example)
    check = _check_bool("check", check)
    dynamic_batch = _check_bool("dynamic_batch", dynamic_batch)
    atol = float(_ATOL.check("atol", atol))
    opset = int(_OPSET.check("opset", opset))
    onnx = _require("onnx")
    _require("onnxscript")  # the exporter's translation library
    if check:
        _require("onnxruntime")
    with _eval_mode(module), torch.no_grad():
        _torch_output(module, example)  # a clear error before the exporter's
        proto, data = _export_bytes(module, example, dynamic_batch, opset)
        diff, sizes = None, []
        if check:
            try:
                onnx.checker.check_model(proto)
            except onnx.checker.ValidationError as e:
                raise RuntimeError(f"the exported ONNX graph is invalid: {e}") from e
            inputs = [example, _other_batch(example, dynamic_batch)]
            diff = _check_agreement(module, data, inputs, atol)
            sizes = [int(x.shape[0]) for x in inputs]
    return data, {
        "opset": _opset_of(proto),
        "max_abs_diff": diff,
        "batch_sizes": sizes,
        "bytes": len(data),
    }


# --------------------------------------------------------------------------- latency
def _input_shape(session: Any, batch_sizes: Sequence[int], onnx_path: Path) -> list[int]:
    """Return the per-example input shape of the graph; check that it takes those batch sizes."""
    (graph_input,) = session.get_inputs()
    if graph_input.type != "tensor(float)":
        raise ValueError(
            f"onnx_path {onnx_path} takes {graph_input.type}; onnx_latency feeds float32 "
            "batches (export with export_onnx)"
        )
    batch, *rest = graph_input.shape
    if not all(isinstance(d, int) for d in rest):
        raise ValueError(
            f"onnx_path {onnx_path} has symbolic dimensions besides the batch "
            f"{graph_input.shape}: export it with a fixed example shape (export_onnx)"
        )
    if isinstance(batch, int) and any(b != batch for b in batch_sizes):
        raise ValueError(
            f"onnx_path {onnx_path} has a fixed batch of {batch}: export it with "
            "dynamic_batch=True, or pass example_batch_sizes=({batch},)"
        )
    return rest


def _median_ms(calls: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, float]:
    """Return the median wall time of each call, in milliseconds, calls interleaved.

    After ``warmup`` untimed rounds, each of ``repeats`` rounds times every call once,
    the order rotated by one each round, so that a slow drift of the machine (another
    process, the clock) falls on all of them alike.
    """
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(t) for name, t in times.items()}


def onnx_latency(
    module: nn.Module,
    onnx_path: str | os.PathLike,
    example_batch_sizes: Sequence[int] = (1, 1000),
    *,
    repeats: int = 25,
    warmup: int = 3,
    dense: nn.Module | None = None,
    threads: int = 1,
) -> list[dict[str, Any]]:
    """Time an ONNX file under ONNX Runtime side by side with torch, per batch size.

    For each batch size a random float32 batch of the graph's input shape (standard
    normal, from a fixed local generator) goes through, in rotating order: the ONNX graph
    (ONNX Runtime, CPU provider, ``threads`` intra-op threads, sequential execution),
    ``module`` under torch, and ``dense`` under torch when given; each ``repeats`` times
    after ``warmup`` untimed rounds, under :func:`torch.no_grad` with
    ``torch.set_num_threads(threads)``. The caller's number of torch threads and the
    modules' training flags are restored afterwards.

    Parameters
    ----------
    module
        The torch network the file was exported from (the compact network), on the CPU.
    onnx_path
        An ONNX file written by :func:`export_onnx`.
    example_batch_sizes
        The batch sizes to time.
    repeats
        Timed calls of each network per batch size; the median is reported.
    warmup
        Untimed rounds before (allocations, ONNX Runtime's first-run planning).
    dense
        The network before pruning, to time with torch beside the compact one, or ``None``.
    threads
        Threads of both runtimes (1: a single core, comparable across machines).

    Returns
    -------
    list of dict
        One per batch size: ``batch_size``, ``onnx_ms`` (ONNX Runtime), ``torch_ms``
        (``module`` under torch), ``dense_ms`` (``dense`` under torch, ``None`` without
        it), the medians in milliseconds, and ``threads``, ``repeats``.

    Raises
    ------
    TypeError
        If ``module`` or ``dense`` is not an ``nn.Module``, or ``onnx_path`` not a path.
    ValueError
        If the file does not exist or does not take float32 batches of the given sizes, a
        batch size, ``repeats`` or ``threads`` is not an integer >= 1, ``warmup`` < 0, or
        a module is not on the CPU.
    ImportError
        If ``onnxruntime`` is missing.
    """
    module = _check_module("module", module)
    _check_cpu("module", module)
    if dense is not None:
        dense = _check_module("dense", dense)
        _check_cpu("dense", dense)
    if not isinstance(onnx_path, (str, os.PathLike)):
        raise TypeError(f"onnx_path must be a str or os.PathLike; got {type(onnx_path).__name__}")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ValueError(f"onnx_path {onnx_path} is not a file: write it with export_onnx")
    if isinstance(example_batch_sizes, (str, bytes)) or not isinstance(
        example_batch_sizes, Sequence
    ):
        raise TypeError(
            "example_batch_sizes must be a sequence of integers, e.g. (1, 1000); got "
            f"{type(example_batch_sizes).__name__}"
        )
    if not example_batch_sizes:
        raise ValueError("example_batch_sizes must name at least one batch size, e.g. (1, 1000)")
    sizes = [int(_POSITIVE.check("example_batch_sizes[]", b)) for b in example_batch_sizes]
    repeats = int(_REPEATS.check("repeats", repeats))
    warmup = int(_WARMUP.check("warmup", warmup))
    threads = int(_POSITIVE.check("threads", threads))
    session = _session(str(onnx_path), threads)
    name = session.get_inputs()[0].name
    shape = _input_shape(session, sizes, onnx_path)
    g = torch.Generator().manual_seed(0)
    rows = []
    with intra_op_threads(threads), _eval_mode(module, dense), torch.no_grad():
        for b in sizes:
            x = torch.randn(b, *shape, generator=g)
            feed = {name: x.numpy()}
            calls: dict[str, Callable[[], Any]] = {
                "onnx": lambda feed=feed: session.run(None, feed),
                "torch": lambda x=x: module(x),
            }
            if dense is not None:
                calls["dense"] = lambda x=x, dense=dense: dense(x)
            ms = _median_ms(calls, repeats, warmup)
            rows.append(
                {
                    "batch_size": b,
                    "onnx_ms": ms["onnx"],
                    "torch_ms": ms["torch"],
                    "dense_ms": ms.get("dense"),
                    "threads": threads,
                    "repeats": repeats,
                }
            )
    return rows
