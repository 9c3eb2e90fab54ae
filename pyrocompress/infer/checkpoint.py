"""Checkpoints of a training run, written atomically and read without running code.

A checkpoint is a plain dictionary of tensors, numbers, strings and containers of them:
the network's ``state_dict`` (model and guide), the optimiser's and the learning-rate
scheduler's, the random-number generators' states, the epoch, the step and the history.
:func:`atomic_save` writes it to a temporary file in the target folder and moves it into
place with :func:`os.replace`, so a run killed while writing leaves the previous
checkpoint intact, never half a file; the temporary file such a kill leaves
(``.checkpoint.pt.*.tmp``) is removed by the next run in that folder
(:func:`remove_stale_temporaries`). A write that fails (a full disk) raises
:class:`CheckpointWriteError` and also leaves the previous checkpoint as it was.
:func:`check_checkpoint_target` refuses to start a run over an existing checkpoint
unless it resumes it or is told to overwrite it.

:func:`safe_load` reads every file pyrocompress loads (checkpoints, compact models) with
``torch.load(..., weights_only=True)``: PyTorch's restricted unpickler, which builds only
tensors and plain containers and refuses any other object. A file crafted to run code
when unpickled is refused with a :class:`ValueError`, and its code never runs.
"""

from __future__ import annotations

import glob
import io
import os
import pickle
import random
import re
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyrocompress.constraints import first_line
from pyrocompress.rng import get_state, set_state

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointWriteError",
    "atomic_save",
    "check_checkpoint_target",
    "remove_stale_temporaries",
    "rng_state",
    "rng_state_problem",
    "safe_load",
    "set_rng_state",
]

#: File name of the checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointWriteError(OSError, ValueError):
    """A checkpoint could not be written (a full disk, a folder made read-only).

    An :class:`OSError` (what it is) and a :class:`ValueError` (what the command line
    reports in one line, with exit code 2, like its other input problems).
    """


def process_tag() -> str:
    """Return ``<host>-p<pid>``: which process, on which machine, wrote a temporary file.

    The host name is reduced to letters, digits and ``_``, so that the tag parses back
    (:func:`is_dead_tag`).
    """
    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
    return f"{host}-p{os.getpid()}"


#: a :func:`process_tag` inside a file name
TAG_PATTERN = r"(?P<host>[A-Za-z0-9_]+)-p(?P<pid>\d+)"


def is_dead_tag(host: str, pid: str) -> bool:
    """Whether the process of a :func:`process_tag` is known to be gone.

    Only a process of this machine can be known gone (no process ``pid`` exists); one of
    another machine sharing the file system is taken as alive.
    """
    if host != process_tag().rsplit("-p", 1)[0]:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


def _temporary_prefix(name: str) -> str:
    """Return the prefix of :func:`atomic_write_bytes`' temporary files for ``name``."""
    return f".{name}.{process_tag()}."


def check_checkpoint_target(
    folder: str | os.PathLike,
    *,
    resume: bool,
    overwrite: bool,
    names: tuple[str, str, str] = ("checkpoint_dir", "resume=True", "overwrite_checkpoint=True"),
) -> Path:
    """Return the checkpoint file of ``folder``; refuse to start over one already there.

    A run that neither resumes nor overwrites would replace the checkpoint of another
    run at its first epoch, so its work would be lost without a word.

    Parameters
    ----------
    folder
        The checkpoint folder (it need not exist).
    resume, overwrite
        Whether the run continues the checkpoint there, or may replace it; not both.
    names
        How the caller spells the folder and the two ways out, for messages (the command
        line: ``("--checkpoint-dir", "--resume", "--overwrite-checkpoint")``).

    Returns
    -------
    Path
        ``folder / CHECKPOINT_NAME``.

    Raises
    ------
    ValueError
        If both ``resume`` and ``overwrite`` are set; if the checkpoint's path is a folder
        or other non-file; if a checkpoint exists and neither is set.
    """
    folder_name, resume_name, overwrite_name = names
    path = Path(folder) / CHECKPOINT_NAME
    if resume and overwrite:
        raise ValueError(
            f"{resume_name} continues the checkpoint in {folder_name} and {overwrite_name} "
            "replaces it: give one of them"
        )
    if path.exists() and not path.is_file():
        raise ValueError(
            f"{folder_name} {folder} holds a folder {path}, not a checkpoint file; remove or "
            f"rename it, or give another {folder_name}"
        )
    if path.exists() and not resume and not overwrite:
        raise ValueError(
            f"{folder_name} {folder} already holds a checkpoint ({path}); give {resume_name} "
            f"to continue it or {overwrite_name} to replace it"
        )
    return path


def remove_stale_temporaries(folder: str | os.PathLike, name: str = CHECKPOINT_NAME) -> list[Path]:
    """Remove the temporary files that writes of ``folder / name`` left when killed.

    Only :func:`atomic_write_bytes`' own files, ``.{name}.<host>-p<pid>.*.tmp``, and only
    those whose writer is gone (:func:`is_dead_tag`): a run writing into the same folder
    keeps its file.

    Parameters
    ----------
    folder
        The folder of the checkpoint.
    name
        The file whose temporaries to remove.

    Returns
    -------
    list of Path
        The files removed.
    """
    pattern = re.compile(rf"^\.{re.escape(name)}\.{TAG_PATTERN}\..*\.tmp$")
    removed = []
    for tmp in Path(folder).glob(f".{glob.escape(name)}.*.tmp"):
        match = pattern.match(tmp.name)
        if not match or not is_dead_tag(match["host"], match["pid"]):
            continue  # not ours, or its writer may still be running
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path.name), suffix=".tmp")
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
        If ``path`` is a folder or cannot be read, or is not a weights-only PyTorch file:
        corrupt, of another format (a text or CSV file), or holding objects other than
        tensors and plain containers (as a file crafted to run code would). Nothing in it
        is executed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} not found")
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise ValueError(f"{what} {path} is {kind}; give the {what} file itself")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise ValueError(f"{what} {path} cannot be read ({e.strerror or first_line(e)})") from None
    except Exception as e:
        # a text or CSV file fails inside the unpickler with a KeyError or IndexError
        # whose text ("101") says nothing
        garbled = isinstance(e, (LookupError, TypeError, AttributeError))
        if garbled:
            first = "not in the format torch.save writes"
        elif isinstance(e, pickle.UnpicklingError) or "weights_only" in str(e):
            # torch's text advises weights_only=False, which would run the file's code
            first = "it holds objects other than tensors and plain containers"
        else:
            first = first_line(e)
        raise ValueError(
            f"refusing to load {what} {path}: it is not a weights-only PyTorch file "
            f"({first}). pyrocompress loads only tensors and plain containers, never "
            "objects whose unpickling could run code; re-create the file with pyrocompress"
        ) from None


#: The generator states a checkpoint holds (:mod:`pyrocompress.rng`, one implementation).
rng_state = get_state
set_rng_state = set_state

_RNG_KEYS = ("torch", "cuda", "numpy", "python")


def rng_state_problem(state: Any) -> str | None:
    """Say what is wrong with ``state`` as :func:`set_rng_state` takes it, or return ``None``.

    The states are tried on fresh local generators (a :class:`torch.Generator`, a
    :class:`numpy.random.RandomState`, a :class:`random.Random`), so that a malformed
    state is found before any global generator is touched; CUDA states, which need a
    device to try, are checked for their type (1-D ``uint8`` tensors).

    Parameters
    ----------
    state
        What a checkpoint holds under ``"rng"``.

    Returns
    -------
    str or None
        The problem in a phrase, ``None`` if :func:`set_rng_state` will accept ``state``.
    """
    if not isinstance(state, dict) or set(state) != set(_RNG_KEYS):
        keys = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        return f"rng must be a dict with keys {list(_RNG_KEYS)}, got {keys}"
    torch_state, cuda, numpy_state, python_state = (state[k] for k in _RNG_KEYS)
    if not isinstance(torch_state, torch.Tensor) or torch_state.dtype != torch.uint8:
        return "rng['torch'] must be a uint8 tensor (torch.get_rng_state())"
    if not isinstance(cuda, list) or not all(
        isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1 for t in cuda
    ):
        return "rng['cuda'] must be a list of 1-D uint8 tensors"
    if not (isinstance(numpy_state, list | tuple) and len(numpy_state) == 5):
        return "rng['numpy'] must be [kind, keys, pos, has_gauss, cached]"
    keys = numpy_state[1]
    if not (
        isinstance(keys, torch.Tensor)
        and keys.dtype == torch.int64
        and keys.dim() == 1
        and bool(((keys >= 0) & (keys < 2**32)).all())
    ):
        return "rng['numpy'][1] must be a 1-D int64 tensor of 32-bit words"
    if not (isinstance(python_state, list | tuple) and len(python_state) == 3):
        return "rng['python'] must be [version, internal state, gauss]"
    if not isinstance(python_state[1], list | tuple):
        return "rng['python'][1] must be a list of integers"
    kind, _, pos, has_gauss, cached = numpy_state
    version, internal, gauss = python_state
    try:
        torch.Generator().set_state(torch_state)
    except (RuntimeError, TypeError, ValueError) as e:
        return f"rng['torch'] is not a generator state ({first_line(e)})"
    try:
        np.random.RandomState().set_state(
            (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
        )
    except (TypeError, ValueError, OverflowError, IndexError) as e:
        return f"rng['numpy'] is not a generator state ({first_line(e)})"
    try:
        random.Random().setstate((version, tuple(internal), gauss))
    except (TypeError, ValueError, OverflowError, IndexError) as e:
        return f"rng['python'] is not a generator state ({first_line(e)})"
    return None
