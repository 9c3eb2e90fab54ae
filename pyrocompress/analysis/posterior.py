r"""Posterior analysis: inclusion probabilities, log-alpha, SNR, effective weights, bits.

Everything here reads the guide's parameters (the fitted variational posterior); nothing
is sampled. For a layer with gate :math:`g` per group and non-centred weights
:math:`\tilde w \sim N(\mu, \sigma^2)` under the guide, the effective weight
:math:`w = g\tilde w` has

.. math::

    E[w] = E[g]\,\mu, \qquad
    \mathrm{Var}[w] = E[g^2](\sigma^2 + \mu^2) - E[g]^2\mu^2,

which for the group normal-Jeffreys guide is Louizos et al. (2017)'s
:math:`\mu_z^2\sigma_w^2 + \sigma_z^2\mu_w^2 + \sigma_z^2\sigma_w^2`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from pyrocompress.analysis import diagnostics
from pyrocompress.nn import BayesianLayer, BayesianNetwork, product_moments

if TYPE_CHECKING:
    from pyrocompress.priors import LayerGuide

__all__ = ["BitPrecision", "Posterior", "mantissa_bits", "exponent_bits"]

_MAX_MANTISSA = 23


def mantissa_bits(variance: torch.Tensor) -> torch.Tensor:
    r"""Return the mantissa bits each weight needs given its posterior variance.

    Louizos et al. (2017), §4: the largest :math:`t \in \{1, \dots, 23\}` whose unit
    round-off :math:`u_t = \tfrac12 2^{1-t}` still exceeds :math:`2V`, i.e. the number of
    such :math:`t` (0 when even :math:`u_1 = 1/2` is below the noise).

    Parameters
    ----------
    variance
        Posterior variances :math:`V` of the weights, any shape.

    Returns
    -------
    Tensor
        Integer bit counts, the shape of ``variance``.
    """
    t = torch.arange(1, _MAX_MANTISSA + 1, dtype=torch.float64, device=variance.device)
    unit_round_off = 0.5 * 2.0 ** (1.0 - t)
    return (2.0 * variance.double().unsqueeze(-1) < unit_round_off).sum(-1)


def exponent_bits(max_abs: float) -> int:
    r"""Return the exponent bits for weights whose largest magnitude is ``max_abs``.

    Louizos et al. (2017), §4: :math:`\lceil \log_2(\log_2 m + 1) + 1 \rceil` for
    :math:`m = \max|w|`, with the inner argument clamped at 1, so that at least one bit is
    used when :math:`m < 1`.

    Parameters
    ----------
    max_abs
        The largest magnitude :math:`m` of the weights.

    Returns
    -------
    int
        The number of exponent bits, at least 1.
    """
    inner = max(math.log2(max(max_abs, 1e-30)) + 1.0, 1.0)
    return max(1, math.ceil(math.log2(inner) + 1.0))


@dataclass(frozen=True)
class BitPrecision:
    """Fixed-point precision of one layer's kept weights: sign + exponent + mantissa.

    Parameters
    ----------
    mantissa
        Mantissa bits (:func:`mantissa_bits`).
    exponent
        Exponent bits (:func:`exponent_bits`).
    """

    mantissa: int
    exponent: int

    @property
    def total(self) -> int:
        """Total bits per weight: one sign bit, the exponent and the mantissa."""
        return 1 + self.exponent + self.mantissa


class Posterior:
    """Posterior summaries of a fitted :class:`~pyrocompress.nn.BayesianNetwork`.

    Every method returns a dict from layer name to a tensor, in network order.

    Parameters
    ----------
    bnn
        The network; its guide's parameters are read when a method is called, so a
        ``Posterior`` follows further fitting.

    Raises
    ------
    TypeError
        If ``bnn`` is not a :class:`~pyrocompress.nn.BayesianNetwork`.

    Examples
    --------
    Fit a small classifier for two epochs on made-up data, then summarise its posterior
    (a group of a Linear layer is one of its inputs):

    >>> import torch
    >>> import pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-horseshoe", seed=0)
    >>> history = pc.fit(bnn, (X, y), epochs=2, batch_size=32, progress=False)
    >>> post = pc.Posterior(bnn)
    >>> post.layer_names
    ['1', '3']
    >>> pips = post.inclusion_probabilities()
    >>> {name: tuple(p.shape) for name, p in pips.items()}
    {'1': (4,), '3': (8,)}
    >>> all(bool(((p > 0) & (p < 1)).all()) for p in pips.values())
    True
    >>> {name: tuple(m.shape) for name, m in post.weight_mean().items()}
    {'1': (8, 4), '3': (2, 8)}
    >>> post.bit_precision()  # doctest: +ELLIPSIS
    {'1': BitPrecision(mantissa=..., exponent=...), '3': BitPrecision(...)}
    """

    def __init__(self, bnn: BayesianNetwork):
        if not isinstance(bnn, BayesianNetwork):
            raise TypeError(
                f"Posterior expects the BayesianNetwork returned by pyrocompress.bayesianize, "
                f"got {type(bnn).__name__}"
            )
        self.bnn = bnn
        self._layers = bnn.bayesian_layers()

    @property
    def layer_names(self) -> list[str]:
        """Names of the Bayesian layers, in network order."""
        return list(self._layers)

    def _each(self, method: str, layers: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Return ``guide.<method>()`` of every layer (or of ``layers``).

        Each layer's guide family (its prior's) answers for it.
        """
        names = self.layer_names if layers is None else layers
        with torch.no_grad():
            return {
                name: getattr(self.bnn.guide[name], method)().detach().clone() for name in names
            }

    def to_datatree(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        *,
        num_samples: int = 200,
        all_weights: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Return this posterior as an ArviZ 1.x ``xarray.DataTree``.

        See :func:`pyrocompress.analysis.diagnostics.to_datatree` for the groups and
        keyword arguments (``history``, ``seed``).

        Parameters
        ----------
        X, y
            Data for the log-likelihood and posterior-predictive groups.
        num_samples
            Number of draws from the guide.
        all_weights
            Include every weight, not only the gates and first-layer weights.
        **kwargs
            Passed on (``history``, ``seed``).

        Returns
        -------
        xarray.DataTree
            The ArviZ data.
        """
        return diagnostics.to_datatree(
            self, X, y, num_samples=num_samples, all_weights=all_weights, **kwargs
        )

    def _each_layer(
        self, fn: Callable[[BayesianLayer, LayerGuide], torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Return ``fn(layer, guide)`` of every layer, detached, by layer name."""
        with torch.no_grad():
            return {
                name: fn(layer, self.bnn.guide[name]).detach().clone()
                for name, layer in self._layers.items()
            }

    # ------------------------------------------------------------------- group level
    def log_alpha(self) -> dict[str, torch.Tensor]:
        r"""Return the per-group :math:`\log\alpha`, the log relative posterior variance of a gate.

        Group normal-Jeffreys: :math:`\log\sigma_z^2 - \log\mu_z^2` (Louizos et al. 2017,
        §3.1); horseshoe: :math:`\log(e^{v} - 1)` with :math:`v = \mathrm{Var}\log g`;
        spike-and-slab: :math:`\log((1-\pi)/\pi)`; Gaussian (no gate): the group's
        :math:`\log(\sum \mathrm{Var}\,w / \sum (E w)^2)`. Large values mark groups to prune.

        Returns
        -------
        dict of str to Tensor
            One value per group, by layer name.
        """
        return self._each("group_log_alpha")

    def dropout_rates(self) -> dict[str, torch.Tensor]:
        r"""Return the Gaussian-dropout rate of each group, :math:`p = \alpha / (1 + \alpha)`.

        Returns
        -------
        dict of str to Tensor
            One rate per group, by layer name.
        """
        return {k: torch.sigmoid(v) for k, v in self.log_alpha().items()}

    def inclusion_probabilities(self, layers: list[str] | None = None) -> dict[str, torch.Tensor]:
        r"""Return the posterior inclusion probability of each group.

        Spike-and-slab: :math:`\pi_g = q(\gamma_g = 1)` (Saha, Liu & Liang 2024). Group
        normal-Jeffreys and horseshoe: :math:`1 - p = 1/(1 + \alpha)`, one minus the
        group's dropout rate, a monotone map of :math:`\log\alpha`.

        Parameters
        ----------
        layers
            Names of the layers to report; all when omitted.

        Returns
        -------
        dict of str to Tensor
            One probability per group, by layer name.

        Raises
        ------
        ValueError
            For a layer with the Gaussian prior, where they are not defined.
        """
        return self._each("inclusion_probabilities", layers)

    def snr(self, level: str = "group") -> dict[str, torch.Tensor]:
        r"""Return the signal-to-noise ratio :math:`|E w| / \mathrm{sd}\,w` of effective weights.

        Parameters
        ----------
        level
            ``"weight"``: per weight. ``"group"``:
            :math:`\lVert E w_g \rVert_2 / (\sum_j \mathrm{Var}\,w_{gj})^{1/2}` over the
            weights of each group.

        Returns
        -------
        dict of str to Tensor
            The ratios, by layer name.

        Raises
        ------
        ValueError
            If ``level`` is neither ``"group"`` nor ``"weight"``.
        """
        mean, var = self.weight_mean(), self.weight_var()
        if level == "weight":
            return {k: mean[k].abs() / var[k].sqrt() for k in mean}
        if level == "group":
            return {
                k: self._layers[k].spec.group_sum(mean[k] ** 2).sqrt()
                / self._layers[k].spec.group_sum(var[k]).sqrt()
                for k in mean
            }
        raise ValueError(f"level must be 'group' or 'weight', got {level!r}")

    # ------------------------------------------------------------------ weight level
    @staticmethod
    def _moments(
        layer: BayesianLayer, guide: LayerGuide, conditional: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior mean and variance of a layer's effective weights."""
        mu, var = guide.weight_moments()
        gm = guide.gate_moments(conditional=conditional)
        if gm is None:
            return mu, var
        m1, m2 = (layer.spec.expand_groups(t) for t in gm)
        return product_moments(m1, m2, mu, var)

    def weight_mean(self, *, conditional: bool = False) -> dict[str, torch.Tensor]:
        """Return the posterior mean of the effective weights ``E[g W~]``.

        Parameters
        ----------
        conditional
            Given that every group is kept (only spike-and-slab differs).

        Returns
        -------
        dict of str to Tensor
            The means, shaped as each layer's weight, by layer name.
        """
        return self._each_layer(lambda layer, g: self._moments(layer, g, conditional)[0])

    def weight_var(self, *, conditional: bool = False) -> dict[str, torch.Tensor]:
        """Return the posterior variance of the effective weights.

        Parameters
        ----------
        conditional
            Given that every group is kept (only spike-and-slab differs).

        Returns
        -------
        dict of str to Tensor
            The variances, shaped as each layer's weight, by layer name.
        """
        return self._each_layer(
            lambda layer, g: self._moments(layer, g, conditional)[1].clamp_min(0.0)
        )

    def weight_log_alpha(self) -> dict[str, torch.Tensor]:
        r"""Return the per-weight :math:`\log\alpha = \log(\mathrm{Var}\,w / (E w)^2)` (Sparse VD).

        Returns
        -------
        dict of str to Tensor
            The values, shaped as each layer's weight, by layer name.
        """
        snr = self.snr("weight")
        return {k: -2.0 * v.clamp_min(1e-30).log() for k, v in snr.items()}

    def bit_precision(
        self, masks: dict[str, torch.Tensor] | None = None
    ) -> dict[str, BitPrecision]:
        """Return each layer's fixed-point precision from the posterior variance.

        Louizos et al. (2017), §4. Mantissa bits: the mean over the layer's kept weights
        of :func:`mantissa_bits` of their posterior variance (given inclusion), rounded
        up. Exponent bits: :func:`exponent_bits` of the largest kept posterior-mean
        magnitude.

        Parameters
        ----------
        masks
            Boolean group masks (True = kept) per layer; all groups when omitted.

        Returns
        -------
        dict of str to BitPrecision
            The precision, by layer name.
        """
        means = self.weight_mean(conditional=True)
        variances = self.weight_var(conditional=True)
        out = {}
        for name, layer in self._layers.items():
            keep = torch.ones(layer.spec.num_groups, dtype=torch.bool)
            if masks is not None and name in masks:
                keep = masks[name].to(torch.bool).cpu()
            full = layer.spec.expand_groups(keep).expand(layer.spec.weight_shape)
            v = variances[name].cpu()[full]
            m = means[name].cpu()[full]
            if v.numel() == 0:
                out[name] = BitPrecision(0, 1)
                continue
            mant = int(math.ceil(mantissa_bits(v).double().mean().item()))
            out[name] = BitPrecision(mant, exponent_bits(m.abs().max().item()))
        return out
