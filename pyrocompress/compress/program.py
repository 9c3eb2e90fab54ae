r"""The compact network as a ``torch.export`` program (``model.pt2``), loadable with torch alone.

:func:`export_program` writes the plain network :func:`~pyrocompress.prune` returns (an
``nn.Sequential`` of plain modules, :class:`~pyrocompress.compress.SelectFeatures`
included, or an instance of the user's own class with fewer channels) as an
:class:`~torch.export.ExportedProgram` file: the network's graph of ATen operators with its
weights. Unlike ``model.pt`` (:func:`~pyrocompress.save_compact`, a pickle of the modules)
it names no Python class, so it loads where neither pyrocompress nor the user's model code
is installed::

    import torch
    net = torch.export.load("model.pt2").module()
    y = net(x)                        # any batch size

The program is captured with :func:`torch.export.export` (non-strict) in eval mode, with
the first input dimension a symbolic :class:`torch.export.Dim` named ``"batch"``, so that one
file serves batches of any size (an example of one is traced as a batch of two, since
torch specialises a dimension of size one to a constant). BatchNorm runs on its running
statistics. The loaded module is the inference graph: it is always in eval mode, and
torch refuses ``.eval()`` and ``.train()`` on it (``NotImplementedError``).

The check loads the saved bytes back with :func:`torch.export.load` and runs the program
on the example and on a random batch of another size, and compares it with the module
(:math:`\max_i |y^{\text{program}}_i - y^{\text{torch}}_i| \le` ``atol``); the file is
written, through a temporary file and :func:`os.replace`, only after the check passed, so
that a failed export or check never leaves a file behind.

A file loads with any torch whose serialised-program schema has the same major version
(``torch._export.serde.schema.SCHEMA_VERSION``; torch 2.14 writes 8.x), on the device it
was exported on (the CPU for ``pc.prune(...).module``).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyrocompress.compress.onnx import (
    _ATOL,
    _check_bool,
    _check_example,
    _check_module,
    _compare,
    _eval_mode,
    _other_batch,
    _torch_output,
)
from pyrocompress.infer.checkpoint import atomic_write_bytes

__all__ = ["BATCH_DIM", "export_program", "load_program", "program_bytes"]

#: The name of the symbolic batch dimension.
BATCH_DIM = "batch"


def _check_path(label: str, path: Any, *, exists: bool) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{label} must be a str or os.PathLike; got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"{label} must be a file name, not the folder {path}: e.g. {path}/model.pt2"
        )
    if exists and not path.is_file():
        raise ValueError(f"{label} {path} is not a file: write it with export_program")
    if not exists and not path.parent.is_dir():
        raise ValueError(f"{label}'s folder {path.parent} does not exist: create it first")
    return path


def _trace_input(example: torch.Tensor, dynamic_batch: bool) -> torch.Tensor:
    """Return the batch to trace: the example, doubled where it is one example of a dynamic batch.

    torch specialises a dimension of size one to the constant 1 (it cannot tell whether the
    code relies on it being one), which contradicts a symbolic batch.
    """
    if dynamic_batch and example.shape[0] == 1:
        return torch.cat([example, example])
    return example


def _export(module: nn.Module, example: torch.Tensor, dynamic_batch: bool) -> bytes:
    """Capture the module with :func:`torch.export.export` and return the saved program."""
    shapes = ({0: torch.export.Dim(BATCH_DIM)},) if dynamic_batch else None
    # the program file keeps its example inputs, storage and all: a copy of two rows (or the
    # fixed batch) and not a view, which would carry the whole tensor it was sliced from
    # (64 validation rows of MNIST sliced from 10,000 made a 16 MB model.pt2)
    sample = _trace_input(example, dynamic_batch)
    sample = (sample[:2] if dynamic_batch else sample).detach().clone()
    try:
        program = torch.export.export(module, (sample,), dynamic_shapes=shapes, strict=False)
    except Exception as e:  # torch.export raises many types; one message with a fix
        hint = (
            "; if the network fixes its batch size, pass dynamic_batch=False"
            if dynamic_batch
            else ""
        )
        raise RuntimeError(
            f"torch.export.export could not capture the {type(module).__name__}: "
            f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            f"{hint}"
        ) from e
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _check_agreement(
    module: nn.Module, data: bytes, inputs: Sequence[torch.Tensor], atol: float
) -> float:
    """Load the saved program, run it and the module on each input; return the largest difference.

    Raises ``RuntimeError`` where the program does not load or run, a shape differs, or the
    difference exceeds ``atol``.
    """
    try:
        loaded = torch.export.load(io.BytesIO(data)).module()
    except Exception as e:
        raise RuntimeError(
            f"the saved program does not load back: {type(e).__name__}: {e}; nothing was written"
        ) from e
    worst = 0.0
    for x in inputs:
        ref = _torch_output(module, x).detach().float()
        try:
            got = loaded(x)
        except Exception as e:
            raise RuntimeError(
                f"the saved program fails on a batch of {x.shape[0]}: {type(e).__name__}: {e}; "
                "nothing was written"
            ) from e
        if not isinstance(got, torch.Tensor):
            raise RuntimeError(
                f"the saved program returns {type(got).__name__}, not a tensor: nothing was written"
            )
        diff = _compare(got.detach().float(), ref, atol, "the saved program", "the module")
        worst = max(worst, diff)
    return worst


def program_bytes(
    module: nn.Module,
    example: torch.Tensor,
    *,
    check: bool = True,
    atol: float = 1e-5,
    dynamic_batch: bool = True,
) -> tuple[bytes, dict[str, Any]]:
    r"""Return the ``torch.export`` program of ``module`` as bytes, checked against the module.

    The module is captured in eval mode (every submodule's training flag is given back
    after) with :func:`torch.export.export`, its first input dimension the symbolic
    ``"batch"``, and saved with :func:`torch.export.save`. With ``check``, the bytes are
    loaded back with :func:`torch.export.load` and the program runs on ``example`` and on
    a random batch of another size (batch 1, or 5 for an example of one; the example's
    mean and spread, from a fixed local generator: the global random state is untouched);
    each output must be within ``atol`` of the module's:

    .. math::
        \max_i \bigl|y^{\text{program}}_i - y^{\text{torch}}_i\bigr| \le \text{atol}.

    Parameters
    ----------
    module
        The network, e.g. ``pc.prune(...).module``, on the example's device (the program
        is tied to it); it must return one tensor.
    example
        A float32 batch of inputs, first axis the batch, e.g. a few validation examples.
    check
        Load the program back and compare it with the module (default); ``False`` only
        exports.
    atol
        The largest absolute difference allowed. The program runs the same ATen kernels as
        the module, so the two agree to the last place but for kernels that choose their
        order of summation by the batch size: about ``1e-6`` for outputs of order one.
    dynamic_batch
        A symbolic batch dimension (default); ``False`` fixes the example's batch size,
        for a network whose code fixes it.

    Returns
    -------
    data : bytes
        The ``.pt2`` file (a zip archive :func:`torch.export.load` reads).
    info : dict
        ``max_abs_diff`` (float, the largest difference over both batches; ``None``
        without ``check``), ``batch_sizes`` (the batch sizes checked), ``bytes`` (the size
        of ``data``) and ``torch_version`` (the torch that wrote it).

    Raises
    ------
    TypeError
        If ``module`` is not an ``nn.Module``, ``example`` not a tensor, a flag not a bool,
        or the module returns something other than a tensor.
    ValueError
        If ``example`` is not a non-empty finite float32 batch or ``atol`` is not a number
        >= 0.
    RuntimeError
        If :func:`torch.export.export` cannot capture the module, or the saved program
        does not load, fails, or disagrees with the module.
    """
    module = _check_module("module", module)
    example = _check_example(example)
    check = _check_bool("check", check)
    dynamic_batch = _check_bool("dynamic_batch", dynamic_batch)
    atol = float(_ATOL.check("atol", atol))
    with _eval_mode(module):
        with torch.no_grad():
            _torch_output(module, example)  # a clear error before torch.export's
        data = _export(module, example, dynamic_batch)
        diff, sizes = None, []
        if check:
            inputs = [example, _other_batch(example, dynamic_batch)]
            with torch.no_grad():
                diff = _check_agreement(module, data, inputs, atol)
            sizes = [int(x.shape[0]) for x in inputs]
    return data, {
        "max_abs_diff": diff,
        "batch_sizes": sizes,
        "bytes": len(data),
        "torch_version": torch.__version__,
    }


def export_program(
    module: nn.Module,
    path: str | os.PathLike,
    example: torch.Tensor,
    *,
    check: bool = True,
    atol: float = 1e-5,
    dynamic_batch: bool = True,
) -> dict[str, Any]:
    """Write ``module`` as a ``torch.export`` program file (``model.pt2``), checked first.

    The bytes are :func:`program_bytes`'s; they are written only after its check passed,
    through a temporary file in the folder and :func:`os.replace`: on any error nothing is
    left at ``path`` (a file already there is kept as it was).

    Parameters
    ----------
    module, example, check, atol, dynamic_batch
        As for :func:`program_bytes`.
    path
        The ``.pt2`` file to write; its folder must exist.

    Returns
    -------
    dict
        ``path`` (str) and :func:`program_bytes`'s ``info``.

    Raises
    ------
    TypeError, ValueError, RuntimeError
        As :func:`program_bytes`; also if ``path`` is not a path (``TypeError``), or is a
        folder or in a folder that does not exist (``ValueError``).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pyrocompress.compress.program import export_program
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     info = export_program(net, f"{d}/model.pt2", x)
    ...     loaded = torch.export.load(f"{d}/model.pt2").module()  # torch alone
    >>> info["batch_sizes"], info["max_abs_diff"] <= 1e-5
    ([8, 1], True)
    >>> loaded(torch.zeros(1000, 4)).shape  # any batch size
    torch.Size([1000, 2])
    """
    path = _check_path("path", path, exists=False)
    data, info = program_bytes(module, example, check=check, atol=atol, dynamic_batch=dynamic_batch)
    atomic_write_bytes(data, path)
    return {"path": str(path), **info}


def load_program(path: str | os.PathLike) -> nn.Module:
    """Return the network of a ``.pt2`` file: ``torch.export.load(path).module()``.

    Needs torch only; pyrocompress adds nothing but the check of ``path``. The module
    is the inference graph, always in eval mode: torch refuses ``.eval()`` and
    ``.train()`` on it.

    Raises
    ------
    TypeError
        If ``path`` is not a path.
    ValueError
        If ``path`` is not a file.
    """
    path = _check_path("path", path, exists=True)
    return torch.export.load(path).module()
