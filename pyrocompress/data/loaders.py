"""Loaders: MNIST from IDX files, CIFAR-10 from its binary batches, digits, CSV, by name.

:func:`load_dataset` loads a data set by name from a registry (:func:`register_dataset`,
one :class:`DatasetEntry` per data set).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from numpy.typing import ArrayLike

from pyrocompress.constraints import first_line
from pyrocompress.data.cifar import (
    CIFAR10_CLASSES,
    CIFAR10_FILES,
    CIFAR10_TEST_FILE,
    CIFAR10_TRAIN_FILES,
    read_cifar10_batch,
)
from pyrocompress.data.containers import Dataset, PathLike, Splits
from pyrocompress.data.idx import read_idx

if TYPE_CHECKING:
    import pandas as pd  # imported on first use: ``import pyrocompress`` does not load it

#: The four standard MNIST files, keyed by role.
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_MNIST_SIDE = 28
_MNIST32_SIDE = 32
_CIFAR_SIDE = 32
_CIFAR_CHANNELS = 3
_CIFAR10_SUBDIR = "cifar-10-batches-bin"
_DIGITS_SIDE = 8
_NUM_DIGIT_CLASSES = 10


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
    if images.shape[0] == 0:
        raise ValueError(f"{img_path} holds no images; the split needs at least one")
    if labels.size and int(labels.max()) >= _NUM_DIGIT_CLASSES:
        bad = int((labels >= _NUM_DIGIT_CLASSES).sum())
        raise ValueError(
            f"{lbl_path} has {bad} labels outside 0..{_NUM_DIGIT_CLASSES - 1} "
            f"(max {int(labels.max())})"
        )


def _check_pixel_range(pixel_range: Iterable[float]) -> tuple[float, float]:
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


def _split_indices(
    n_train: int, val_size: int, seed: int, source: object = "the training file"
) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted training and validation indices: a seeded random ``val_size`` held out."""
    if val_size < 0:
        raise ValueError(f"val_size must be >= 0, got {val_size}")
    if val_size >= n_train:
        raise ValueError(
            f"{source} holds {n_train} images and {val_size} of them are held out "
            f"for validation: give a training set of more than {val_size} images, or, in "
            "Python, a smaller val_size"
        )
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n_train, generator=generator).numpy()
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])


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
    ``pixel_range`` (``[0, 1]`` by default; the code of :cite:t:`louizos2017bayesian` uses
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
            f"MNIST directory {data_dir} not found; pass data_dir pointing at the folder "
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
    train_idx, val_idx = _split_indices(
        train_images.shape[0], val_size, seed, paths["train_images"]
    )

    def make(images: np.ndarray, labels: np.ndarray) -> Dataset:
        return _mnist_dataset(images, labels, flatten, pixel_range)

    return Splits(
        train=make(train_images[train_idx], train_labels[train_idx]),
        val=make(train_images[val_idx], train_labels[val_idx]),
        test=make(arrays["test_images"], arrays["test_labels"]),
        num_classes=_NUM_DIGIT_CLASSES,
        name="mnist",
    )


def load_mnist32(
    data_dir: PathLike,
    *,
    val_size: int = 5000,
    seed: int = 0,
    flatten: bool = False,
    pixel_range: tuple[float, float] = (0.0, 1.0),
) -> Splits:
    """Load MNIST zero-padded to 32x32, the input size of the CIFAR networks.

    :func:`load_mnist`'s splits (the same files, checks, validation split and scaling),
    each 28x28 image padded by 2 pixels of intensity 0 (MNIST's background) on every side,
    so that the padding is ``pixel_range[0]`` after scaling. The LeNet-5 input of
    :cite:t:`lecun1998gradient` was MNIST padded to 32x32 in the same way; here it lets the
    CIFAR-style networks (:func:`~pyrocompress.nn.vgg_bn_cifar`, :func:`~pyrocompress.nn.resnet20`)
    be trained and measured where CIFAR-10 is not at hand.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Directory with the four MNIST IDX files (:data:`MNIST_FILES`).
    val_size : int, default 5000
        Number of training examples held out for validation, in ``[0, n_train)``.
    seed : int, default 0
        Seed of the :class:`torch.Generator` that picks the validation examples.
    flatten : bool, default False
        Return inputs of shape ``[N, 1024]`` instead of ``[N, 1, 32, 32]``.
    pixel_range : (float, float), default (0, 1)
        Pixel intensities 0..255 are mapped linearly onto ``[low, high]``.

    Returns
    -------
    Splits
        ``name="mnist32"``, ``num_classes=10``; each split has ``image_shape=(32, 32)``,
        float32 ``X`` and int64 ``y``.

    Raises
    ------
    FileNotFoundError
        If the directory or any of the four files is missing.
    ValueError
        As :func:`load_mnist`.
    """
    low, _ = _check_pixel_range(pixel_range)
    splits = load_mnist(
        data_dir, val_size=val_size, seed=seed, flatten=False, pixel_range=pixel_range
    )
    pad = (_MNIST32_SIDE - _MNIST_SIDE) // 2

    def padded(d: Dataset) -> Dataset:
        x = torch.nn.functional.pad(d.X, (pad, pad, pad, pad), value=low)
        x = x.reshape(len(d), _MNIST32_SIDE * _MNIST32_SIDE) if flatten else x
        return Dataset(X=x, y=d.y, image_shape=(_MNIST32_SIDE, _MNIST32_SIDE))

    return Splits(
        train=padded(splits.train),
        val=padded(splits.val),
        test=padded(splits.test),
        num_classes=splits.num_classes,
        name="mnist32",
    )


# --------------------------------------------------------------------------- CIFAR-10


def _cifar10_folder(data_dir: Path) -> Path:
    """Return the folder of the CIFAR-10 batches: ``data_dir`` or its ``cifar-10-batches-bin``."""
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"CIFAR-10 directory {data_dir} not found; pass data_dir pointing at the folder "
            f"with {', '.join(CIFAR10_FILES)} (the binary version, cifar-10-binary.tar.gz, "
            f"unpacks to {_CIFAR10_SUBDIR})"
        )
    folder, nested = data_dir, data_dir / _CIFAR10_SUBDIR
    if not (data_dir / CIFAR10_TEST_FILE).exists() and (nested / CIFAR10_TEST_FILE).exists():
        folder = nested  # the folder the archive unpacks to
    missing = [name for name in CIFAR10_FILES if not (folder / name).is_file()]
    if missing:
        pickled = [
            n.removesuffix(".bin") for n in missing if (folder / n.removesuffix(".bin")).exists()
        ]
        hint = (
            f"; {', '.join(pickled)} without .bin are the Python (pickle) version, which is not "
            "read: use the binary version, cifar-10-binary.tar.gz"
            if pickled
            else "; use the binary version of CIFAR-10, cifar-10-binary.tar.gz, unpacked"
        )
        raise FileNotFoundError(
            f"CIFAR-10 directory {folder} is missing {', '.join(missing)}{hint}"
        )
    return folder


def _cifar10_dataset(
    images: np.ndarray, labels: np.ndarray, flatten: bool, pixel_range: tuple[float, float]
) -> Dataset:
    x = _rescale(torch.from_numpy(images.astype(np.float32) / np.float32(255.0)), pixel_range)
    x = x.reshape(len(images), _CIFAR_CHANNELS * _CIFAR_SIDE**2) if flatten else x
    y = torch.from_numpy(labels.astype(np.int64))
    return Dataset(X=x, y=y, image_shape=(_CIFAR_SIDE, _CIFAR_SIDE))


def load_cifar10(
    data_dir: PathLike,
    *,
    val_size: int = 5000,
    seed: int = 0,
    flatten: bool = False,
    pixel_range: tuple[float, float] = (0.0, 1.0),
) -> Splits:
    """Load CIFAR-10 :cite:p:`krizhevsky2009learning` from the batch files of its binary version.

    The directory (or its subfolder ``cifar-10-batches-bin``, as the archive unpacks) must
    hold ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``, read by
    :func:`~pyrocompress.data.read_cifar10_batch` (plain bytes: the pickled Python version
    is not read). Pixels are scaled as MNIST's are (:func:`load_mnist`): 0..255 onto
    ``pixel_range``, no per-channel standardisation. A seeded random subset of
    ``val_size`` training images is the validation split, as for MNIST.

    Parameters
    ----------
    data_dir : str or os.PathLike
        Directory with the six batch files.
    val_size : int, default 5000
        Number of training examples held out for validation, in ``[0, n_train)``.
    seed : int, default 0
        Seed of the :class:`torch.Generator` that picks the validation examples.
    flatten : bool, default False
        Return inputs of shape ``[N, 3072]`` instead of ``[N, 3, 32, 32]``.
    pixel_range : (float, float), default (0, 1)
        Pixel intensities 0..255 are mapped linearly onto ``[low, high]``.

    Returns
    -------
    Splits
        ``name="cifar10"``, ``num_classes=10``; each split has ``image_shape=(32, 32)``,
        float32 ``X`` (channels red, green, blue) and int64 ``y``.

    Raises
    ------
    FileNotFoundError
        If the directory or a batch file is missing.
    ValueError
        If a file's size is not a multiple of the 3073-byte record, a label is outside
        0..9, or ``val_size`` is out of range.
    """
    pixel_range = _check_pixel_range(pixel_range)
    val_size = operator.index(val_size)
    folder = _cifar10_folder(Path(data_dir))
    batches = [read_cifar10_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    train_images = np.concatenate([images for images, _ in batches])
    train_labels = np.concatenate([labels for _, labels in batches])
    test_images, test_labels = read_cifar10_batch(folder / CIFAR10_TEST_FILE)
    train_idx, val_idx = _split_indices(len(train_images), val_size, seed)

    def make(images: np.ndarray, labels: np.ndarray) -> Dataset:
        return _cifar10_dataset(images, labels, flatten, pixel_range)

    return Splits(
        train=make(train_images[train_idx], train_labels[train_idx]),
        val=make(train_images[val_idx], train_labels[val_idx]),
        test=make(test_images, test_labels),
        num_classes=len(CIFAR10_CLASSES),
        name="cifar10",
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

    data, labels = sk_load_digits(return_X_y=True)
    x_all = (np.asarray(data, dtype=np.float64) / 16.0).astype(np.float32)
    y_all = np.asarray(labels, dtype=np.int64)

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

    def make(x: ArrayLike, y: ArrayLike) -> Dataset:
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


# --------------------------------------------------------------------------- registry

#: ``load(data_dir, seed, flatten, pixel_range)`` of a registered data set.
DatasetLoader = Callable[[Path | None, int, bool, tuple[float, float]], Splits]


@dataclass(frozen=True)
class DatasetEntry:
    """A data set that :func:`load_dataset` (and ``pyrocompress compress --dataset``) loads.

    Parameters
    ----------
    load : callable
        ``load(data_dir, seed, flatten, pixel_range)`` returns the :class:`Splits`;
        ``data_dir`` is a :class:`~pathlib.Path` (``None`` only when ``files`` is ``None``),
        ``flatten`` a bool.
    files : str or None
        What ``data_dir`` must hold, in words ("the four MNIST IDX files"); ``None`` when
        the data set needs no folder (it ships with a package or is simulated).
    flatten : bool, default False
        The default of ``flatten``: flat ``[N, D]`` inputs, or images ``[N, C, H, W]``.
    description : str, default ""
        One line for the command line's ``--help``.
    """

    load: DatasetLoader
    files: str | None
    flatten: bool = False
    description: str = ""


_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, entry: DatasetEntry) -> DatasetEntry:
    """Register a data set under ``name`` (replacing one of the same name).

    The name becomes a value of :func:`load_dataset`'s ``name`` and of
    ``pyrocompress compress --dataset``.

    Parameters
    ----------
    name : str
        Lower-case, non-empty, without spaces (:func:`load_dataset` lower-cases its
        argument).
    entry : DatasetEntry
        How to load it.

    Returns
    -------
    DatasetEntry
        ``entry``.

    Raises
    ------
    TypeError
        If ``entry`` is not a :class:`DatasetEntry`.
    ValueError
        If ``name`` is not a usable name.
    """
    if not isinstance(entry, DatasetEntry):
        raise TypeError(f"register_dataset expects a DatasetEntry, got {type(entry).__name__}")
    if not isinstance(name, str) or not name or name != name.strip().lower() or " " in name:
        raise ValueError(
            f"a data-set name must be a non-empty lower-case string without spaces, got {name!r}"
        )
    _DATASETS[name] = entry
    return entry


def registered_datasets() -> dict[str, DatasetEntry]:
    """Return a copy of the registry: name -> entry, in registration order."""
    return dict(_DATASETS)


def _digits(data_dir: Path | None, seed: int, flatten: bool, pixel_range) -> Splits:
    return load_digits(seed=seed, flatten=flatten, pixel_range=pixel_range)


def _from_folder(loader: Callable[..., Splits]) -> DatasetLoader:
    """Adapt a loader taking ``(data_dir, *, seed, flatten, pixel_range)`` to the registry."""

    def load(data_dir: Path | None, seed: int, flatten: bool, pixel_range) -> Splits:
        return loader(data_dir, seed=seed, flatten=flatten, pixel_range=pixel_range)

    return load


_MNIST_FOLDER = "the four MNIST IDX files"
register_dataset(
    "digits",
    DatasetEntry(_digits, None, flatten=True, description="scikit-learn's 8x8 digits, flat"),
)
register_dataset(
    "mnist",
    DatasetEntry(_from_folder(load_mnist), _MNIST_FOLDER, description="MNIST, 1x28x28"),
)
register_dataset(
    "mnist32",
    DatasetEntry(
        _from_folder(load_mnist32), _MNIST_FOLDER, description="MNIST zero-padded to 1x32x32"
    ),
)
register_dataset(
    "cifar10",
    DatasetEntry(
        _from_folder(load_cifar10),
        "the CIFAR-10 binary batches (data_batch_1.bin .. data_batch_5.bin, test_batch.bin)",
        description="CIFAR-10, 3x32x32, from its binary batches",
    ),
)

#: The built-in names accepted by :func:`load_dataset` (:func:`registered_datasets` has
#: those registered since).
DATASET_NAMES: tuple[str, ...] = tuple(_DATASETS)


def load_dataset(
    name: str,
    *,
    data_dir: PathLike | None = None,
    seed: int = 0,
    flatten: bool | None = None,
    pixel_range: tuple[float, float] = (0.0, 1.0),
) -> Splits:
    """Load a data set by name, from the registry (:func:`register_dataset`).

    Parameters
    ----------
    name : {"digits", "mnist", "mnist32", "cifar10"} or a registered name
        Data-set name (case-insensitive).
    data_dir : str or os.PathLike, optional
        Directory with the data set's files: the MNIST IDX files for ``"mnist"`` and
        ``"mnist32"``, the binary batches for ``"cifar10"``; ignored for ``"digits"``.
    seed : int, default 0
        Seed for the validation (and, for digits, test) split.
    flatten : bool, optional
        Flatten images to vectors. ``None`` uses the data set's default: flat for
        ``"digits"``, ``[N, C, H, W]`` images for the others.
    pixel_range : (float, float), default (0, 1)
        Interval the pixel intensities are mapped onto.

    Returns
    -------
    Splits
        As returned by :func:`load_digits`, :func:`load_mnist`, :func:`load_mnist32` or
        :func:`load_cifar10` with default split sizes.

    Raises
    ------
    ValueError
        If ``name`` is unknown, or a data set read from files is requested without
        ``data_dir``.
    """
    key = name.strip().lower() if isinstance(name, str) else None
    entry = _DATASETS.get(key) if key is not None else None
    if entry is None:
        raise ValueError(f"unknown data set {name!r}; valid names are {', '.join(_DATASETS)}")
    if entry.files is not None and data_dir is None:
        raise ValueError(
            f"the {key} data set is read from local files: pass data_dir pointing at the "
            f"folder that holds {entry.files}"
        )
    folder = None if data_dir is None else Path(data_dir)
    return entry.load(folder, seed, entry.flatten if flatten is None else flatten, pixel_range)


# ------------------------------------------------------------------------------ tables
def _rows(mask: np.ndarray, limit: int = 5) -> str:
    """Return the 1-based data-row numbers of ``mask`` (the header is not counted)."""
    rows = (np.flatnonzero(mask) + 1).tolist()
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(map(str, rows[:limit])) + more


def load_csv(path: PathLike, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a CSV file with a header row into numeric features and a target column.

    Every column other than ``target`` is a feature and must be numeric. The target may
    be numeric or hold class labels (strings).

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file; its first row names the columns.
    target : str
        Name of the target column.

    Returns
    -------
    X : ndarray of float64, shape (n, p)
        The feature columns, in file order.
    y : ndarray, shape (n,)
        The target: int64 when every value is a whole number, float64 for other numbers,
        strings for labels.
    feature_names : list of str
        The names of the columns of ``X``.

    Raises
    ------
    ValueError
        With a one-line message naming the problem: a missing file, a file that is not
        CSV, a header that repeats a column name, a missing target column, no feature
        column, a non-numeric feature column, NaN or infinite values (with their rows),
        fewer than two rows, or a constant target.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"CSV file {path} does not exist (or is not a file)")
    raw, df = _read_csv(path)
    _check_unique_header(path, raw)
    features = _feature_columns(path, df, target)
    X = _numeric_features(df, features)
    # pandas keeps column names unique, so a name selects one column (a Series)
    y = _target_values(cast("pd.Series", df[target]), target)
    return X, y, features


def _read_csv(path: Path) -> tuple[list[str], pd.DataFrame]:
    """Return the header as written and the table of ``path``, or a one-line error."""
    import pandas as pd

    try:
        # The header as written: pandas renames a repeated name (``y,y`` -> ``y``, ``y.1``),
        # which would let a copy of the target in as a feature.
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path} is empty; it needs a header row and data rows") from err
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not UTF-8 text ({first_line(err)}); save it as UTF-8 (a Latin-1 file: "
            "iconv -f latin1 -t utf-8, or Excel's 'CSV UTF-8')"
        ) from err
    except pd.errors.ParserError as err:
        raise ValueError(f"{path} could not be parsed as CSV: {first_line(err)}") from err
    except OSError as err:  # unreadable: permissions, a folder, an I/O error
        raise ValueError(f"{path} cannot be read ({err.strerror or err})") from err
    raw = [str(c) for c in header.iloc[0].tolist()] if len(header) else []
    return raw, df


def _check_unique_header(path: Path, raw: list[str]) -> None:
    """Refuse a header that repeats a column name (naming the repeats and their columns)."""
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


def _feature_columns(path: Path, df: pd.DataFrame, target: str) -> list[str]:
    """Name the columns as text and return the feature columns (all but ``target``)."""
    columns = [str(c) for c in df.columns]
    df.columns = columns
    if target not in columns:
        hint = ""
        if len(columns) == 1 and any(sep in columns[0] for sep in (";", "\t")):
            hint = " (one column whose name holds ';' or tabs: save the file comma-separated)"
        raise ValueError(
            f"target column {target!r} not found in {path}; its columns are: "
            + ", ".join(columns)
            + hint
        )
    features = [c for c in columns if c != target]
    if not features:
        raise ValueError(f"{path} has no feature column besides the target {target!r}")
    if len(df) < 2:
        raise ValueError(f"{path} has {len(df)} data row(s); at least 2 are needed")
    return features


def _numeric_features(df: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Return the feature columns as float64, refusing text, NaN and infinite values."""
    import pandas as pd

    for c in features:
        col = df[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            bad = np.asarray(pd.isna(pd.to_numeric(col, errors="coerce"))) & col.notna().to_numpy()
            i = int(np.flatnonzero(bad)[0]) if bad.any() else 0
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
    return X


def _target_values(col: pd.Series, target: str) -> np.ndarray:
    """Return the target column: whole numbers as int64, other numbers as float64, or text."""
    import pandas as pd

    missing = col.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"target column {target!r} has missing or NaN values in data row(s) "
            f"{_rows(missing)}; drop those rows"
        )
    if pd.api.types.is_integer_dtype(col) and not pd.api.types.is_bool_dtype(col):
        # exact integers: through float64 those beyond 2^53 would merge; labels beyond
        # int64 (uint64 IDs) are kept as text, one class each
        values = col.to_numpy()
        if values.dtype == np.uint64 and values.max() > np.iinfo(np.int64).max:
            y = values.astype(str)
        else:
            y = values.astype(np.int64)
    elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        y = col.to_numpy(dtype=np.float64)
        if np.isinf(y).any():
            raise ValueError(
                f"target column {target!r} has infinite values in data row(s) "
                f"{_rows(np.isinf(y))}; fix or drop those rows"
            )
        # whole numbers are labels only within int64 (and float64's exact integers):
        # beyond 2^53 a cast would merge or wrap distinct values
        if np.all(y == np.round(y)) and np.abs(y).max() < 2.0**53:
            y = y.astype(np.int64)
    else:
        y = col.astype(str).to_numpy()
    if len(np.unique(y)) < 2:
        value = y[0].item() if isinstance(y[0], np.generic) else y[0]  # 3, not np.int64(3)
        raise ValueError(
            f"target column {target!r} is constant (every row is {value!r}); "
            "there is nothing for a feature to explain"
        )
    return y
