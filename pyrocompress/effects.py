r"""Effects: what model code asks of its context, and the handlers that answer.

Bayesian layers and priors are plain Pyro programs. Three questions about the context
they run in are asked as Pyro effects (``pyro.poutine.runtime.effectful``), never read
from attributes set on modules or from module globals:

:func:`guide_distributions`
    the guide's distribution of latent sites in this step; answered by the local
    reparametrisation handlers of :mod:`pyrocompress.infer.elbo`, ``None`` otherwise;
:func:`point_weights`
    the point (posterior-mean) weight and bias a layer should compute with instead of
    sampling; answered by :class:`PointEstimate`, ``None`` otherwise;
:func:`example_noise`
    standard normal noise whose first dimension runs over the examples of the minibatch;
    ``torch.randn`` unless :class:`ShardExamples` makes it the rows of this rank's
    examples within the noise of the global minibatch.

Handlers are :class:`~pyro.poutine.messenger.Messenger` context managers: they nest, the
innermost answers first, and leaving a block restores exactly what was there before
(re-entrant; nothing global is mutated).

Like every Pyro effect, these are hidden from outer handlers by an inner
``poutine.block()`` that hides all messages: inside a point estimate, block only the
sites you mean (``poutine.block(hide_types=["sample"])``), or the layers sample again.

This module sits at the bottom of the package:
it imports nothing of pyrocompress.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from pyro.distributions import Distribution
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import effectful

__all__ = [
    "PointEstimate",
    "ShardExamples",
    "example_noise",
    "guide_distribution",
    "guide_distributions",
    "point_weights",
]

#: Point weight and bias of one layer (bias ``None`` when the layer has none).
#: A layer's point weight and bias; layers with a normalisation after them
#: (:meth:`~pyrocompress.nn.BayesianLayer.attach_norm`) add the per-channel scale that
#: multiplies the normalised output (the gate's mean, masked).
PointWeights = (
    tuple[torch.Tensor, torch.Tensor | None]
    | tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]
)


# ------------------------------------------------------------------ guide distributions
@effectful(type="guide_distributions")
def _guide_distributions(sites: tuple[str, ...]) -> tuple[Distribution | None, ...] | None:
    return None


def guide_distributions(sites: Sequence[str]) -> tuple[Distribution | None, ...] | None:
    """Return the guide's distributions of several latent sites in this step (one effect).

    Parameters
    ----------
    sites
        Names of the latent sample sites.

    Returns
    -------
    tuple of Distribution or None, or None
        One distribution (or ``None`` for a site the guide does not know) per site;
        ``None`` unless the caller runs under
        :class:`~pyrocompress.infer.LocalReparameterization` or
        :class:`~pyrocompress.infer.LocalReparamELBO`.
    """
    return _guide_distributions(tuple(sites))


def guide_distribution(site: str) -> Distribution | None:
    """Return the guide's distribution of latent ``site`` in this step, or ``None``.

    Parameters
    ----------
    site
        Name of the latent sample site.

    Returns
    -------
    Distribution or None
        As one entry of :func:`guide_distributions`.
    """
    found = _guide_distributions((site,))
    return None if found is None else found[0]


# ------------------------------------------------------------------------ point weights
@effectful(type="point_weights")
def _point_weights(layer: object) -> PointWeights | None:
    return None


def point_weights(layer: object) -> PointWeights | None:
    """Return the point weight and bias ``layer`` computes with, or ``None`` (sample).

    Parameters
    ----------
    layer
        The Bayesian layer asking.

    Returns
    -------
    tuple of (Tensor, Tensor or None), or None
        ``(weight, bias)`` under a :class:`PointEstimate` that knows ``layer``, else ``None``.
    """
    return _point_weights(layer)


class PointEstimate(Messenger):
    """Answer :func:`point_weights` for the layers in ``weights`` (keyed by the layer).

    Within the block those layers compute with the given weights and sample nothing;
    other layers (of another network) are left to outer handlers. Nested blocks: the
    innermost that knows a layer answers; leaving it restores the outer one's answer.

    Parameters
    ----------
    weights
        Map from layer module to its ``(weight, bias)`` (layers are told apart by identity).
    """

    def __init__(self, weights: Mapping[Any, PointWeights]):
        super().__init__()
        self.weights = {id(k): v for k, v in weights.items()}

    def _pyro_point_weights(self, msg) -> None:
        found = self.weights.get(id(msg["args"][0]))
        if found is not None:
            msg["value"] = found
            msg["done"] = True
            msg["stop"] = True


# ------------------------------------------------------------------------ example noise
@effectful(type="example_noise")
def _example_noise(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, device=like.device, dtype=like.dtype)


def example_noise(shape: torch.Size | tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """Return standard normal noise of ``shape`` on the device and dtype of ``like``.

    The first dimension of ``shape`` runs over the examples of the (local) minibatch. In
    a single process this is ``torch.randn``; under :class:`ShardExamples` each rank
    draws the noise of the whole global minibatch and keeps its own rows, so example
    ``i`` of the global batch gets the same noise as in a single process.

    Parameters
    ----------
    shape
        Shape of the noise; its first dimension runs over the local examples.
    like
        Tensor whose device and dtype the noise takes.

    Returns
    -------
    Tensor
        Noise of ``shape``.
    """
    return _example_noise(tuple(shape), like)


class ShardExamples(Messenger):
    """Make :func:`example_noise` the rows ``rank::size`` of the global minibatch's noise.

    The rows are those of the examples a
    :class:`~torch.utils.data.DistributedSampler` gives rank ``rank`` of ``size``; every
    rank draws from the stream they share (same seed), so a data-parallel step follows
    the single-process step with the same global batch.

    Parameters
    ----------
    rank
        This process's rank, in ``[0, size)``.
    size
        Number of processes (the world size).

    Raises
    ------
    ValueError
        If ``rank`` is not in ``[0, size)``.
    """

    def __init__(self, rank: int, size: int):
        super().__init__()
        if not 0 <= rank < size:
            raise ValueError(f"rank must be in [0, size), got rank={rank}, size={size}")
        self.rank, self.size = int(rank), int(size)

    def _pyro_example_noise(self, msg) -> None:
        shape, like = msg["args"]
        full = torch.randn((shape[0] * self.size, *shape[1:]), device=like.device, dtype=like.dtype)
        msg["value"] = full[self.rank :: self.size]
        msg["done"] = True
        msg["stop"] = True
