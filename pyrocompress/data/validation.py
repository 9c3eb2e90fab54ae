"""Validation of inputs and targets at the boundary: shapes, dtypes, finiteness."""

from __future__ import annotations

import operator

import torch

# --------------------------------------------------------------------------- validation


def check_tensors(
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int | None = None,
    num_outputs: int | None = None,
    name: str = "data",
) -> None:
    """Validate inputs and targets at the boundary of training or evaluation code.

    Parameters
    ----------
    X : torch.Tensor
        Inputs; must be floating point, finite, with at least one example.
    y : torch.Tensor
        Targets with the same first dimension as ``X``.
    num_classes : int, optional
        When given, ``y`` is treated as class labels: it must be a 1-D integer tensor with
        values in ``[0, num_classes)``. Without it, ``y`` holds regression targets: a real
        (floating-point or integer, not bool) tensor of finite values.
    num_outputs : int, optional
        Regression only: the number of output units of the network. With one output ``y``
        must have shape ``(N,)`` or ``(N, 1)``; with ``K > 1`` outputs, ``(N, K)``.
    name : str, default "data"
        Label used in error messages (e.g. ``"train"``).

    Raises
    ------
    TypeError
        If ``X`` or ``y`` is not a :class:`torch.Tensor`.
    ValueError
        If any of the conditions above does not hold.
    """
    for arg, value in (("X", X), ("y", y)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"{name}: {arg} must be a torch.Tensor, got {type(value).__name__}; "
                "convert with torch.as_tensor"
            )
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"{name}: X and y need a leading example dimension, got shapes "
            f"{tuple(X.shape)} and {tuple(y.shape)}"
        )
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"{name}: X has {X.shape[0]} examples but y has {y.shape[0]}; "
            "the first dimensions must match"
        )
    if X.shape[0] == 0:
        raise ValueError(
            f"{name}: no examples (X has shape {tuple(X.shape)}); pass at least one row "
            "(check that no filtering or split left this set empty)"
        )
    if not X.dtype.is_floating_point:
        raise ValueError(f"{name}: X must be floating point, got {X.dtype}; convert with X.float()")
    _check_finite(X, "X", name, "drop those rows or impute the missing values")

    if num_classes is None:
        _check_regression_targets(y, num_outputs, name)
        return
    num_classes = operator.index(num_classes)
    if num_classes < 1:
        raise ValueError(f"{name}: num_classes must be >= 1, got {num_classes}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(
            f"{name}: class labels y must have an integer dtype, got {y.dtype}; "
            "convert with y.long()"
        )
    if y.ndim != 1:
        raise ValueError(
            f"{name}: class labels y must be 1-D, got shape {tuple(y.shape)}; pass one label "
            "per example (y.reshape(-1) for a column; y.argmax(1) for one-hot rows)"
        )
    y_min, y_max = int(y.min().item()), int(y.max().item())
    if y_min < 0 or y_max >= num_classes:
        n_out = int(((y < 0) | (y >= num_classes)).sum().item())
        raise ValueError(
            f"{name}: {n_out} labels outside [0, {num_classes}) (min {y_min}, max {y_max}); "
            f"labels must be 0..{num_classes - 1}: remap them (e.g. torch.unique(y, "
            "return_inverse=True)[1])"
            + (f", or build the network for {y_max + 1} classes" if y_min >= 0 else "")
        )


_FLOAT32_MAX = float(torch.finfo(torch.float32).max)
_FLOAT32_TINY = float(torch.finfo(torch.float32).smallest_normal) * 2.0**-23  # subnormal


def _check_finite(t: torch.Tensor, what: str, name: str, fix: str) -> None:
    """Refuse NaN or inf in ``t`` (``X`` or ``y`` of data set ``name``).

    The message counts the non-finite values and the rows that hold them.
    """
    bad = ~torch.isfinite(t)
    n_bad = int(bad.sum().item())
    if n_bad:
        rows = int(bad.reshape(t.shape[0], -1).any(dim=1).sum().item())
        raise ValueError(
            f"{name}: {what} has {n_bad} non-finite values (NaN or inf) in {rows} rows; {fix}"
        )
    if t.is_floating_point() and t.dtype != torch.float32 and t.numel():
        # the network computes in float32: a larger value would become inf there
        size = t.abs()
        largest = float(size.max())
        if largest > _FLOAT32_MAX:
            raise ValueError(
                f"{name}: {what} has values up to {largest:.3g}, beyond float32's range "
                f"({_FLOAT32_MAX:.3g}), where the network computes; rescale {what} (for "
                "example standardise its columns)"
            )
        nonzero = size[size > 0]
        if nonzero.numel() and float(nonzero.min()) < _FLOAT32_TINY:
            raise ValueError(
                f"{name}: {what} has non-zero values as small as {float(nonzero.min()):.3g}, "
                f"which float32 (where the network computes) rounds to 0; rescale {what} "
                "(for example standardise its columns)"
            )


def _check_regression_targets(y: torch.Tensor, num_outputs: int | None, name: str) -> None:
    """Check regression targets: real, finite, and of a shape that fits ``num_outputs``."""
    if y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(
            f"{name}: regression targets y must be real numbers (floating point or integer), "
            f"got {y.dtype}; convert with y.float()"
        )
    _check_finite(y, "y", name, "drop those rows (from X and y) or impute the missing values")
    if num_outputs is None:
        return
    num_outputs = operator.index(num_outputs)
    n = y.shape[0]
    if num_outputs == 1:
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
            return
        raise ValueError(
            f"{name}: the network has 1 output, so y must have shape ({n},) or ({n}, 1), got "
            f"{tuple(y.shape)}; pass one target per example, or build the network with as "
            "many outputs as y has columns"
        )
    if tuple(y.shape) != (n, num_outputs):
        raise ValueError(
            f"{name}: the network has {num_outputs} outputs, so y must have shape "
            f"({n}, {num_outputs}), got {tuple(y.shape)}; give one column per output, or "
            "build the network with as many outputs as y has columns"
        )
