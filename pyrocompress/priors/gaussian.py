"""The mean-field Gaussian prior :cite:p:`blundell2015weight`."""

from __future__ import annotations

from typing import override

import torch

from pyrocompress.priors.base import (
    Prior,
    check_positive,
)
from pyrocompress.priors.guides import LayerGuide
from pyrocompress.priors.registry import register_prior


class GaussianGuide(LayerGuide):
    """The guide family of :class:`Gaussian`: the base mean-field normal, no gate."""

    @override
    def group_log_alpha(self) -> torch.Tensor:
        """Return the log of the group-level relative variance ``sum Var w / sum (E w)^2``."""
        spec = self.spec
        mean, var = self.weight_moments()
        return torch.log(spec.group_sum(var)) - torch.log(spec.group_sum(mean**2).clamp_min(1e-30))

    @override
    def gate_exceedance(self, threshold: torch.Tensor | None = None) -> torch.Tensor:
        """Refuse: the Gaussian prior has no inclusion variables.

        Raises
        ------
        ValueError
            Always; the message names the alternatives (SNR, a group prior).
        """
        raise ValueError(
            "the Gaussian prior has no inclusion variables; use Posterior.snr() or "
            "prune(rule='snr') instead, or choose a group prior"
        )


@register_prior("gaussian")
class Gaussian(Prior):
    r"""Mean-field Gaussian prior :math:`w \sim N(0, s^2)` :cite:p:`blundell2015weight`.

    No group structure: the pruning signal is the signal-to-noise ratio of the weights
    (:meth:`pyrocompress.Posterior.snr`); inclusion probabilities are not defined.

    Parameters
    ----------
    scale
        Prior standard deviation of every weight and bias, in :data:`SCALE_RANGE`.

    Examples
    --------
    >>> import torch, pyrocompress as pc
    >>> prior = pc.Gaussian(scale=0.5)
    >>> prior, prior.has_inclusion_probabilities, prior.supports_moments
    (Gaussian(scale=0.5), False, True)
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), prior, seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
    >>> snr = pc.Posterior(bnn).snr("group")  # this prior's pruning signal
    >>> {name: tuple(s.shape) for name, s in snr.items()}
    {'1': (4,), '3': (8,)}
    >>> all(bool((s > 0).all()) for s in snr.values())
    True
    """

    hyper_parameters = ("scale",)
    guide_family = GaussianGuide
    has_inclusion_probabilities = False
    supports_moments = True

    def __init__(self, scale: float = 1.0):
        check_positive("scale", scale)
        super().__init__(weight_scale=scale, bias_scale=scale)
        self.scale = self.weight_scale
