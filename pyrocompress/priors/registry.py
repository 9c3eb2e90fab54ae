"""The prior registry: one entry makes a prior known to every part of pyrocompress.

:func:`register_prior` adds a :class:`~pyrocompress.priors.Prior` subclass under a key;
:func:`get_prior` builds one from its key, and the CLI's ``--prior`` choices and the
feature selector's list of priors with inclusion probabilities are read from the registry
(:func:`prior_keys`), never restated. In the spirit of
:func:`torch.distributions.kl.register_kl`::

    @register_prior("my-prior")
    class MyPrior(Prior):
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pyrocompress.priors.base import Prior

__all__ = ["get_prior", "prior_keys", "register_prior", "registered_priors"]

_REGISTRY: dict[str, type[Prior]] = {}
P = TypeVar("P", bound="type[Prior]")


def register_prior(key: str) -> Callable[[P], P]:
    """Make a class decorator that registers a :class:`Prior` subclass under ``key``.

    The key becomes the class's ``key`` attribute, the name reports and checkpoints
    record, and a choice of ``pyrocompress compress --prior``. Registering a second class
    under a taken key raises ``ValueError`` (re-registering the same class is allowed, so
    that reloading a module in a notebook works).

    Parameters
    ----------
    key
        The registry key, a non-empty string without surrounding spaces.

    Returns
    -------
    Callable
        The class decorator; it returns the class unchanged but for ``key``.

    Raises
    ------
    ValueError
        If ``key`` is not a usable string, or (when decorating) is taken by another class.
    """
    if not isinstance(key, str) or not key or key != key.strip():
        raise ValueError(f"a prior key must be a non-empty string without spaces, got {key!r}")

    def decorate(cls: P) -> P:
        taken = _REGISTRY.get(key)
        if taken is not None and taken.__qualname__ != cls.__qualname__:
            raise ValueError(f"prior key {key!r} is taken by {taken.__qualname__}")
        cls.key = key
        _REGISTRY[key] = cls
        return cls

    return decorate


def registered_priors() -> dict[str, type[Prior]]:
    """Return a copy of the registry: key -> prior class, in registration order."""
    return dict(_REGISTRY)


def prior_keys(*, inclusion_probabilities: bool | None = None) -> tuple[str, ...]:
    """Return the registered keys, optionally only those with (or without) PIPs.

    Parameters
    ----------
    inclusion_probabilities
        ``True`` for the priors with inclusion probabilities, ``False`` for those
        without, ``None`` for all.

    Returns
    -------
    tuple of str
        The keys, in registration order.
    """
    return tuple(
        k
        for k, cls in _REGISTRY.items()
        if inclusion_probabilities is None
        or cls.has_inclusion_probabilities == inclusion_probabilities
    )


def get_prior(prior: str | Prior) -> Prior:
    """Return ``prior`` if it is a :class:`Prior`, else a default instance of its key.

    Parameters
    ----------
    prior
        A prior, or the key of a registered one.

    Returns
    -------
    Prior
        The prior.

    Raises
    ------
    ValueError
        For an unknown key (the message lists the registered ones).
    """
    if isinstance(prior, Prior):
        return prior
    if isinstance(prior, str) and prior in _REGISTRY:
        return _REGISTRY[prior]()
    raise ValueError(
        f"unknown prior {prior!r}; choose one of {sorted(_REGISTRY)} or a Prior object"
    )
