r"""Priors over the weights of one Bayesian layer, with their matching guides.

Every prior here writes the effective weight of a layer in non-centred form,

.. math:: W = g \odot \tilde W, \qquad \tilde W \sim N(0, v),

where :math:`g` is one gate or scale per *group* (Linear: the weights leaving one input
unit, i.e. a column of the weight matrix; Conv2d: one output channel, its bias included)
and broadcasts along the group's weights. A prior defines

* the model-side ``pyro.sample`` statements of a layer (:meth:`Prior.model`),
* the variational parameters and guide-side statements (:meth:`Prior.init_guide`,
  :meth:`Prior.guide`), fully factorised so that :class:`~pyro.infer.TraceMeanField_ELBO`
  uses the analytic KL of every site,
* the per-example gate for local reparametrisation (:meth:`Prior.local_gate`), and
* the posterior summaries the analysis layer needs (gate moments, group log-alpha and
  inclusion probabilities).

Sites of a layer named ``L``: ``L.weight`` (:math:`\tilde W`), ``L.bias`` and the prior's
gate sites (``L.scale``; ``L.global_a``, ``L.global_b``, ``L.local_a``, ``L.local_b``;
``L.inclusion``).

Guide parameters use log-variances initialised at -9, weight means at
:math:`N(0, 1/\text{fan-in})` and gates near one, as in the public code of
Louizos, Ullrich & Welling (2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyrocompress.distributed import example_noise
from pyrocompress.distributions import (
    ConditionalSlab,
    IsotropicNormal,
    LogUniform,
    LogVarNormal,
    MarginalizedBernoulli,
    half_cauchy_scale_parts,
)

__all__ = [
    "Gaussian",
    "GroupHorseshoe",
    "GroupNormalJeffreys",
    "LayerSpec",
    "Prior",
    "SpikeAndSlab",
    "get_prior",
]

_LOG_VAR_INIT = -9.0
#: Range of every guide log-variance; :meth:`NetworkGuide.clamp_log_var_` projects the
#: parameters into it after each optimiser step (as Louizos et al. 2017 clip variances).
LOG_VAR_RANGE = (-30.0, 10.0)
_LOG_VAR_MIN, _LOG_VAR_MAX = LOG_VAR_RANGE

#: A gate handed to a locally reparametrised layer: ``None`` (no gate), a tensor of
#: per-example draws ``[batch, groups]``, or the first two moments ``(E g, E g^2)``.
Gate = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None


@dataclass(frozen=True)
class LayerSpec:
    """The shape facts of one Bayesian layer that priors and analysis need.

    Parameters
    ----------
    name
        Site prefix, the layer's path in the network (``"0"``, ``"features.3"``).
    kind
        ``"linear"`` or ``"conv2d"``.
    weight_shape
        ``(out, in)`` or ``(out, in, kh, kw)``.
    has_bias
        Whether the layer has a bias.
    """

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    has_bias: bool

    @property
    def group_dim(self) -> int:
        """Axis of the weight that indexes groups: inputs (Linear), outputs (Conv2d)."""
        return 1 if self.kind == "linear" else 0

    @property
    def num_groups(self) -> int:
        return self.weight_shape[self.group_dim]

    @property
    def fan_in(self) -> int:
        return math.prod(self.weight_shape[1:])

    @property
    def bias_gated(self) -> bool:
        """Conv2d gates a whole output channel, bias included, so a pruned channel is 0."""
        return self.kind == "conv2d"

    def site(self, part: str) -> str:
        return f"{self.name}.{part}"

    def expand_groups(self, g: torch.Tensor) -> torch.Tensor:
        """Broadcast a per-group tensor ``[..., G]`` against the weight tensor."""
        if self.kind == "linear":
            return g.unsqueeze(-2)
        return g[..., None, None, None]

    def group_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a weight-shaped tensor over each group, giving ``[G]``."""
        dims = [d for d in range(t.dim()) if d != self.group_dim]
        return t.sum(dim=dims)


def _variance(log_var: torch.Tensor) -> torch.Tensor:
    return log_var.clamp(_LOG_VAR_MIN, _LOG_VAR_MAX).exp()


def _normal(loc: torch.Tensor, log_var: torch.Tensor) -> LogVarNormal:
    # no clamp in the graph: fit keeps log-variances in range (NetworkGuide.clamp_log_var_)
    return LogVarNormal(loc, log_var)


def _event(d: dist.Distribution, ndim: int) -> dist.Distribution:
    return d.to_event(ndim) if ndim else d


def _base(d: dist.Distribution) -> dist.Distribution:
    while isinstance(d, dist.Independent):
        d = d.base_dist
    return d


#: Range of every prior scale hyper-parameter. The priors compute ``scale**-2`` in float32,
#: which overflows to inf below about 1e-19 (the loss turns NaN at once); well before that a
#: scale this far from 1 makes the KL swamp the likelihood (a ``Gaussian(1e-6)`` prior puts
#: the loss of a small network near 1e10), so such values are refused as mistakes.
SCALE_RANGE = (1e-6, 1e6)


def _check_positive(name: str, value: float) -> float:
    """``value`` as a float if it is a positive finite number in :data:`SCALE_RANGE`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    low, high = SCALE_RANGE
    if not low <= value <= high:
        raise ValueError(
            f"{name} must be between {low:g} and {high:g}, got {value!r}: further from 1 the "
            f"prior's KL swamps the likelihood, and {name}**-2 overflows float32 below "
            "1e-19; "
            + (
                "use e.g. 1e-5, the default (Louizos et al. 2017)"
                if name == "scale_global"
                else "use e.g. 1.0, the default, and standardise the inputs instead"
            )
        )
    return float(value)


class Prior:
    """Base class: the weight and bias sites shared by every prior.

    Subclasses add a per-group gate through the ``_gate_*`` hooks.
    """

    #: Short name used by the CLI and reports.
    key: str = ""
    #: Whether the prior has a per-group gate (and so inclusion probabilities).
    grouped: bool = True

    def __init__(self, weight_scale: float = 1.0, bias_scale: float = 1.0):
        self.weight_scale = _check_positive("weight_scale", weight_scale)
        self.bias_scale = _check_positive("bias_scale", bias_scale)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper_parameters())
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------- guide parameters
    def init_guide(self, spec: LayerSpec, module: nn.Module) -> None:
        """Create the layer's variational parameters on ``module`` (module-local)."""
        shape = spec.weight_shape
        # N(0, 1/fan-in) as in the authors' code, whatever the prior's scale: the weights
        # must start where the network computes well, not where the prior is widest
        std = 1.0 / math.sqrt(spec.fan_in)
        module.weight_loc = nn.Parameter(torch.randn(shape) * std)
        module.weight_log_var = nn.Parameter(_LOG_VAR_INIT + 0.01 * torch.randn(shape))
        if spec.has_bias:
            module.bias_loc = nn.Parameter(torch.zeros(shape[0]))
            module.bias_log_var = nn.Parameter(_LOG_VAR_INIT + 0.01 * torch.randn(shape[0]))
        self._gate_init(spec, module)

    # ---------------------------------------------------------------------- model side
    def model(self, spec: LayerSpec, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sample the layer's model sites; returns their values by part name."""
        return {
            part: pyro.sample(spec.site(part), d)
            for part, d in self.site_priors(spec, like).items()
        }

    def site_priors(self, spec: LayerSpec, like: torch.Tensor) -> dict[str, dist.Distribution]:
        """The prior of each of the layer's sites, by part name, in sampling order.

        Built once per layer shape, device, dtype and hyper-parameter values and then
        reused: a training step samples every site of every layer, and the priors never
        change.
        """
        key = (spec, like.device, like.dtype, self._hyper_parameters())
        cache = self.__dict__.setdefault("_site_prior_cache", {})
        if key not in cache:
            zero = like.new_zeros(())
            shape = spec.weight_shape
            priors = self._gate_priors(spec, zero)
            weight = IsotropicNormal(0.0, self.weight_scale, shape, like=zero)
            priors["weight"] = weight.to_event(len(shape))
            if spec.has_bias:
                bias = IsotropicNormal(0.0, self.bias_scale, shape[:1], like=zero)
                priors["bias"] = bias.to_event(1)
            cache[key] = priors
        return cache[key]

    def _hyper_parameters(self) -> tuple:
        return tuple((k, v) for k, v in vars(self).items() if not k.startswith("_"))

    def __getstate__(self) -> dict:  # the cache holds tensors: never pickle or copy it
        return {k: v for k, v in vars(self).items() if k != "_site_prior_cache"}

    def guide(self, spec: LayerSpec, module: nn.Module) -> None:
        """Sample the layer's guide sites from ``module``'s variational parameters."""
        self._gate_guide(spec, module)
        ndim = len(spec.weight_shape)
        q_weight, q_bias = self._slab_guides(spec, module)
        pyro.sample(spec.site("weight"), q_weight.to_event(ndim))
        if q_bias is not None:
            pyro.sample(spec.site("bias"), q_bias.to_event(1))

    def _slab_guides(
        self, spec: LayerSpec, module: nn.Module
    ) -> tuple[dist.Distribution, dist.Distribution | None]:
        """Guide factors of the (non-centred) weights and the bias."""
        q_bias = _normal(module.bias_loc, module.bias_log_var) if spec.has_bias else None
        return _normal(module.weight_loc, module.weight_log_var), q_bias

    def gate(self, spec: LayerSpec, values: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The per-group gate computed from sampled site values (plain path)."""
        return None

    def local_gate(
        self, spec: LayerSpec, batch_size: int, qs: dict[str, dist.Distribution]
    ) -> Gate:
        """Per-example gate draws, or gate moments (local reparametrisation path), from the
        guide's distributions ``qs`` of the layer's sites, by part name."""
        return None

    # --------------------------------------------------------------- posterior summary
    def weight_moments(self, module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of the non-centred weights ``W~``."""
        return module.weight_loc, _variance(module.weight_log_var)

    def bias_moments(self, module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        return module.bias_loc, _variance(module.bias_log_var)

    def gate_moments(
        self, spec: LayerSpec, module: nn.Module, *, conditional: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Posterior ``(E g, E g^2)`` per group; ``None`` for an ungated prior.

        With ``conditional=True`` the moments are those given that the group is kept
        (differs from the marginal ones for spike-and-slab only).
        """
        return None

    def group_log_alpha(self, spec: LayerSpec, module: nn.Module) -> torch.Tensor:
        r"""Per-group :math:`\log\alpha`, the log of the gate's relative posterior variance."""
        m1, m2 = self.gate_moments(spec, module)
        return torch.log((m2 - m1**2).clamp_min(1e-30)) - torch.log((m1**2).clamp_min(1e-30))

    def inclusion_probabilities(self, spec: LayerSpec, module: nn.Module) -> torch.Tensor:
        r"""Per-group inclusion probability :math:`1 - \alpha/(1+\alpha) = \sigma(-\log\alpha)`.

        For a Gaussian-dropout view of the gate (Louizos et al. 2017, §3.1; Molchanov et
        al. 2017) :math:`\alpha/(1+\alpha)` is the dropout rate of the group, so its
        complement is the probability that the group is retained.
        """
        return torch.sigmoid(-self.group_log_alpha(spec, module))

    # ------------------------------------------------------------------------- hooks
    def _gate_init(self, spec: LayerSpec, module: nn.Module) -> None:
        pass

    def _gate_priors(self, spec: LayerSpec, zero: torch.Tensor) -> dict[str, dist.Distribution]:
        return {}

    def _gate_guide(self, spec: LayerSpec, module: nn.Module) -> None:
        pass


class Gaussian(Prior):
    r"""Mean-field Gaussian prior :math:`w \sim N(0, s^2)` (Blundell et al. 2015).

    No group structure: the pruning signal is the signal-to-noise ratio of the weights
    (:meth:`pyrocompress.Posterior.snr`); inclusion probabilities are not defined.

    Parameters
    ----------
    scale
        Prior standard deviation of every weight and bias, in :data:`SCALE_RANGE`.
    """

    key = "gaussian"
    grouped = False

    def __init__(self, scale: float = 1.0):
        _check_positive("scale", scale)
        super().__init__(weight_scale=scale, bias_scale=scale)
        self.scale = self.weight_scale

    def group_log_alpha(self, spec: LayerSpec, module: nn.Module) -> torch.Tensor:
        """Group-level relative variance of the weights, ``sum Var w / sum (E w)^2``."""
        mean, var = self.weight_moments(module)
        return torch.log(spec.group_sum(var)) - torch.log(spec.group_sum(mean**2).clamp_min(1e-30))

    def inclusion_probabilities(self, spec: LayerSpec, module: nn.Module) -> torch.Tensor:
        raise ValueError(
            "the Gaussian prior has no inclusion variables; use Posterior.snr() or "
            "prune(rule='snr') instead, or choose a group prior"
        )


class GroupNormalJeffreys(Prior):
    r"""Group normal-Jeffreys (log-uniform) prior, Louizos, Ullrich & Welling (2017), §3.1.

    .. math::

        p(z_g) \propto |z_g|^{-1}, \qquad \tilde w \sim N(0, 1), \qquad w = z_g \tilde w,

    so that :math:`w \mid z_g \sim N(0, z_g^2)`. Guide :math:`q(z_g) = N(\mu_g, \mu_g^2
    \alpha_g)` and :math:`q(\tilde w) = N(\mu_w, \sigma_w^2)`, i.e. :math:`q(w \mid z) =
    N(z\mu_w, z^2\sigma_w^2)` (eqs. 8–9). The KL of :math:`z` uses the Molchanov et al.
    (2017) approximation (eq. 10); the conditional KL of the weights reduces to the
    standard-normal KL of :math:`\tilde w`. :math:`\log\alpha_g = \log\sigma^2_{z,g} -
    \log\mu^2_{z,g}`; large values mark groups to prune.
    """

    key = "group-nj"

    def __init__(self):
        super().__init__()

    def _gate_init(self, spec: LayerSpec, module: nn.Module) -> None:
        g = spec.num_groups
        module.scale_loc = nn.Parameter(1.0 + 0.01 * torch.randn(g))
        module.scale_log_var = nn.Parameter(_LOG_VAR_INIT + 0.01 * torch.randn(g))

    def _gate_priors(self, spec: LayerSpec, zero: torch.Tensor) -> dict[str, dist.Distribution]:
        return {"scale": LogUniform((spec.num_groups,)).to_event(1)}

    def _gate_guide(self, spec: LayerSpec, module: nn.Module) -> None:
        pyro.sample(spec.site("scale"), _normal(module.scale_loc, module.scale_log_var).to_event(1))

    def gate(self, spec: LayerSpec, values: dict[str, torch.Tensor]) -> torch.Tensor:
        return values["scale"]

    def local_gate(self, spec, batch_size, qs):
        q = qs["scale"]
        return torch.addcmul(q.loc, q.scale, example_noise((batch_size, *q.loc.shape), q.loc))

    def gate_moments(self, spec, module, *, conditional=False):
        mu = module.scale_loc
        var = _variance(module.scale_log_var)
        return mu, mu**2 + var

    def group_log_alpha(self, spec: LayerSpec, module: nn.Module) -> torch.Tensor:
        log_var = module.scale_log_var.clamp(_LOG_VAR_MIN, _LOG_VAR_MAX)
        return log_var - torch.log((module.scale_loc**2).clamp_min(1e-30))


class GroupHorseshoe(Prior):
    r"""Group horseshoe prior, Louizos, Ullrich & Welling (2017), §3.2.

    .. math::

        s \sim C^+(0, \tau_0), \quad \tilde z_g \sim C^+(0, 1), \quad
        \tilde w \sim N(0, 1), \quad w = s\,\tilde z_g\,\tilde w,

    with one global scale :math:`s` per layer. Each half-Cauchy is written through its
    Gamma / inverse-Gamma decomposition
    (:func:`~pyrocompress.distributions.half_cauchy_scale_parts`):
    :math:`s^2 = s_a s_b`, :math:`s_a \sim \mathrm{Gamma}(\tfrac12, \text{rate } \tau_0^{-2})`,
    :math:`s_b \sim \mathrm{InvGamma}(\tfrac12, 1)`, and likewise :math:`\tilde z_g^2 =
    a_g b_g` with :math:`\tau_0` replaced by 1. All four scale factors get log-normal guides,
    whose KLs against the Gamma and inverse-Gamma are analytic. The gate is
    :math:`g = \sqrt{s_a s_b a_g b_g}`, log-normal under the guide with
    :math:`\log g \sim N(m, v)`, :math:`m = \tfrac12\sum\mu`, :math:`v = \tfrac14\sum\sigma^2`.

    Parameters
    ----------
    scale_global
        :math:`\tau_0`, in :data:`SCALE_RANGE` (``1e-6`` to ``1e6``; under ``1e-19`` the
        Gamma rate :math:`\tau_0^{-2}` is infinite in float32). The
        default ``1e-5`` is the value of Louizos et al. (2017, §5). A
        small :math:`\tau_0` states that most groups are irrelevant (Piironen & Vehtari 2017
        relate it to the expected number of relevant groups); the Cauchy tail still lets
        the data pull the scale of a useful layer to order one at the cost of a few nats,
        negligible against the likelihood of thousands of examples.
    """

    key = "group-horseshoe"

    def __init__(self, scale_global: float = 1e-5):
        super().__init__()
        self.scale_global = _check_positive("scale_global", scale_global)

    _PARTS = ("global_a", "global_b", "local_a", "local_b")

    def _gate_init(self, spec: LayerSpec, module: nn.Module) -> None:
        g = spec.num_groups
        # Start at a gate of one with the global factor at its prior's scale: s_a at
        # tau0^2, s_b at 1/tau0^2, local factors at one.
        log_t2 = 2.0 * math.log(self.scale_global)
        for part, shape, loc in (
            ("global_a", (), log_t2),
            ("global_b", (), -log_t2),
            ("local_a", (g,), 0.0),
            ("local_b", (g,), 0.0),
        ):
            setattr(module, f"{part}_loc", nn.Parameter(loc + 0.01 * torch.randn(shape)))
            setattr(
                module, f"{part}_log_var", nn.Parameter(_LOG_VAR_INIT + 0.01 * torch.randn(shape))
            )

    def _gate_priors(self, spec: LayerSpec, zero: torch.Tensor) -> dict[str, dist.Distribution]:
        ga, gb = half_cauchy_scale_parts(self.scale_global, (), like=zero)
        la, lb = half_cauchy_scale_parts(1.0, (spec.num_groups,), like=zero)
        return {
            "global_a": ga,
            "global_b": gb,
            "local_a": la.to_event(1),
            "local_b": lb.to_event(1),
        }

    def _lognormal(self, module: nn.Module, part: str) -> dist.LogNormal:
        loc = getattr(module, f"{part}_loc")
        log_var = getattr(module, f"{part}_log_var")
        return dist.LogNormal(loc, (0.5 * log_var).exp())

    def _gate_guide(self, spec: LayerSpec, module: nn.Module) -> None:
        for part in self._PARTS:
            q = self._lognormal(module, part)
            pyro.sample(spec.site(part), _event(q, 1 if part.startswith("local") else 0))

    def gate(self, spec: LayerSpec, values: dict[str, torch.Tensor]) -> torch.Tensor:
        prod = values["global_a"] * values["global_b"] * values["local_a"] * values["local_b"]
        return prod.sqrt()

    def local_gate(self, spec, batch_size, qs):
        # log g^2 is a sum of independent normals: the two global parts (shared by the
        # groups of an example) and the two local parts of each group. Draw each sum once,
        # reparametrised: the same joint law as four draws, with half the random numbers.
        loc = qs["global_a"].loc
        g_loc = qs["global_a"].loc + qs["global_b"].loc
        g_std = (qs["global_a"].scale ** 2 + qs["global_b"].scale ** 2).sqrt()
        l_loc = qs["local_a"].loc + qs["local_b"].loc
        l_std = (qs["local_a"].scale ** 2 + qs["local_b"].scale ** 2).sqrt()
        eps_g = example_noise((batch_size, 1), loc)
        eps_l = example_noise((batch_size, *l_loc.shape), loc)
        log_g2 = (g_loc + g_std * eps_g) + (l_loc + l_std * eps_l)
        return (0.5 * log_g2).exp()

    def log_gate_moments(self, module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of :math:`\\log g` under the guide, per group."""
        m = 0.0
        v = 0.0
        for part in self._PARTS:
            q = self._lognormal(module, part)
            m = m + 0.5 * q.loc
            v = v + 0.25 * q.scale**2
        return m, v

    def gate_moments(self, spec, module, *, conditional=False):
        m, v = self.log_gate_moments(module)
        return (m + 0.5 * v).exp(), (2.0 * m + 2.0 * v).exp()

    def group_log_alpha(self, spec: LayerSpec, module: nn.Module) -> torch.Tensor:
        r""":math:`\log\alpha = \log(\mathrm{Var}\,g / (\mathrm{E}\,g)^2) = \log(e^{v} - 1)`.

        The relative posterior variance of the gate, as a public port of BC-GHS prunes on.
        It reflects the gate's uncertainty, not its size: a group the likelihood switches
        off first gets a small gate and only later, as its log-normal factors revert to
        their Gamma / inverse-Gamma priors (:math:`v \to \tfrac12\psi'(\tfrac12) \approx
        2.47`, :math:`\alpha \approx 11`), a large :math:`\alpha`. Short runs therefore
        overstate the inclusion probabilities of irrelevant groups; the automatic pruning
        rule ranks by group SNR, which sees the size of the effective weights.
        """
        _, v = self.log_gate_moments(module)
        return torch.log(torch.expm1(v).clamp_min(1e-30))


#: Distance of :class:`SpikeAndSlab`'s ``prior_inclusion`` from 0 and 1: float32 holds
#: ``1 - 1e-6`` but rounds ``1 - 1e-8`` to 1, whose ``log(1 - p)`` is ``-inf``.
_MIN_INCLUSION = 1e-6


class SpikeAndSlab(Prior):
    r"""Spike-and-slab prior on groups (nodes), as in Saha, Liu & Liang (2024).

    .. math::

        \gamma_g \sim \mathrm{Bernoulli}(\lambda), \quad \tilde w \sim N(0, s^2), \quad
        w = \gamma_g \tilde w,

    so the weights of group :math:`g` are :math:`N(0, s^2)` when :math:`\gamma_g = 1` and
    exactly zero otherwise. Guide :math:`q(\gamma_g) = \mathrm{Bernoulli}(\pi_g)` and
    :math:`q(\tilde w) = N(\mu, \sigma^2)`; the posterior inclusion probability of a group
    is :math:`\mathrm{PIP}_g = \pi_g`.

    Gradient estimator: the inclusion gates are marginalised *exactly* in the first two
    moments of the locally reparametrised pre-activations,
    :math:`E[\gamma\tilde w] = \pi\mu` and
    :math:`\mathrm{Var}[\gamma\tilde w] = \pi(\sigma^2 + \mu^2) - \pi^2\mu^2`
    (Hubin & Storvik 2019). Gradients with respect to :math:`\pi` are then exact gradients
    of a deterministic function: no score-function (REINFORCE) noise and no temperature
    to anneal, unlike a relaxed Bernoulli (Maddison et al. 2017), whose bias and variance
    depend on the temperature. The price is the Gaussian approximation of the
    pre-activation, the same one the local reparametrisation already makes for Conv2d.

    Parameters
    ----------
    prior_inclusion
        :math:`\lambda \in [10^{-6}, 1 - 10^{-6}]`, prior probability that a group is
        active.
    slab_scale
        :math:`s`, standard deviation of the slab, in :data:`SCALE_RANGE`.
    """

    key = "spike-slab"

    def __init__(self, prior_inclusion: float = 0.1, slab_scale: float = 1.0):
        _check_positive("slab_scale", slab_scale)
        super().__init__(weight_scale=slab_scale)
        if (
            isinstance(prior_inclusion, bool)
            or not isinstance(prior_inclusion, int | float)
            or not 0.0 < prior_inclusion < 1.0
        ):
            raise ValueError(
                f"prior_inclusion must be a probability strictly between 0 and 1, "
                f"got {prior_inclusion!r}"
            )
        if not _MIN_INCLUSION <= prior_inclusion <= 1.0 - _MIN_INCLUSION:
            raise ValueError(
                f"prior_inclusion must be between {_MIN_INCLUSION:g} and "
                f"1 - {_MIN_INCLUSION:g}, got {prior_inclusion!r}: closer to 0 or 1 its "
                "logarithm, or that of 1 - prior_inclusion, is not usable in float32; a "
                "prior that certain is better stated by removing (or keeping) the groups"
            )
        self.prior_inclusion = float(prior_inclusion)
        self.slab_scale = self.weight_scale

    def _gate_init(self, spec: LayerSpec, module: nn.Module) -> None:
        module.inclusion_logit = nn.Parameter(3.0 + 0.01 * torch.randn(spec.num_groups))

    def _gate_priors(self, spec: LayerSpec, zero: torch.Tensor) -> dict[str, dist.Distribution]:
        prior = dist.Bernoulli(zero + self.prior_inclusion).expand((spec.num_groups,))
        return {"inclusion": prior.to_event(1)}

    def _gate_guide(self, spec: LayerSpec, module: nn.Module) -> None:
        q = MarginalizedBernoulli(logits=module.inclusion_logit)
        pyro.sample(spec.site("inclusion"), q.to_event(1))

    def _slab_guides(self, spec, module):
        """Structured factors :math:`q(\\tilde w \\mid \\gamma)`: see :class:`ConditionalSlab`."""
        pi = torch.sigmoid(module.inclusion_logit)
        q_weight, q_bias = super()._slab_guides(spec, module)
        q_weight = ConditionalSlab(q_weight.loc, q_weight.log_var, spec.expand_groups(pi))
        if q_bias is not None and spec.bias_gated:
            q_bias = ConditionalSlab(q_bias.loc, q_bias.log_var, pi)
        return q_weight, q_bias

    def gate(self, spec: LayerSpec, values: dict[str, torch.Tensor]) -> torch.Tensor:
        return values["inclusion"]

    def local_gate(self, spec, batch_size, qs):
        pi = qs["inclusion"].probs
        return pi, pi

    def gate_moments(self, spec, module, *, conditional=False):
        if conditional:
            one = torch.ones_like(module.inclusion_logit)
            return one, one
        pi = torch.sigmoid(module.inclusion_logit)
        return pi, pi

    def group_log_alpha(self, spec: LayerSpec, module: nn.Module) -> torch.Tensor:
        r""":math:`\log\alpha = \log((1-\pi)/\pi)`, so that :math:`\sigma(-\log\alpha) = \pi`."""
        return -module.inclusion_logit

    def inclusion_probabilities(self, spec: LayerSpec, module: nn.Module) -> torch.Tensor:
        return torch.sigmoid(module.inclusion_logit)


_PRIORS = {cls.key: cls for cls in (Gaussian, GroupNormalJeffreys, GroupHorseshoe, SpikeAndSlab)}


def get_prior(prior: str | Prior) -> Prior:
    """A :class:`Prior` from an instance or one of the keys ``gaussian``, ``group-nj``,
    ``group-horseshoe``, ``spike-slab``."""
    if isinstance(prior, Prior):
        return prior
    if isinstance(prior, str) and prior in _PRIORS:
        return _PRIORS[prior]()
    raise ValueError(f"unknown prior {prior!r}; choose one of {sorted(_PRIORS)} or a Prior object")
