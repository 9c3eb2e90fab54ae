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
    """

    hyper_parameters = ("scale",)
    guide_family = GaussianGuide
    has_inclusion_probabilities = False
    supports_moments = True

    def __init__(self, scale: float = 1.0):
        check_positive("scale", scale)
        super().__init__(weight_scale=scale, bias_scale=scale)
        self.scale = self.weight_scale
