"""The binary format of CIFAR-10 :cite:p:`krizhevsky2009learning`: a checked reader and a writer.

The binary version of CIFAR-10 (``cifar-10-binary.tar.gz``, unpacked to
``cifar-10-batches-bin/``) holds five training batches ``data_batch_1.bin`` ..
``data_batch_5.bin`` and ``test_batch.bin``. Each is a sequence of 3073-byte records: one
label byte (0..9), then the 3x32x32 image as 3072 unsigned bytes, channel-major (the 1024
red values row by row, then green, then blue). Plain bytes: nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyrocompress.data.containers import PathLike

#: The five training batches of the binary CIFAR-10, in order.
CIFAR10_TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
#: The test batch of the binary CIFAR-10.
CIFAR10_TEST_FILE = "test_batch.bin"
#: The six files of the binary CIFAR-10, training batches first.
CIFAR10_FILES: tuple[str, ...] = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
#: The class names, by label.
CIFAR10_CLASSES: tuple[str, ...] = (
    *("airplane", "automobile", "bird", "cat", "deer"),
    *("dog", "frog", "horse", "ship", "truck"),
)

_CHANNELS, _SIDE = 3, 32
_IMAGE_BYTES = _CHANNELS * _SIDE * _SIDE
_RECORD_BYTES = 1 + _IMAGE_BYTES
_NUM_CLASSES = len(CIFAR10_CLASSES)
_GET_IT = (
    "use the binary version of CIFAR-10 (cifar-10-binary.tar.gz from "
    "https://www.cs.toronto.edu/~kriz/cifar.html, unpacked)"
)


def read_cifar10_batch(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file of the binary CIFAR-10.

    Parameters
    ----------
    path : str or os.PathLike
        A file of 3073-byte records (one label byte, 3072 pixel bytes), e.g.
        ``data_batch_1.bin`` or ``test_batch.bin``.

    Returns
    -------
    images : numpy.ndarray
        ``uint8``, shape ``[N, 3, 32, 32]`` (channels red, green, blue).
    labels : numpy.ndarray
        ``uint8``, shape ``[N]``, values 0..9 (names in :data:`CIFAR10_CLASSES`).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or is not a regular file.
    ValueError
        If the file is empty, its size is not a multiple of 3073 bytes (truncated, or not
        the binary version), or a label byte is outside 0..9.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "test_batch.bin"
    >>> write_cifar10_batch(path, np.zeros((2, 3, 32, 32), np.uint8), np.array([3, 9]))
    >>> images, labels = read_cifar10_batch(path)
    >>> images.shape, labels.tolist()
    ((2, 3, 32, 32), [3, 9])
    """
    path = Path(path)
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "not found"
        raise FileNotFoundError(
            f"CIFAR-10 file {path} {what}; expected a batch of the binary version "
            f"(data_batch_1.bin .. data_batch_5.bin, test_batch.bin): {_GET_IT}"
        )
    data = path.read_bytes()
    if not data or len(data) % _RECORD_BYTES:
        raise ValueError(
            f"CIFAR-10 file {path} has {len(data)} bytes, not a positive multiple of the "
            f"{_RECORD_BYTES}-byte record (1 label byte + {_IMAGE_BYTES} pixel bytes): it is "
            f"truncated or not a batch of the binary version; {_GET_IT}"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _RECORD_BYTES)
    labels = records[:, 0]
    bad = np.flatnonzero(labels >= _NUM_CLASSES)
    if bad.size:
        raise ValueError(
            f"CIFAR-10 file {path} has {bad.size} label byte(s) outside 0..{_NUM_CLASSES - 1} "
            f"(first: record {int(bad[0])}, value {int(labels[bad[0]])}): the file is corrupt "
            f"or not a CIFAR-10 batch (CIFAR-100's binary files have two label bytes); {_GET_IT}"
        )
    return records[:, 1:].reshape(-1, _CHANNELS, _SIDE, _SIDE), labels


def write_cifar10_batch(path: PathLike, images: np.ndarray, labels: np.ndarray) -> None:
    """Write images and labels as a batch file of the binary CIFAR-10.

    Mainly used by tests to create small files that :func:`read_cifar10_batch` and
    :func:`~pyrocompress.data.load_cifar10` read back.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its parent directory must exist.
    images : numpy.ndarray
        ``uint8``, shape ``[N, 3, 32, 32]``.
    labels : array_like of int
        ``N`` labels in 0..9.

    Raises
    ------
    TypeError
        If ``images`` is not a ``uint8`` numpy array, or ``labels`` are not integers.
    ValueError
        If the shapes are wrong, the counts differ, there are no images, or a label is
        outside 0..9.
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        dtype = getattr(images, "dtype", type(images).__name__)
        raise TypeError(f"images must be a uint8 numpy array [N, 3, 32, 32], got {dtype}")
    if images.ndim != 4 or images.shape[1:] != (_CHANNELS, _SIDE, _SIDE) or not len(images):
        raise ValueError(f"images must have shape [N, 3, 32, 32] with N >= 1, got {images.shape}")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers 0..9, got dtype {labels.dtype}")
    if labels.shape != (len(images),):
        raise ValueError(
            f"labels must have shape [{len(images)}] (one per image), got {labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= _NUM_CLASSES:
        raise ValueError(
            f"labels must be in 0..{_NUM_CLASSES - 1}, got {labels.min()}..{labels.max()}"
        )
    records = np.empty((len(images), _RECORD_BYTES), dtype=np.uint8)
    records[:, 0] = labels
    records[:, 1:] = images.reshape(len(images), _IMAGE_BYTES)
    Path(path).write_bytes(records.tobytes())
