"""Guides: the variational families of a Bayesian network, with module-local parameters.

The guide of a network is a plain :class:`torch.nn.Module` holding one :class:`LayerGuide`
per Bayesian layer. Its parameters never enter Pyro's global parameter store, so two
networks in one notebook never share state, and ``state_dict`` / ``load_state_dict`` of
the network save and restore the posterior. Which parameters a layer's guide has, and how
its sites are sampled, is decided by the layer's prior (:mod:`pyrocompress.priors`): the
guides are fully factorised (mean-field) and non-centred, so Pyro's
:class:`~pyro.infer.TraceMeanField_ELBO` uses an analytic KL for every site.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import cast, override

import pyro.poutine as poutine
import torch
from torch import nn

from pyrocompress.constraints import check
from pyrocompress.priors.base import (
    BOUNDED_ROLES,
    LOG_VAR_RANGE,
    LayerGuide,
    LayerSpec,
    Prior,
    Role,
)
from pyrocompress.priors.conditional import GUIDES

__all__ = ["LayerGuide", "NetworkGuide"]


def _key(name: str) -> str:
    """Return the ``ModuleDict`` key of layer ``name`` (dots are not allowed in keys)."""
    return name.replace(".", "__")


def _layer_guide(spec: LayerSpec, prior: Prior, weights: str) -> LayerGuide:
    """Return the layer's guide: conditional weights where its gate allows them."""
    family = prior.guide_family
    if weights == "conditional" and family.gate_quadrature is LayerGuide.gate_quadrature:
        weights = "mean-field"  # no continuous gate (Gaussian, spike-and-slab)
    return family(spec, prior, weights=weights)


class NetworkGuide(nn.Module):
    """The guide of a :class:`~pyrocompress.nn.BayesianNetwork`.

    Called with the model's arguments; only ``kl_scale`` is used (KL warm-up scales the
    guide's sites and the model's latent sites alike, see :func:`pyrocompress.fit`).

    Parameters
    ----------
    layers
        ``(spec, prior)`` of each Bayesian layer, in layer order.
    weights
        ``"mean-field"`` or ``"conditional"`` (:class:`LayerGuide`): for every layer
        whose prior has a continuous gate, the others keep the mean-field family.
    """

    def __init__(self, layers: Iterable[tuple[LayerSpec, Prior]], *, weights: str = "mean-field"):
        super().__init__()
        if weights not in GUIDES:
            raise ValueError(f"guide must be one of {GUIDES}, got {weights!r}")
        self.weights = weights
        self.layers = nn.ModuleDict({_key(s.name): _layer_guide(s, p, weights) for s, p in layers})

    def __getitem__(self, name: str) -> LayerGuide:
        return cast(LayerGuide, self.layers[_key(name)])

    def _layer_guides(self) -> Iterator[tuple[str, LayerGuide]]:
        """Yield ``(key, guide)`` of every layer, in layer order (keys as in :func:`_key`)."""
        for key, layer in self.layers.items():
            yield key, cast(LayerGuide, layer)

    def parameters_with_role(self, role: Role) -> list[nn.Parameter]:
        """Return every variational parameter declared with ``role``, in layer order.

        Parameters
        ----------
        role
            One of :data:`ROLES`.

        Returns
        -------
        list of torch.nn.Parameter
            The parameters.
        """
        return [
            getattr(layer, name)
            for _, layer in self._layer_guides()
            for name, r in layer.roles.items()
            if r == role
        ]

    def log_var_bounds(
        self, max_weight_variance: Mapping[str, float] | None = None
    ) -> list[tuple[nn.Parameter, float, float]]:
        """Return every log-variance parameter with the interval it is kept in.

        ``LOG_VAR_RANGE`` for all of them; the weight and bias log-variances of a layer
        named in ``max_weight_variance`` (layer name -> largest variance) are capped at the
        log of that variance instead, as :cite:t:`louizos2017bayesian` cap the first layer of
        LeNet-300-100 at 0.04 in their code.

        Parameters
        ----------
        max_weight_variance
            Largest weight variance by layer name, or ``None``.

        Returns
        -------
        list of (Parameter, float, float)
            Each log-variance parameter with its lower and upper bound.

        Raises
        ------
        ValueError
            If ``max_weight_variance`` names an unknown layer or a cap is not a positive
            finite number.
        """
        caps = dict(max_weight_variance or {})
        unknown = sorted(set(caps) - {n.replace("__", ".") for n in self.layers})
        if unknown:
            raise ValueError(
                f"max_weight_variance names unknown layers {unknown}; the Bayesian layers "
                f"are {[n.replace('__', '.') for n in self.layers]}"
            )
        low, high = LOG_VAR_RANGE
        out = []
        for key, layer in self._layer_guides():
            cap = caps.get(key.replace("__", "."))
            if cap is not None:
                layer_name = key.replace("__", ".")
                check("max_weight_variance", cap, label=f"max_weight_variance[{layer_name!r}]")
            for name, role in layer.roles.items():
                if role not in BOUNDED_ROLES:
                    continue
                p = getattr(layer, name)
                top = high
                if cap is not None and role == "weight_log_var":
                    top = min(high, math.log(cap))
                out.append((p, low, top))
        return out

    @torch.no_grad()
    def clamp_log_var_(self, bounds: list[tuple[nn.Parameter, float, float]] | None = None) -> None:
        """Project every log-variance parameter into its interval (in place).

        :func:`pyrocompress.fit` calls it after each optimiser step (with the
        :meth:`log_var_bounds`, collected once), the projected-gradient form of the
        variance clipping of :cite:t:`louizos2017bayesian`: the guide's distributions then need no
        clamp in the autograd graph of every step.

        Parameters
        ----------
        bounds
            The intervals (:meth:`log_var_bounds`); ``None`` computes them.
        """
        for p, low, high in self.log_var_bounds() if bounds is None else bounds:
            p.clamp_(low, high)

    @override
    def forward(self, *args, kl_scale: float = 1.0, **kwargs) -> None:
        """Sample every layer's guide sites, scaled by ``kl_scale``.

        Parameters
        ----------
        *args, **kwargs
            The model's arguments (unused).
        kl_scale
            Scale of the guide's log-densities (KL warm-up).
        """
        with poutine.scale(scale=kl_scale) if kl_scale != 1.0 else contextlib.nullcontext():
            for layer in self.layers.values():
                layer()
