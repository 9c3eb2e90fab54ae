"""Data containers: a data set and its train / validation / test splits."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

#: A path given as text or a path object.
PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- containers


@dataclass(frozen=True, eq=False)
class Dataset:
    """An immutable pair of inputs and targets.

    Equality is identity (``eq=False``): comparing tensors element-wise is ambiguous, so
    compare fields explicitly with :func:`torch.equal` when needed.

    Parameters
    ----------
    X : torch.Tensor
        Inputs, float32, first dimension indexes examples (e.g. ``[N, 64]`` or
        ``[N, 1, 28, 28]``).
    y : torch.Tensor
        Targets with first dimension ``N``; int64 class indices for classification.
    feature_names : list of str, optional
        One name per column when ``X`` is flat (e.g. ``"pixel_0_0"``).
    image_shape : tuple of int, optional
        Spatial shape of one image, e.g. ``(28, 28)`` or ``(8, 8)``, so flat inputs can be
        reshaped for plotting.
    """

    X: torch.Tensor
    y: torch.Tensor
    feature_names: list[str] | None = None
    image_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.X, torch.Tensor) or not isinstance(self.y, torch.Tensor):
            raise TypeError(
                "Dataset.X and Dataset.y must be torch tensors, got "
                f"{type(self.X).__name__} and {type(self.y).__name__}; "
                "convert with torch.as_tensor"
            )
        if self.X.ndim == 0 or self.y.ndim == 0:
            raise ValueError("Dataset.X and Dataset.y must have a leading example dimension")
        if self.X.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"Dataset.X has {self.X.shape[0]} examples but Dataset.y has {self.y.shape[0]}"
            )

    def __len__(self) -> int:
        return int(self.X.shape[0])


@dataclass(frozen=True, eq=False)
class Splits:
    """Train / validation / test splits of one data set.

    Parameters
    ----------
    train, val, test : Dataset
        The three disjoint splits. ``val`` may be empty.
    num_classes : int
        Number of target classes.
    name : str
        Short data-set name, e.g. ``"mnist"`` or ``"digits"``.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    name: str
