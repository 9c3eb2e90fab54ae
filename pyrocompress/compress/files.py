"""Compact-model files: the architecture as data and the weights, loadable without pickle.

A compact network (an ``nn.Sequential`` of plain modules) is written as
``{"format", "architecture", "state_dict", "metadata"}``: the architecture is a list of
module descriptions built from the constructor arguments each module's op rule declares
(:attr:`~pyrocompress.nn.OpRule.args`), so a registered op is also a writable one.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyrocompress.infer.checkpoint import atomic_save, safe_load
from pyrocompress.nn.rules import registered_ops

__all__ = ["FORMAT", "load_compact", "save_compact"]

FORMAT = "pyrocompress.compact/1"


def _writable() -> dict[str, list[type[nn.Module]]]:
    """Return the module classes a file can describe (with rule ``args``), by class name."""
    out: dict[str, list[type[nn.Module]]] = {}
    for key, rule in registered_ops().items():
        if isinstance(key, type) and issubclass(key, nn.Module) and rule.args is not None:
            out.setdefault(key.__name__, []).append(key)
    return out


def _class_named(name: object) -> type[nn.Module]:
    """Return the writable module class called ``name`` (unknown or ambiguous: ValueError)."""
    found = _writable().get(name, []) if isinstance(name, str) else []
    if len(found) != 1:
        what = "unknown" if not found else "ambiguous (registered more than once)"
        raise ValueError(f"{what} module type {name!r} in the architecture")
    return found[0]


def _describe(m: nn.Module) -> dict:
    """Return the description of module ``m``: its type and its rule's constructor arguments."""
    cls = type(m)
    rule = registered_ops().get(cls)  # the exact type: files rebuild modules by class name
    args = None if rule is None else rule.args
    if args is None:
        raise TypeError(
            f"cannot serialise module {cls.__name__}: register an op rule with its "
            "constructor arguments (pyrocompress.nn.register_op(..., OpRule(args=...)))"
        )
    if _writable()[cls.__name__] != [cls]:
        raise TypeError(
            f"cannot serialise module {cls.__qualname__}: another registered module class is "
            f"also called {cls.__name__!r}, and files name classes by their name"
        )
    spec: dict = {"type": cls.__name__}
    for arg in args:
        value = getattr(m, arg)
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        spec[arg] = list(value) if isinstance(value, tuple) else value
    if "bias" in inspect.signature(cls).parameters:  # a layer that may have no bias
        spec["bias"] = getattr(m, "bias", None) is not None
    return spec


def _construct(spec: dict) -> nn.Module:
    """Return the module a description of :func:`_describe` stands for."""
    spec = dict(spec)
    cls = _class_named(spec.pop("type", None))
    # JSON-like files hold tuples (kernel sizes, strides, indices) as lists
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})


def save_compact(module: nn.Sequential, path: str | os.PathLike, **metadata: Any) -> None:
    """Write ``{"format", "architecture", "state_dict", "metadata"}`` atomically.

    The file loads with ``torch.load(path, weights_only=True)``; :func:`load_compact`
    rebuilds the module from it.

    Parameters
    ----------
    module
        The compact network; every module needs an op rule with constructor arguments.
    path
        Destination file.
    **metadata
        Stored as they are (values ``torch.load(weights_only=True)`` can read).

    Raises
    ------
    TypeError
        If a module has no op rule with constructor arguments.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "architecture": [_describe(m) for m in module],
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "metadata": metadata,
    }
    atomic_save(payload, path)


def load_compact(path: str | os.PathLike) -> nn.Sequential:
    """Load a compact network written by :func:`save_compact`.

    The file is read with ``weights_only=True``
    (:func:`pyrocompress.infer.checkpoint.safe_load`): a file that would run code when
    unpickled raises :class:`ValueError` unexecuted.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    torch.nn.Sequential
        The network, in eval mode.

    Raises
    ------
    ValueError
        If the file is not a compact model, names an unknown module type, or cannot be
        read safely.
    """
    payload = safe_load(path, "compact model")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pyrocompress compact model (format {FORMAT})")
    module = nn.Sequential(*[_construct(s) for s in payload["architecture"]])
    module.load_state_dict(payload["state_dict"])
    return module.eval()
