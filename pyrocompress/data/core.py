"""Dataset loading and boundary validation for pyrocompress.

This module provides

* :class:`Dataset` and :class:`Splits`, small immutable containers for tensors,
* :func:`read_idx` / :func:`write_idx` for the IDX format used by MNIST,
* :func:`load_mnist`, :func:`load_digits` and the :func:`load_dataset` dispatcher,
* :func:`check_tensors`, the input validation used at the boundary of training code,
* :func:`load_csv`, a validated table of numeric features and a target column,
* simulation designs of the feature-selection literature (:func:`simulate_bai2020`,
  :func:`simulate_sun2021`, :func:`simulate_sun2021_classification`).

Nothing in here downloads anything: MNIST is read from a local directory holding
the four standard IDX files, and the small "digits" data set ships with scikit-learn.
"""

from __future__ import annotations

import gzip
import math
import operator
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DATASET_NAMES",
    "MNIST_FILES",
    "Dataset",
    "Splits",
    "check_tensors",
    "load_dataset",
    "load_csv",
    "load_digits",
    "load_mnist",
    "read_idx",
    "simulate_bai2020",
    "simulate_sun2021",
    "simulate_sun2021_classification",
    "write_idx",
]

PathLike = str | os.PathLike[str]

#: Names accepted by :func:`load_dataset`.
DATASET_NAMES: tuple[str, ...] = ("digits", "mnist")

#: The four standard MNIST files, keyed by role.
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

_IDX_UBYTE = 0x08
_IDX_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "short (int16)",
    0x0C: "int (int32)",
    0x0D: "float (float32)",
    0x0E: "double (float64)",
}
_MAX_IDX_DIMS = 4
_MNIST_SIDE = 28
_DIGITS_SIDE = 8
_NUM_DIGIT_CLASSES = 10


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


# --------------------------------------------------------------------------- IDX format


def _idx_corrupt(path: Path, detail: str) -> ValueError:
    return ValueError(f"IDX file {path} is corrupt or truncated: {detail}")


def read_idx(path: PathLike) -> np.ndarray:
    """Read one IDX file (the MNIST storage format), gzip-compressed or raw.

    The file is gzip-decompressed when its name ends in ``.gz``. The header is a 4-byte
    magic number (two zero bytes, a type code, the number of dimensions) followed by one
    big-endian uint32 per dimension; the payload must hold exactly the product of the
    dimensions in bytes. Only the unsigned-byte type (``0x08``) is supported.

    Parameters
    ----------
    path : str or os.PathLike
        Path to the ``.gz`` or raw IDX file.

    Returns
    -------
    numpy.ndarray
        A read-only ``uint8`` array with the shape given in the header (call ``.copy()``
        for a writable one).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or is not a regular file.
    ValueError
        If the gzip stream is corrupt, the magic number or type code is invalid, the
        number of dimensions is not 1..4, or the payload size does not match the header.
    """
    path = Path(path)
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "not found"
        raise FileNotFoundError(
            f"IDX file {path} {what}; expected an IDX-format data file "
            "(raw, or gzip-compressed with a .gz suffix, e.g. train-images-idx3-ubyte.gz)"
        )

    if path.name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"could not decompress {path}: not a valid gzip file or the gzip stream is "
                f"corrupt or truncated ({exc})"
            ) from exc
    else:
        data = path.read_bytes()

    if len(data) < 4:
        raise _idx_corrupt(path, f"expected a 4-byte header, got {len(data)} bytes")
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        magic = int.from_bytes(data[:4], "big")
        raise ValueError(
            f"{path} is not an IDX file: bad magic number 0x{magic:08X} "
            "(expected two zero bytes, then the type code and the number of dimensions)"
        )
    if type_code != _IDX_UBYTE:
        type_name = _IDX_TYPE_NAMES.get(type_code, "unknown")
        raise ValueError(
            f"{path} has IDX type code 0x{type_code:02X} ({type_name}); only 0x08 "
            "(unsigned byte) is supported"
        )
    if not 1 <= ndim <= _MAX_IDX_DIMS:
        raise ValueError(
            f"{path} declares {ndim} dimensions in its IDX header; expected 1..{_MAX_IDX_DIMS}"
        )

    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise _idx_corrupt(
            path, f"expected {header_len} header bytes for {ndim} dimensions, got {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = math.prod(dims)
    got = len(data) - header_len
    if got != expected:
        raise _idx_corrupt(
            path, f"expected {expected} payload bytes for shape {dims}, got {got} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Write a ``uint8`` array as an IDX file (gzip-compressed when ``path`` ends in ``.gz``).

    Mainly used by tests to create small MNIST-like files that :func:`read_idx` and
    :func:`load_mnist` can read back.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file. Its parent directory must exist.
    array : numpy.ndarray
        A ``uint8`` array with 1 to 4 dimensions.

    Raises
    ------
    TypeError
        If ``array`` is not a ``uint8`` numpy array.
    ValueError
        If ``array`` has fewer than 1 or more than 4 dimensions, or a dimension does not
        fit in a uint32.
    """
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        dtype = getattr(array, "dtype", type(array).__name__)
        raise TypeError(f"write_idx expects a uint8 numpy array, got {dtype}")
    if not 1 <= array.ndim <= _MAX_IDX_DIMS:
        raise ValueError(f"IDX arrays must have 1..{_MAX_IDX_DIMS} dimensions, got {array.ndim}")
    if any(d > 0xFFFFFFFF for d in array.shape):
        raise ValueError(f"array shape {array.shape} does not fit in IDX uint32 dimensions")

    header = bytes([0, 0, _IDX_UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


# --------------------------------------------------------------------------- MNIST


def _find_mnist_file(data_dir: Path, gz_name: str) -> Path | None:
    gz_path = data_dir / gz_name
    if gz_path.is_file():
        return gz_path
    raw_path = data_dir / gz_name.removesuffix(".gz")
    if raw_path.is_file():
        return raw_path
    return None


def _check_mnist_pair(
    images: np.ndarray, labels: np.ndarray, img_path: Path, lbl_path: Path
) -> None:
    if images.ndim != 3 or images.shape[1:] != (_MNIST_SIDE, _MNIST_SIDE):
        raise ValueError(
            f"{img_path} holds an array of shape {images.shape}; expected MNIST images of "
            f"shape [N, {_MNIST_SIDE}, {_MNIST_SIDE}]"
        )
    if labels.ndim != 1:
        raise ValueError(
            f"{lbl_path} holds an array of shape {labels.shape}; expected 1-D labels [N]"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{img_path} has {images.shape[0]} images but {lbl_path} has "
            f"{labels.shape[0]} labels; the counts must match"
        )
    if labels.size and int(labels.max()) >= _NUM_DIGIT_CLASSES:
        bad = int((labels >= _NUM_DIGIT_CLASSES).sum())
        raise ValueError(
            f"{lbl_path} has {bad} labels outside 0..{_NUM_DIGIT_CLASSES - 1} "
            f"(max {int(labels.max())})"
        )


def _check_pixel_range(pixel_range) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in pixel_range)
    except (TypeError, ValueError):
        raise TypeError(
            f"pixel_range must be two numbers (low, high), e.g. (0, 1) or (-1, 1); "
            f"got {pixel_range!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(
            f"pixel_range must be finite with low < high, e.g. (0, 1) or (-1, 1); got "
            f"{pixel_range!r}"
        )
    return low, high


def _rescale(x01: torch.Tensor, pixel_range: tuple[float, float]) -> torch.Tensor:
    low, high = pixel_range
    return x01 if (low, high) == (0.0, 1.0) else x01 * (high - low) + low


def _mnist_dataset(
    images: np.ndarray, labels: np.ndarray, flatten: bool, pixel_range: tuple[float, float]
) -> Dataset:
    x = _rescale(torch.from_numpy(images.astype(np.float32) / np.float32(255.0)), pixel_range)
    n = images.shape[0]
    x = (
        x.reshape(n, _MNIST_SIDE * _MNIST_SIDE)
        if flatten
        else x.reshape(n, 1, _MNIST_SIDE, _MNIST_SIDE)
    )
    y = torch.from_numpy(labels.astype(np.int64))
    return Dataset(X=x, y=y, image_shape=(_MNIST_SIDE, _MNIST_SIDE))


def load_mnist(
    data_dir: PathLike,
    *,
    val_size: int = 5000,
    seed: int = 0,
    flatten: bool = False,
    pixel_range: tuple[float, float] = (0.0, 1.0),
) -> Splits:
    """Load MNIST from a local directory of IDX files.

    The directory must hold ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
    ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (the same names without
    ``.gz`` are used when the compressed file is absent). Pixels are scaled to float32 in
    ``pixel_range`` (``[0, 1]`` by default; the code of Louizos et al. 2017 uses
    ``[-1, 1]``). A seeded random subset of ``val_size`` training examples is held out as the
    validation split; the remaining training examples and the validation examples keep
    their original relative order.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Directory with the four IDX files.
    val_size : int, default 5000
        Number of training examples held out for validation, in ``[0, n_train)``.
    seed : int, default 0
        Seed of the :class:`torch.Generator` that picks the validation examples.
    flatten : bool, default False
        Return inputs of shape ``[N, 784]`` instead of ``[N, 1, 28, 28]``.
    pixel_range : (float, float), default (0, 1)
        Pixel intensities 0..255 are mapped linearly onto ``[low, high]``.

    Returns
    -------
    Splits
        ``name="mnist"``, ``num_classes=10``; each split has ``image_shape=(28, 28)``,
        float32 ``X`` and int64 ``y``.

    Raises
    ------
    FileNotFoundError
        If the directory or any of the four files is missing.
    ValueError
        If a file is corrupt, images are not ``[N, 28, 28]``, labels are not 1-D, image and
        label counts differ, a label is outside 0..9, or ``val_size`` is out of range.
    """
    pixel_range = _check_pixel_range(pixel_range)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"MNIST directory {data_dir} not found; pass --data-dir pointing at the folder "
            f"with the four IDX files ({', '.join(MNIST_FILES.values())})"
        )
    val_size = operator.index(val_size)

    paths: dict[str, Path] = {}
    missing: list[str] = []
    for role, name in MNIST_FILES.items():
        found = _find_mnist_file(data_dir, name)
        if found is None:
            missing.append(name)
        else:
            paths[role] = found
    if missing:
        raise FileNotFoundError(
            f"MNIST directory {data_dir} is missing {', '.join(missing)} "
            "(the uncompressed name without .gz is also accepted)"
        )

    arrays = {role: read_idx(p) for role, p in paths.items()}
    for split in ("train", "test"):
        _check_mnist_pair(
            arrays[f"{split}_images"],
            arrays[f"{split}_labels"],
            paths[f"{split}_images"],
            paths[f"{split}_labels"],
        )

    train_images, train_labels = arrays["train_images"], arrays["train_labels"]
    n_train = train_images.shape[0]
    if not 0 <= val_size < n_train:
        raise ValueError(
            f"val_size must be in [0, {n_train}) for {n_train} training images, got {val_size}"
        )

    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n_train, generator=generator).numpy()
    val_idx = np.sort(perm[:val_size])
    train_idx = np.sort(perm[val_size:])

    def make(images: np.ndarray, labels: np.ndarray) -> Dataset:
        return _mnist_dataset(images, labels, flatten, pixel_range)

    return Splits(
        train=make(train_images[train_idx], train_labels[train_idx]),
        val=make(train_images[val_idx], train_labels[val_idx]),
        test=make(arrays["test_images"], arrays["test_labels"]),
        num_classes=_NUM_DIGIT_CLASSES,
        name="mnist",
    )


# --------------------------------------------------------------------------- digits


def _check_fraction(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name} must be a fraction in (0, 1), got {type(value).__name__}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a fraction in (0, 1), got {value!r}")
    return float(value)


def load_digits(
    *,
    test_size: float = 0.2,
    val_size: float = 0.15,
    seed: int = 0,
    flatten: bool = True,
    pixel_range: tuple[float, float] = (0.0, 1.0),
) -> Splits:
    """Load scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes).

    Pixel values 0..16 are scaled to float32 in ``pixel_range`` (``[0, 1]`` by default).
    Splits are stratified by class: first ``test_size`` of all examples become the test
    set, then ``val_size`` of the remainder become the validation set; the rest is the
    training set.

    Parameters
    ----------
    test_size : float, default 0.2
        Fraction of all examples used for testing, in ``(0, 1)``.
    val_size : float, default 0.15
        Fraction of the non-test examples used for validation, in ``(0, 1)``.
    seed : int, default 0
        ``random_state`` passed to :func:`sklearn.model_selection.train_test_split`.
    flatten : bool, default True
        Return inputs of shape ``[N, 64]`` instead of ``[N, 1, 8, 8]``.
    pixel_range : (float, float), default (0, 1)
        Pixel values 0..16 are mapped linearly onto ``[low, high]``.

    Returns
    -------
    Splits
        ``name="digits"``, ``num_classes=10``; each split has ``feature_names``
        ``"pixel_0_0"`` .. ``"pixel_7_7"`` (row-major), ``image_shape=(8, 8)``, float32
        ``X`` and int64 ``y``.

    Raises
    ------
    TypeError
        If ``test_size`` or ``val_size`` is not a real number.
    ValueError
        If ``test_size`` or ``val_size`` is not in ``(0, 1)``, or a split would be too small
        to hold every class.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    test_size = _check_fraction(test_size, "test_size")
    val_size = _check_fraction(val_size, "val_size")
    pixel_range = _check_pixel_range(pixel_range)

    bunch = sk_load_digits()
    x_all = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(np.float32)
    y_all = np.asarray(bunch.target, dtype=np.int64)

    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            x_all, y_all, test_size=test_size, stratify=y_all, random_state=seed
        )
    except ValueError as exc:
        raise ValueError(f"test_size={test_size} gives an unusable split: {exc}") from exc
    try:
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=val_size, stratify=y_rest, random_state=seed
        )
    except ValueError as exc:
        raise ValueError(f"val_size={val_size} gives an unusable split: {exc}") from exc

    side = _DIGITS_SIDE
    feature_names = [f"pixel_{r}_{c}" for r in range(side) for c in range(side)]

    def make(x: np.ndarray, y: np.ndarray) -> Dataset:
        xt = _rescale(torch.from_numpy(np.ascontiguousarray(x)), pixel_range)
        if not flatten:
            xt = xt.reshape(-1, 1, side, side)
        return Dataset(
            X=xt,
            y=torch.from_numpy(np.ascontiguousarray(y)),
            feature_names=list(feature_names),
            image_shape=(side, side),
        )

    return Splits(
        train=make(x_train, y_train),
        val=make(x_val, y_val),
        test=make(x_test, y_test),
        num_classes=_NUM_DIGIT_CLASSES,
        name="digits",
    )


# --------------------------------------------------------------------------- dispatcher


def load_dataset(
    name: str,
    *,
    data_dir: PathLike | None = None,
    seed: int = 0,
    flatten: bool | None = None,
    pixel_range: tuple[float, float] = (0.0, 1.0),
) -> Splits:
    """Load a data set by name.

    Parameters
    ----------
    name : {"digits", "mnist"}
        Data-set name (case-insensitive).
    data_dir : str or os.PathLike, optional
        Directory with the MNIST IDX files; required for ``"mnist"``, ignored otherwise.
    seed : int, default 0
        Seed for the validation (and, for digits, test) split.
    flatten : bool, optional
        Flatten images to vectors. ``None`` uses the loader's default: flat for
        ``"digits"``, ``[N, 1, 28, 28]`` for ``"mnist"``.
    pixel_range : (float, float), default (0, 1)
        Interval the pixel intensities are mapped onto.

    Returns
    -------
    Splits
        As returned by :func:`load_digits` or :func:`load_mnist` with default split sizes.

    Raises
    ------
    ValueError
        If ``name`` is unknown, or ``"mnist"`` is requested without ``data_dir``.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key == "digits":
        return load_digits(
            seed=seed, flatten=True if flatten is None else flatten, pixel_range=pixel_range
        )
    if key == "mnist":
        if data_dir is None:
            raise ValueError(
                "the mnist data set is read from local IDX files: pass data_dir "
                "(--data-dir on the command line) pointing at the folder that holds them"
            )
        return load_mnist(
            data_dir,
            seed=seed,
            flatten=False if flatten is None else flatten,
            pixel_range=pixel_range,
        )
    raise ValueError(f"unknown data set {name!r}; valid names are {', '.join(DATASET_NAMES)}")


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


def _check_finite(t: torch.Tensor, what: str, name: str, fix: str) -> None:
    """Refuse NaN or inf in ``t`` (``X`` or ``y`` of data set ``name``), counting values
    and rows."""
    bad = ~torch.isfinite(t)
    n_bad = int(bad.sum().item())
    if n_bad:
        rows = int(bad.reshape(t.shape[0], -1).any(dim=1).sum().item())
        raise ValueError(
            f"{name}: {what} has {n_bad} non-finite values (NaN or inf) in {rows} rows; {fix}"
        )


def _check_regression_targets(y: torch.Tensor, num_outputs: int | None, name: str) -> None:
    """Regression targets: real, finite, and of a shape that fits ``num_outputs`` outputs."""
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


# ---------------------------------------------------------------- simulation designs
def _check_size(n: int, p: int, minimum_p: int) -> None:
    for name, value, low in (("n", n, 2), ("p", p, minimum_p)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def simulate_bai2020(
    n: int = 3000, p: int = 200, *, noise: float = 1.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The feature-selection design of Bai, Song & Cheng (2020), NeurIPS, §5.

    :math:`x \sim U(-1, 1)^p`,
    :math:`y = 7x_2/(1 + x_1^2) + 5\sin(x_3x_4) + 2x_5 + \varepsilon`,
    :math:`\varepsilon \sim N(0, \text{noise}^2)`; the relevant inputs are the first five
    (the paper's :math:`x_1, \dots, x_5` are columns 0..4).

    Parameters
    ----------
    n, p
        Number of rows (at least 2) and of inputs (at least 5).
    noise
        Standard deviation of :math:`\varepsilon`.
    seed
        Seed of a private :class:`torch.Generator`: the same seed gives the same data,
        and the global RNG is left alone.

    Returns
    -------
    X : float32 tensor of shape (n, p)
    y : float32 tensor of shape (n,)
    """
    _check_size(n, p, 5)
    g = torch.Generator().manual_seed(seed)
    x = 2.0 * torch.rand(n, p, generator=g) - 1.0
    y = 7 * x[:, 1] / (1 + x[:, 0] ** 2) + 5 * torch.sin(x[:, 2] * x[:, 3]) + 2 * x[:, 4]
    return x, y + noise * torch.randn(n, generator=g)


def _sun2021_inputs(n: int, p: int, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(n, 1, generator=g)
    z = torch.randn(n, p, generator=g)
    return (e + z) / math.sqrt(2.0), g


def simulate_sun2021(
    n: int = 10_000, p: int = 2000, *, noise: float = 1.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Regression design of Sun, Song & Liang (2021), "Consistent sparse deep learning", JASA.

    Correlated inputs :math:`x_j = (e + z_j)/\sqrt2` with :math:`e, z_j \sim N(0, 1)`
    independent (so :math:`\mathrm{Var}\,x_j = 1` and pairwise correlation 0.5), and
    :math:`y = 5x_2/(1 + x_1^2) + 5\sin(x_3x_4) + 2x_5 + \varepsilon`,
    :math:`\varepsilon \sim N(0, \text{noise}^2)`; the relevant inputs are
    :math:`x_1, \dots, x_5`, columns 0..4.

    Parameters
    ----------
    n, p
        Number of rows (at least 2) and of inputs (at least 5).
    noise
        Standard deviation of :math:`\varepsilon`.
    seed
        Seed of a private :class:`torch.Generator`: the same seed gives the same data.

    Returns
    -------
    X : float32 tensor of shape (n, p)
    y : float32 tensor of shape (n,)
    """
    _check_size(n, p, 5)
    x, g = _sun2021_inputs(n, p, seed)
    y = 5 * x[:, 1] / (1 + x[:, 0] ** 2) + 5 * torch.sin(x[:, 2] * x[:, 3]) + 2 * x[:, 4]
    return x, y + noise * torch.randn(n, generator=g)


def simulate_sun2021_classification(
    n: int = 10_000, p: int = 1000, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Classification design of Sun, Song & Liang (2021), "Consistent sparse deep
    learning", JASA.

    The correlated inputs of :func:`simulate_sun2021` and a noiseless label,
    :math:`y = 1` if :math:`e^{x_1} + x_2^2 + 5\sin(x_3x_4) - 3 > 0` and 0 otherwise; the
    relevant inputs are :math:`x_1, \dots, x_4`, columns 0..3.

    Parameters
    ----------
    n, p
        Number of rows (at least 2) and of inputs (at least 4).
    seed
        Seed of a private :class:`torch.Generator`: the same seed gives the same data
        (and the same inputs as :func:`simulate_sun2021` with that seed).

    Returns
    -------
    X : float32 tensor of shape (n, p)
    y : int64 tensor of shape (n,) of 0/1 labels
    """
    _check_size(n, p, 4)
    x, _ = _sun2021_inputs(n, p, seed)
    score = torch.exp(x[:, 0]) + x[:, 1] ** 2 + 5 * torch.sin(x[:, 2] * x[:, 3]) - 3
    return x, (score > 0).long()


# ------------------------------------------------------------------------------ tables
def _rows(mask: np.ndarray, limit: int = 5) -> str:
    """1-based data-row numbers of ``mask`` (the header is not counted)."""
    rows = (np.flatnonzero(mask) + 1).tolist()
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(map(str, rows[:limit])) + more


def load_csv(path: PathLike, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a CSV file with a header row into numeric features and a target column.

    Every column other than ``target`` is a feature and must be numeric. The target may
    be numeric or hold class labels (strings).

    Returns
    -------
    X : ndarray of float64, shape (n, p)
    y : ndarray, shape (n,)
    feature_names : list of str

    Raises
    ------
    ValueError
        With a one-line message naming the problem: a missing file, a file that is not
        CSV, a header that repeats a column name, a missing target column, no feature
        column, a non-numeric feature column, NaN or infinite values (with their rows),
        fewer than two rows, or a constant target.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"CSV file {path} does not exist (or is not a file)")
    try:
        # The header as written: pandas renames a repeated name (``y,y`` -> ``y``, ``y.1``),
        # which would let a copy of the target in as a feature.
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path} is empty; it needs a header row and data rows") from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} could not be parsed as CSV: {first}") from err
    raw = [str(c) for c in header.iloc[0].tolist()] if len(header) else []
    # (empty names are left to pandas, which calls them "Unnamed: <i>")
    repeated = sorted({c for c in raw if c and raw.count(c) > 1}, key=raw.index)
    if repeated:
        where = "; ".join(
            f"{c!r} in columns " + ", ".join(str(i + 1) for i, r in enumerate(raw) if r == c)
            for c in repeated
        )
        raise ValueError(
            f"{path} has duplicate column names in its header ({where}); rename or drop the "
            "repeated columns so that every name is unique"
        )
    columns = [str(c) for c in df.columns]
    df.columns = columns
    if target not in columns:
        raise ValueError(
            f"target column {target!r} not found in {path}; its columns are: " + ", ".join(columns)
        )
    features = [c for c in columns if c != target]
    if not features:
        raise ValueError(f"{path} has no feature column besides the target {target!r}")
    if len(df) < 2:
        raise ValueError(f"{path} has {len(df)} data row(s); at least 2 are needed")
    for c in features:
        col = df[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            bad = pd.to_numeric(col, errors="coerce").isna() & col.notna()
            i = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
            raise ValueError(
                f"feature column {c!r} is not numeric (value {col.iloc[i]!r} in data row "
                f"{i + 1}); encode it as numbers or drop the column"
            )
    X = df[features].to_numpy(dtype=np.float64)
    for j, c in enumerate(features):
        if np.isnan(X[:, j]).any():
            raise ValueError(
                f"feature column {c!r} has missing or NaN values in data row(s) "
                f"{_rows(np.isnan(X[:, j]))}; impute or drop those rows"
            )
        if np.isinf(X[:, j]).any():
            raise ValueError(
                f"feature column {c!r} has infinite values in data row(s) "
                f"{_rows(np.isinf(X[:, j]))}; fix or drop those rows"
            )
    col = df[target]
    if col.isna().any():
        raise ValueError(
            f"target column {target!r} has missing or NaN values in data row(s) "
            f"{_rows(col.isna().to_numpy())}; drop those rows"
        )
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        y = col.to_numpy(dtype=np.float64)
        if np.isinf(y).any():
            raise ValueError(
                f"target column {target!r} has infinite values in data row(s) "
                f"{_rows(np.isinf(y))}; fix or drop those rows"
            )
        if np.all(y == np.round(y)):
            y = y.astype(np.int64)
    else:
        y = col.astype(str).to_numpy()
    if len(np.unique(y)) < 2:
        value = y[0].item() if isinstance(y[0], np.generic) else y[0]  # 3, not np.int64(3)
        raise ValueError(
            f"target column {target!r} is constant (every row is {value!r}); "
            "there is nothing for a feature to explain"
        )
    return X, y, features
