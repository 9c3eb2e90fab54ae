r"""The files a user deploys: ONNX, the packed file and the weight-shared file, with their sizes.

:func:`deployable_files` turns a :class:`~pyrocompress.PruneResult` into the bytes of the
files ``pyrocompress compress --export onnx,packed,shared`` writes next to ``model.pt``, and
adds to its report what each file holds:

``file_bytes_dense``
    The original network's parameters as float32: :math:`4 \times` ``params_before`` bytes
    (set by :func:`~pyrocompress.prune`).
``file_bytes_packed``, ``compression_rate_file``
    The size of ``model.packed`` (:func:`~pyrocompress.save_packed`, entropy-coded where
    smaller: every byte of the file, header and spec included) and
    ``file_bytes_dense / file_bytes_packed``. Compare it with ``compression_rate_bits``,
    which counts the kept weights at the :math:`1 + e + t` bits of Louizos et al. (2017,
    §4) and the biases at 32 bits but no header.
``file_bytes_shared``, ``compression_rate_file_shared``, ``test_error_shared``, ``codebook_sizes``
    The same for ``model.shared``, the weight-shared network
    (:meth:`~pyrocompress.PruneResult.share`), its test error, and each layer's number of
    shared values.
``file_bytes_onnx``, ``onnx_max_abs_diff``
    The size of ``model.onnx`` (:func:`~pyrocompress.compress.onnx.onnx_bytes`: float32
    weights, the graph's description) and its largest difference from torch on the checked
    batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from pyrocompress.compress.packed import pack_module

__all__ = ["EXPORT_FORMATS", "FILE_NAMES", "check_formats", "deployable_files"]

#: The formats :func:`deployable_files` writes, in order.
EXPORT_FORMATS = ("onnx", "packed", "shared")
#: The file each format is written to.
FILE_NAMES = {"onnx": "model.onnx", "packed": "model.packed", "shared": "model.shared"}


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
    result: Any,
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
        The :class:`~pyrocompress.PruneResult`; prune with ``quantize=True`` so that the
        packed file holds fixed-point codes. Its ``report`` gains the entries of the
        module docstring.
    formats
        Some of :data:`EXPORT_FORMATS`, as a list or ``"onnx,packed,shared"``.
    example
        An input batch, for the ONNX export and its check.
    test
        ``(X, y)``: the shared network's test error (with ``error``).
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
    """
    chosen = check_formats(formats)
    report = result.report
    dense = report.get("file_bytes_dense") or 4 * report["params_before"]
    report["file_bytes_dense"] = dense
    rebuild = {"factory": factory, "factory_kwargs": factory_kwargs}
    files: dict[str, bytes] = {}
    if "onnx" in chosen:
        from pyrocompress.compress.onnx import onnx_bytes

        data, info = onnx_bytes(result.module, example.float())
        files[FILE_NAMES["onnx"]] = data
        report["file_bytes_onnx"] = len(data)
        report["onnx_max_abs_diff"] = info["max_abs_diff"]
    if "packed" in chosen:
        data, _ = pack_module(result.module, entropy=True, **rebuild, **metadata)
        files[FILE_NAMES["packed"]] = data
        report["file_bytes_packed"] = len(data)
        report["compression_rate_file"] = dense / len(data)
    if "shared" in chosen:
        shared, sizes = result.share()
        data, _ = pack_module(shared, entropy=True, **rebuild, **metadata)
        files[FILE_NAMES["shared"]] = data
        report["file_bytes_shared"] = len(data)
        report["compression_rate_file_shared"] = dense / len(data)
        keys = result.info.weight_keys
        report["codebook_sizes"] = [sizes.get(keys.get(n, ""), None) for n in report["layers"]]
        if test is not None and error is not None:
            X, y = test
            with torch.no_grad():
                out = torch.cat([shared(X[i : i + 2000]) for i in range(0, len(X), 2000)])
            report["test_error_shared"] = float(error(out, y))
    return files
