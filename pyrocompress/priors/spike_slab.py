"""The spike-and-slab prior on groups :cite:p:`saha2024efficient`."""

from __future__ import annotations

import math
from typing import cast, override

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin

from pyrocompress.constraints import PARAMETERS
from pyrocompress.distributions import (
    ConditionalSlab,
    LogVarNormal,
    MarginalizedBernoulli,
)
from pyrocompress.effects import example_noise
from pyrocompress.priors.base import (
    Gate,
    LayerSpec,
    Prior,
    check_positive,
)
from pyrocompress.priors.guides import LayerGuide
from pyrocompress.priors.registry import register_prior

#: Distance of :class:`SpikeAndSlab`'s ``prior_inclusion`` from 0 and 1 (the bounds of
#: ``PARAMETERS["prior_inclusion"]``): float32 holds ``1 - 1e-6`` but rounds ``1 - 1e-8``
#: to 1, whose ``log(1 - p)`` is ``-inf``.
_INCLUSION = PARAMETERS["prior_inclusion"]
_MIN_INCLUSION = _INCLUSION.low
#: Uniform draws for the logistic noise of the straight-through gates are kept this far
#: from 0 and 1 (float32 rounds the normal CDF of 5.3 to 1).
_MIN_UNIFORM = 1e-6
#: The gradient estimators of :class:`SpikeAndSlab` (``estimator``).
ESTIMATORS = ("moments", "straight-through")
#: The ways :class:`SpikeAndSlab`'s slab scale may vary between layers (``slab_scaling``).
SLAB_SCALINGS = ("none", "fan_in")


class SpikeAndSlabGuide(LayerGuide):
    r"""The guide family of :class:`SpikeAndSlab`: Bernoulli gates and a structured slab.

    :math:`q(\gamma_g) = \mathrm{Bernoulli}(\pi_g)` and :math:`q(\tilde w \mid \gamma)`.
    """

    @override
    def _gate_init(self) -> None:
        logits = 3.0 + 0.01 * torch.randn(self.spec.num_groups)
        self.declare("inclusion_logit", logits, role="logit")

    @override
    def _gate_guide(self) -> None:
        q = MarginalizedBernoulli(logits=self.inclusion_logit)
        pyro.sample(self.spec.site("inclusion"), q.to_event(1))

    @override
    def _slab_guides(self) -> tuple[TorchDistributionMixin, TorchDistributionMixin | None]:
        r"""Return the structured factors :math:`q(\tilde w \mid \gamma)`.

        See :class:`~pyrocompress.distributions.ConditionalSlab`.
        """
        spec = self.spec
        pi = torch.sigmoid(self.inclusion_logit)
        q_weight, q_bias = super()._slab_guides()
        # the base family's factors are LogVarNormal (mean and log-variance)
        q_w = cast(LogVarNormal, q_weight)
        q_weight = ConditionalSlab(q_w.loc, q_w.log_var, spec.expand_groups(pi))
        if q_bias is not None and spec.bias_gated:
            q_b = cast(LogVarNormal, q_bias)
            q_bias = ConditionalSlab(q_b.loc, q_b.log_var, pi)
        return q_weight, q_bias

    @override
    def gate_moments(self, *, conditional: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Return :math:`(\pi, \pi)` per group, or :math:`(1, 1)` given inclusion."""
        if conditional:
            one = torch.ones_like(self.inclusion_logit)
            return one, one
        pi = torch.sigmoid(self.inclusion_logit)
        return pi, pi

    @override
    def group_log_alpha(self) -> torch.Tensor:
        r"""Return :math:`\log\alpha = \log((1-\pi)/\pi)`.

        So that :math:`\sigma(-\log\alpha) = \pi`.
        """
        return -self.inclusion_logit

    @override
    def gate_exceedance(self, threshold: torch.Tensor | None = None) -> torch.Tensor:
        r"""Return :math:`P(\gamma_g > t_g) = \pi_g\,[t_g < 1]`.

        :math:`\pi_g = q(\gamma_g = 1)` :cite:p:`saha2024efficient` for every group whose
        weights, once included, are relevant (their slab is wide enough for the data to
        see them: :math:`s^2 h_g > 1`); see :meth:`LayerGuide.gate_exceedance`.
        """
        t = self._threshold(threshold)
        pi = torch.sigmoid(self.inclusion_logit)
        return pi * (t < 1.0).to(pi.dtype)


@register_prior("spike-slab")
class SpikeAndSlab(Prior):
    r"""Spike-and-slab prior on groups (nodes), as in :cite:t:`saha2024efficient`.

    .. math::

        \gamma_g \sim \mathrm{Bernoulli}(\lambda), \quad \tilde w \sim N(0, s^2), \quad
        w = \gamma_g \tilde w,

    so the weights of group :math:`g` are :math:`N(0, s^2)` when :math:`\gamma_g = 1` and
    exactly zero otherwise. Guide :math:`q(\gamma_g) = \mathrm{Bernoulli}(\pi_g)` and
    :math:`q(\tilde w) = N(\mu, \sigma^2)`; the posterior inclusion probability of a group
    is :math:`\mathrm{PIP}_g = \pi_g`.

    Gradient estimator (default, ``estimator="moments"``): the inclusion gates are
    marginalised *exactly* in the first two
    moments of the locally reparametrised pre-activations,
    :math:`E[\gamma\tilde w] = \pi\mu` and
    :math:`\mathrm{Var}[\gamma\tilde w] = \pi(\sigma^2 + \mu^2) - \pi^2\mu^2`
    :cite:p:`hubin2019combining`. Gradients with respect to :math:`\pi` are then exact gradients
    of a deterministic function: no score-function (REINFORCE) noise and no temperature
    to anneal, unlike a relaxed Bernoulli :cite:p:`maddison2017concrete`, whose bias and variance
    depend on the temperature. The price is the Gaussian approximation of the
    pre-activation, the same one the local reparametrisation already makes for Conv2d.

    Parameters
    ----------
    prior_inclusion
        :math:`\lambda \in [10^{-6}, 1 - 10^{-6}]`, prior probability that a group is
        active.
    slab_scale
        :math:`s`, standard deviation of the slab, in :data:`SCALE_RANGE`; with
        ``slab_scaling="fan_in"`` its gain :math:`c`.
    slab_scaling
        ``"none"`` (the default): the slab is :math:`N(0, s^2)` in every layer.
        ``"fan_in"``: :math:`N(0, c^2/\text{fan-in})` in each layer, the scale of weights
        initialised as in :cite:t:`lecun1998gradient` and of the guide's initial means. A slab much
        wider than the weights (:math:`N(0, 1)` for LeNet-300-100's first layer, whose
        weights are about :math:`1/\sqrt{784}`) makes a large :math:`\mu` nearly free,
        while the structured KL charges each group :math:`\pi` times a few nats per weight:
        lowering every :math:`\pi` and growing :math:`\mu` (the network acts through
        :math:`\pi\mu`) is then the steepest way down the bound, and the inclusion
        probabilities of the first layers collapse (``docs/results/spike-slab-mnist.md``).
    estimator
        The gradient estimator of the expected log-likelihood with respect to the gates
        (:meth:`local_gate`). ``"moments"`` (the default): the gates marginalised in the
        pre-activations' first two moments, as above; each output unit's pre-activation
        gets the gates' variance on its own, so the noise of a group's gate, which in
        the model is shared by every unit the group feeds, averages out across them.
        ``"straight-through"``: one Bernoulli draw per example and group, shared by those
        units, with the gradient of a relaxed draw (biased, with temperature).
    temperature
        :math:`\tau > 0` of the relaxed draws of ``estimator="straight-through"``;
        :math:`2/3` by default :cite:p:`maddison2017concrete`.

    Examples
    --------
    >>> import torch, pyrocompress as pc
    >>> prior = pc.SpikeAndSlab(prior_inclusion=0.5)
    >>> prior.prior_inclusion, prior.estimator, prior.needs_local_reparam
    (0.5, 'moments', True)
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), prior, seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
    >>> pips = pc.Posterior(bnn).inclusion_probabilities()  # one per group (input unit)
    >>> {name: tuple(p.shape) for name, p in pips.items()}
    {'1': (4,), '3': (8,)}
    >>> all(bool(((p >= 0) & (p <= 1)).all()) for p in pips.values())
    True
    """

    hyper_parameters = (
        "prior_inclusion",
        "slab_scale",
        "slab_scaling",
        "estimator",
        "temperature",
    )
    guide_family = SpikeAndSlabGuide
    needs_local_reparam = True
    nuts_unsupported = (
        "NUTS cannot sample the spike-and-slab's discrete inclusion gates; use the "
        "group horseshoe or Gaussian prior for a gold-standard comparison"
    )

    def __init__(
        self,
        prior_inclusion: float = 0.1,
        slab_scale: float = 1.0,
        slab_scaling: str = "none",
        estimator: str = "moments",
        temperature: float = 2.0 / 3.0,
    ):
        super().__init__(weight_scale=check_positive("slab_scale", slab_scale))
        self.slab_scale = self.weight_scale
        if slab_scaling not in SLAB_SCALINGS:
            raise ValueError(
                f"slab_scaling must be one of {SLAB_SCALINGS} ('fan_in': a slab of standard "
                f"deviation slab_scale/sqrt(fan-in) in each layer), got {slab_scaling!r}"
            )
        self.slab_scaling = slab_scaling
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        self.estimator = estimator
        self.temperature = check_positive("temperature", temperature)
        if (
            isinstance(prior_inclusion, bool)
            or not isinstance(prior_inclusion, int | float)
            or not 0.0 < prior_inclusion < 1.0
        ):
            raise ValueError(
                f"prior_inclusion must be a probability strictly between 0 and 1, "
                f"got {prior_inclusion!r}"
            )
        if not _INCLUSION.admits(prior_inclusion):
            raise ValueError(
                f"prior_inclusion must be between {_MIN_INCLUSION:g} and "
                f"1 - {_MIN_INCLUSION:g}, got {prior_inclusion!r}: closer to 0 or 1 its "
                "logarithm, or that of 1 - prior_inclusion, is not usable in float32; a "
                "prior that certain is better stated by removing (or keeping) the groups"
            )
        self.prior_inclusion = float(prior_inclusion)

    def slab_sd(self, spec: LayerSpec) -> float:
        r"""Return the slab's standard deviation :math:`s` in the layer of ``spec``.

        ``slab_scale`` itself, or ``slab_scale`` :math:`/\sqrt{\text{fan-in}}` with
        ``slab_scaling="fan_in"``.
        """
        if self.slab_scaling == "fan_in":
            return self.slab_scale / math.sqrt(spec.fan_in)
        return self.slab_scale

    def _gate_priors(self, spec: LayerSpec, zero: torch.Tensor) -> dict[str, dist.Distribution]:
        prior = dist.Bernoulli(zero + self.prior_inclusion).expand((spec.num_groups,))
        return {"inclusion": prior.to_event(1)}

    @override
    def layer_weight_scale(self, spec: LayerSpec) -> float:
        """Return the slab's standard deviation in this layer (:meth:`slab_sd`)."""
        return self.slab_sd(spec)

    @override
    def gate(self, spec: LayerSpec, values: dict[str, torch.Tensor]) -> torch.Tensor:
        return values["inclusion"]

    @override
    def local_gate(
        self, spec: LayerSpec, batch_size: int, qs: dict[str, dist.Distribution]
    ) -> Gate:
        r"""Return the gate moments :math:`(\pi, \pi)`, or per-example gate draws.

        ``estimator="moments"``: the moments, with which the layer marginalises the gates
        in its pre-activations' first two moments, each output unit on its own.
        ``estimator="straight-through"``: one draw :math:`\gamma_{ng} \sim
        \mathrm{Bernoulli}(\pi_g)` per example and group, shared by every output unit
        the group feeds, as :math:`\gamma = [\ell + L > 0]` with logistic noise
        :math:`L` (from :func:`~pyrocompress.effects.example_noise` through the normal
        CDF), whose gradient is that of the relaxed draw
        :math:`\sigma((\ell + L)/\tau)` (:cite:t:`maddison2017concrete,jang2017categorical`; the
        straight-through estimator of :cite:t:`bengio2013estimating`).
        """
        # the gate factor _gate_guide samples the inclusions from
        q = cast(MarginalizedBernoulli, qs["inclusion"])
        if self.estimator == "moments":
            pi = q.probs
            return pi, pi
        logits = q.logits
        eps = example_noise((batch_size, *logits.shape), logits)
        u = torch.special.ndtr(eps).clamp(_MIN_UNIFORM, 1.0 - _MIN_UNIFORM)
        y = logits + (torch.log(u) - torch.log1p(-u))
        soft = torch.sigmoid(y / self.temperature)
        return (y > 0).to(soft.dtype) + (soft - soft.detach())
