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

__all__ = [
    "DEFAULT_THREADS",
    "get_state",
    "intra_op_threads",
    "seeded",
    "seeded_by",
    "set_state",
    "threads_by",
]

F = TypeVar("F", bound=Callable[..., Any])


def _cuda_initialised() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def get_state() -> dict[str, Any]:
    """Return the states of torch's (CPU and CUDA), NumPy's and Python's generators.

    In a form a weights-only ``torch.load`` reads back (tensors, numbers, strings,
    lists), so that checkpoints store it as it is. CUDA states are taken only once CUDA
    is initialised (taking them would initialise it).

    Returns
    -------
    dict
        Keys ``"torch"``, ``"cuda"``, ``"numpy"``, ``"python"``.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if _cuda_initialised() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": [version, list(internal), gauss],
    }


def set_state(state: dict[str, Any]) -> None:
    """Restore the generators from :func:`get_state`.

    Parameters
    ----------
    state
        The dictionary :func:`get_state` returned (CUDA states for as many devices as
        both machines have).
    """
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():  # as many devices as both machines have
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


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


def _under(context: Callable[[Any], Any], parameter: str) -> Callable[[F], F]:
    """Make a decorator that runs the function under ``context(<its argument parameter>)``.

    The argument's default applies when the caller leaves it out; the decorated function
    keeps its signature and docstring.
    """

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            with context(bound.arguments[parameter]):
                return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def threads_by(parameter: str = "threads") -> Callable[[F], F]:
    """Make a decorator that runs the function under :func:`intra_op_threads`.

    The decorated function's argument ``parameter`` gives the number of threads (its
    default applies when the caller leaves it out); the caller's setting is restored.
    """
    return _under(intra_op_threads, parameter)


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
    return _under(seeded, parameter)


#: The library's thread policy: torch intra-op threads per process while it trains or
#: evaluates (:func:`threads_by`). See :func:`intra_op_threads`.
DEFAULT_THREADS = 1


@contextlib.contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, restoring the number after.

    ``None`` leaves the number alone.

    **The thread policy.** :func:`~pyrocompress.fit`, :func:`~pyrocompress.pretrain` and
    the command line run with ``DEFAULT_THREADS`` = 1 intra-op thread per process unless
    told otherwise (``threads=``, ``--threads``), and give torch's setting back after;
    :meth:`Posterior.inclusion_probabilities <pyrocompress.Posterior.inclusion_probabilities>`
    always does (its many small operations gain nothing from more).
    Why: torch starts one busy-waiting OpenMP thread per core in every process, so two
    processes on the same cores (two fits side by side, a study's ``--jobs``, any other
    job) oversubscribe them, and each step waits on threads that are descheduled:
    measured on 2 cores, runs became 10-40 times slower (issue 27). The networks this
    library trains are small enough that one thread loses little when the machine is
    free (``benchmarks/speed/threads.py`` measures both; ``docs/results/threads.md``).
    Give ``threads`` = the number of cores when one process has the machine to itself and
    the network is large; ``None`` keeps whatever torch is set to. torch's setting is
    process-wide: other Python threads of the process (a notebook kernel's, a server's)
    run with it too until the block ends.
    """
    check("threads", count)
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
