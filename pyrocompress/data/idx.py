"""The IDX file format of MNIST (LeCun et al.): a checked reader and a writer."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from pyrocompress.data.containers import PathLike

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
