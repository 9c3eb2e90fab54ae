r"""The files a user deploys: ONNX, the packed and weight-shared files, a torch.export program.

:func:`deployable_files` turns a :class:`~pyrocompress.PruneResult` into the bytes of the
files ``pyrocompress compress --export onnx,packed,shared,pt2`` writes next to ``model.pt``,
and adds to its report what each file holds:

``file_bytes_dense``
    The original network's parameters as float32: :math:`4 \times` ``params_before`` bytes
    (set by :func:`~pyrocompress.prune`).
``file_bytes_packed``, ``compression_rate_file``, ``test_error_packed``
    The size of ``model.packed``: the compact network with each layer's weights rounded to
    its fixed-point grid (:meth:`~pyrocompress.PruneResult.quantized`), in the codes of
    :func:`~pyrocompress.save_packed` (entropy-coded where smaller; every byte of the
    file, header and spec included); ``file_bytes_dense / file_bytes_packed``; and the
    quantised network's test error. Compare the rate with ``compression_rate_bits``, which
    counts the kept weights at the :math:`1 + e + t` bits of :cite:t:`louizos2017bayesian{§4}` and
    the biases at 32 bits but no header.
``file_bytes_shared``, ``compression_rate_file_shared``, ``test_error_shared``, ``codebook_sizes``
    The same for ``model.shared``, the weight-shared network
    (:meth:`~pyrocompress.PruneResult.share`), and each layer's number of shared values.
``file_bytes_onnx``, ``onnx_max_abs_diff``
    The size of ``model.onnx`` — the compact network ``result.module``, as ``model.pt``
    holds it (:func:`~pyrocompress.compress.onnx.onnx_bytes`: float32 weights and the graph)
    — and its largest difference from torch on the checked batches.
``file_bytes_pt2``, ``pt2_max_abs_diff``
    The size of ``model.pt2``, the same network as a :func:`torch.export.export` program
    that :func:`torch.export.load` reads with torch alone
    (:func:`~pyrocompress.compress.program.program_bytes`), and its largest difference
    from the module on the checked batches.

The report gains these entries only once every file was made: a failure leaves it as it
was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pyrocompress.compress.compact import predict_batches
from pyrocompress.compress.packed import packed_bytes

if TYPE_CHECKING:
    from pyrocompress.compress.pruning import PruneResult

__all__ = ["EXPORT_FORMATS", "FILE_NAMES", "check_formats", "deployable_files"]

#: The formats :func:`deployable_files` writes, in order.
EXPORT_FORMATS = ("onnx", "packed", "shared", "pt2")
#: The file each format is written to.
FILE_NAMES = {
    "onnx": "model.onnx",
    "packed": "model.packed",
    "shared": "model.shared",
    "pt2": "model.pt2",
}


def check_formats(formats: Iterable[str]) -> list[str]:
    """Return the formats named (a list, or ``"onnx,packed"``) in :data:`EXPORT_FORMATS` order.

    Raises
    ------
    ValueError
        If one is unknown, or none is named.
    """
    if isinstance(formats, str):
        formats = [f for f in formats.split(",") if f]
    chosen = list(dict.fromkeys(formats))
    unknown = [f for f in chosen if f not in EXPORT_FORMATS]
    if unknown or not chosen:
        raise ValueError(
            f"formats must be some of {', '.join(EXPORT_FORMATS)} (e.g. 'onnx,packed'); "
            f"got {', '.join(unknown) or 'none'}"
        )
    return [f for f in EXPORT_FORMATS if f in chosen]


def deployable_files(
    result: PruneResult,
    formats: Iterable[str],
    *,
    example: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    error: Callable[[torch.Tensor, torch.Tensor], float] | None = None,
    factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None,
    **metadata: Any,
) -> dict[str, bytes]:
    """Return the bytes of the deployable files of a pruned network; extend its report.

    Parameters
    ----------
    result
        The :class:`~pyrocompress.PruneResult`. Its ``report`` gains the entries of the
        module docstring.
    formats
        Some of :data:`EXPORT_FORMATS`, as a list or ``"onnx,packed,shared,pt2"``.
    example
        An input batch as the plain network reads it
        (:func:`~pyrocompress.compress.pruning.plain_input`), for the ONNX and
        ``torch.export`` exports and their checks.
    test
        ``(X, y)``, ``X`` as the plain network reads it: the packed and shared networks'
        test errors (with ``error``).
    error
        ``error(output, y)``, the model's error metric (``bnn.likelihood.error``).
    factory, factory_kwargs
        For a network that is not an ``nn.Sequential`` (as :func:`~pyrocompress.save_compact`).
    **metadata
        Stored in the packed files' spec.

    Returns
    -------
    dict of str to bytes
        The file's bytes, by file name (:data:`FILE_NAMES`).

    Raises
    ------
    ValueError
        If ``formats`` names an unknown format.
    ImportError
        If ``"onnx"`` is asked for without the ``onnx`` extra installed.
    RuntimeError
        If the ONNX or ``torch.export`` export fails or disagrees with torch.

    Examples
    --------
    The packed and weight-shared files of a pruned network, written to a temporary
    folder and the packed one read back:

    >>> import os, tempfile, torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
    >>> result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=X)
    >>> files = pc.deployable_files(
    ...     result, "packed,shared", example=X, test=(X, y), error=bnn.likelihood.error
    ... )
    >>> sorted(files)
    ['model.packed', 'model.shared']
    >>> result.report["file_bytes_packed"] == len(files["model.packed"])
    True
    >>> 0.0 <= result.report["test_error_packed"] <= 1.0
    True
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for name, blob in files.items():
    ...         with open(os.path.join(folder, name), "wb") as f:
    ...             _ = f.write(blob)
    ...     packed = pc.load_packed(os.path.join(folder, "model.packed"))
    >>> torch.equal(packed(X), result.quantized()(X))
    True
    """
    chosen = check_formats(formats)
    report = result.report
    dense = report["file_bytes_dense"]
    rebuild = {"factory": factory, "factory_kwargs": factory_kwargs}
    files: dict[str, bytes] = {}
    entries: dict[str, Any] = {}

    def tested(module: nn.Module) -> float | None:
        if test is None or error is None:
            return None
        return float(error(predict_batches(module, test[0]), test[1]))

    if "onnx" in chosen:
        from pyrocompress.compress.onnx import onnx_bytes

        data, info = onnx_bytes(result.module, example)
        files[FILE_NAMES["onnx"]] = data
        entries.update(file_bytes_onnx=len(data), onnx_max_abs_diff=info["max_abs_diff"])
    if "packed" in chosen:
        quantized = result.quantized()
        data, _ = packed_bytes(quantized, **rebuild, **metadata)
        files[FILE_NAMES["packed"]] = data
        entries.update(
            file_bytes_packed=len(data),
            compression_rate_file=dense / len(data),
            test_error_packed=tested(quantized),
        )
    if "shared" in chosen:
        shared, sizes = result.share()
        data, _ = packed_bytes(shared, **rebuild, **metadata)
        files[FILE_NAMES["shared"]] = data
        keys = result.info.weight_keys
        entries.update(
            file_bytes_shared=len(data),
            compression_rate_file_shared=dense / len(data),
            test_error_shared=tested(shared),
            codebook_sizes=[sizes.get(keys.get(n, ""), None) for n in report["layers"]],
        )
    if "pt2" in chosen:
        from pyrocompress.compress.program import program_bytes

        data, info = program_bytes(result.module, example)
        files[FILE_NAMES["pt2"]] = data
        entries.update(file_bytes_pt2=len(data), pt2_max_abs_diff=info["max_abs_diff"])
    report.update(entries)
    return files
