"""The random-number policy: a seed never changes the caller's global random state.

Functions that take a ``seed`` (:func:`~pyrocompress.bayesianize`,
:func:`~pyrocompress.fit`, :func:`~pyrocompress.pretrain`,
:meth:`~pyrocompress.FeatureSelector.fit`, ...) run their body under :func:`seeded`: the
global torch (CPU and every initialised CUDA device), NumPy and :mod:`random` states are
saved, seeded with ``seed`` as ``pyro.set_rng_seed`` does, and restored on the way out,
normally or by an exception. The same seed gives the same result, and a user's
``np.random.rand()`` after ``FeatureSelector(random_state=0).fit(X, y)`` continues the
user's own stream (scikit-learn's convention; ``check_random_state`` never reseeds the
global generator). With ``seed=None`` nothing is saved or seeded: the body draws from
the caller's streams, as any torch code does.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import random
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import numpy as np
import pyro
import torch

from pyrocompress.constraints import check

__all__ = ["get_state", "seeded", "seeded_by", "set_state"]

F = TypeVar("F", bound=Callable[..., Any])


def get_state() -> dict[str, Any]:
    """Return the global random states: torch CPU, CUDA devices (if initialised), NumPy, random.

    Returns
    -------
    dict
        Keys ``"torch"``, ``"numpy"``, ``"random"`` and, when CUDA is initialised,
        ``"cuda"``; :func:`set_state` restores them.
    """
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "random": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_state(state: dict[str, Any]) -> None:
    """Restore global random states captured by :func:`get_state`.

    Parameters
    ----------
    state
        The dictionary :func:`get_state` returned.
    """
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block with the global generators seeded by ``seed``, then restore them.

    Parameters
    ----------
    seed
        A non-negative integer below ``2**32``, or ``None`` to leave the generators as they
        are (the block then draws from the caller's streams and nothing is restored).
    """
    if seed is None:
        yield
        return
    state = get_state()
    try:
        pyro.set_rng_seed(int(check("seed", seed)))
        yield
    finally:
        # CUDA may have been initialised inside the block: its state is then left as seeded
        set_state(state)


def seeded_by(parameter: str = "seed") -> Callable[[F], F]:
    """Make a decorator that runs the function under :func:`seeded` with one of its arguments.

    Parameters
    ----------
    parameter
        Name of the decorated function's argument that holds the seed (its default
        applies when the caller leaves it out).

    Returns
    -------
    Callable
        The decorator; the decorated function keeps its signature and docstring.
    """

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with seeded(bound.arguments[parameter]):
                return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
