"""Checkpoints of a training run, written atomically and read without running code.

A checkpoint is a plain dictionary of tensors, numbers, strings and containers of them:
the network's ``state_dict`` (model and guide), the optimiser's and the learning-rate
scheduler's, the random-number generators' states, the epoch, the step and the history.
:func:`atomic_save` writes it to a temporary file in the target folder and moves it into
place with :func:`os.replace`, so a run killed while writing leaves the previous
checkpoint intact, never half a file.

:func:`safe_load` reads every file pyrocompress loads (checkpoints, compact models) with
``torch.load(..., weights_only=True)``: PyTorch's restricted unpickler, which builds only
tensors and plain containers and refuses any other object. A file crafted to run code
when unpickled is refused with a :class:`ValueError`, and its code never runs.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from pyrocompress.constraints import first_line
from pyrocompress.rng import get_state, set_state

__all__ = ["CHECKPOINT_NAME", "atomic_save", "rng_state", "safe_load", "set_rng_state"]

#: File name of the checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """Run ``torch.save(obj, path)`` through a temporary file and :func:`os.replace`.

    The bytes are those of :func:`torch.save`, written by :func:`atomic_write_bytes`.

    Parameters
    ----------
    obj
        What to save.
    path
        Destination file; its folder must exist.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write ``data`` to ``path`` through a temporary file and :func:`os.replace`.

    The file is readable by all (mode 0644, as other outputs are); a failure leaves the
    old file, if any, as it was and no temporary file behind.

    Parameters
    ----------
    data
        The bytes.
    path
        Destination file; its folder must exist.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # on disk before it takes the old file's place
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_load(path: str | os.PathLike, what: str = "file") -> Any:
    """Load a file written by :func:`torch.save` with ``weights_only=True`` onto the CPU.

    Parameters
    ----------
    path
        The file.
    what
        What the file is, for messages (``"checkpoint"``, ``"compact model"``).

    Returns
    -------
    Any
        The loaded object (tensors and plain containers).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a weights-only PyTorch file: corrupt, or holding objects other
        than tensors and plain containers (as a file crafted to run code would). Nothing
        in it is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        first = first_line(e)
        raise ValueError(
            f"refusing to load {what} {path}: it is not a weights-only PyTorch file "
            f"({first}). pyrocompress loads only tensors and plain containers, never "
            "objects whose unpickling could run code; re-create the file with pyrocompress"
        ) from None


#: The generator states a checkpoint holds (:mod:`pyrocompress.rng`, one implementation).
rng_state = get_state
set_rng_state = set_state
