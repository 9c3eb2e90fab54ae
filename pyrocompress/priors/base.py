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
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, override

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin
from torch import nn

from pyrocompress.constraints import PARAMETERS
from pyrocompress.distributions import IsotropicNormal, LogVarNormal

__all__ = [
    "LOG_VAR_RANGE",
    "SCALE_RANGE",
    "Gate",
    "LayerGuide",
    "LayerSpec",
    "Prior",
    "ROLES",
    "Role",
    "check_positive",
]

#: Initial value of every guide log-variance (Louizos et al. 2017, public code).
LOG_VAR_INIT = -9.0
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
        ``"linear"`` (groups are the input units) or the name of a layer whose groups are
        its output channels (``"conv2d"``, ``"conv1d"``, ...).
    weight_shape
        ``(out, in)``, ``(out, in, kh, kw)``, ... (the output units first).
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
        """Number of groups: the size of the weight along :attr:`group_dim`."""
        return self.weight_shape[self.group_dim]

    @property
    def fan_in(self) -> int:
        """Number of weights each output unit reads: the product of ``weight_shape[1:]``."""
        return math.prod(self.weight_shape[1:])

    @property
    def bias_gated(self) -> bool:
        """Whether a gate multiplies a whole output channel, bias included.

        True when the groups are output channels, so that a pruned channel is exactly 0.
        """
        return self.kind != "linear"

    def site(self, part: str) -> str:
        """Return the name of the layer's sample site ``part``: ``"<layer name>.<part>"``."""
        return f"{self.name}.{part}"

    def expand_groups(self, g: torch.Tensor) -> torch.Tensor:
        """Broadcast a per-group tensor ``[..., G]`` against the weight tensor."""
        if self.kind == "linear":
            return g.unsqueeze(-2)
        return g.reshape(*g.shape, *[1] * (len(self.weight_shape) - 1))

    def group_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a weight-shaped tensor over each group, giving ``[G]``."""
        dims = [d for d in range(t.dim()) if d != self.group_dim]
        return t.sum(dim=dims)


def variance(log_var: torch.Tensor) -> torch.Tensor:
    """Variance from a guide log-variance, clamped to :data:`LOG_VAR_RANGE`."""
    return log_var.clamp(_LOG_VAR_MIN, _LOG_VAR_MAX).exp()


def normal(loc: torch.Tensor, log_var: torch.Tensor) -> LogVarNormal:
    """Return a normal guide factor parametrised by its log-variance (no clamp in the graph)."""
    # fit keeps log-variances in range (NetworkGuide.clamp_log_var_)
    return LogVarNormal(loc, log_var)


def lognormal(loc: torch.Tensor, log_var: torch.Tensor) -> dist.LogNormal:
    """Return a log-normal guide factor: ``log x ~ N(loc, exp(log_var))``."""
    return dist.LogNormal(loc, (0.5 * log_var).exp())


def event(d: Any, ndim: int) -> Any:
    """``d.to_event(ndim)``, or ``d`` itself when ``ndim`` is 0."""
    return d.to_event(ndim) if ndim else d


def base_distribution(d: dist.Distribution) -> dist.Distribution:
    """``d`` without its :class:`~pyro.distributions.Independent` wrappers."""
    while isinstance(d, dist.Independent):
        d = d.base_dist
    return d


#: Range of every prior scale hyper-parameter (:data:`pyrocompress.constraints.PARAMETERS`
#: ``"scale"``). The priors compute ``scale**-2`` in float32, which overflows to inf below
#: about 1e-19 (the loss turns NaN at once); well before that a scale this far from 1 makes
#: the KL swamp the likelihood (a ``Gaussian(1e-6)`` prior puts the loss of a small network
#: near 1e10), so such values are refused as mistakes.
SCALE_RANGE: tuple[float, float] = (
    float(PARAMETERS["scale"].low),  # type: ignore[arg-type]  (both bounds are set)
    float(PARAMETERS["scale"].high),  # type: ignore[arg-type]
)


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as a float if it is a positive finite number in :data:`SCALE_RANGE`.

    Raises
    ------
    ValueError
        Naming ``name`` and the fix, otherwise.
    """
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


def _hashable(value: object) -> Hashable:
    """``value`` with lists, tuples and dicts made into (nested) tuples."""
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value  # type: ignore[return-value]


#: What a guide parameter is: the mean of weights or biases (what
#: :func:`~pyrocompress.pretrain` trains), a location or logit of a gate factor, a
#: log-variance of a gate factor (kept in ``LOG_VAR_RANGE``), or a log-variance of
#: weights or biases (kept in ``LOG_VAR_RANGE`` and under a layer's weight-variance cap,
#: see :meth:`~pyrocompress.priors.NetworkGuide.log_var_bounds`).
Role = Literal["weight_loc", "loc", "logit", "log_var", "weight_log_var"]
ROLES: tuple[Role, ...] = ("weight_loc", "loc", "logit", "log_var", "weight_log_var")
BOUNDED_ROLES: tuple[Role, ...] = ("log_var", "weight_log_var")


class LayerGuide(nn.Module):
    r"""The variational family of one Bayesian layer: its parameters and guide sites.

    The base family is the mean-field normal of the non-centred weights and the bias,
    :math:`q(\tilde W) = N(\mu, \sigma^2)`, with no gate; a prior with a gate has a
    subclass that adds the gate's parameters (:meth:`_gate_init`), sample statements
    (:meth:`_gate_guide`) and posterior moments (:meth:`gate_moments`). Each parameter is
    declared with its role (:meth:`declare`); the roles, not the parameters' names, decide
    which are projected into a range after each optimiser step.

    Parameters
    ----------
    spec
        The layer's specification (name, weight shape, groups).
    prior
        The layer's prior (its hyper-parameters set the initial values).

    Attributes
    ----------
    roles : dict of str to Role
        The role of each declared parameter, by name.
    """

    spec: LayerSpec
    prior: Prior
    roles: dict[str, Role]

    def __init__(self, spec: LayerSpec, prior: Prior):
        super().__init__()
        self.spec = spec
        self.prior = prior
        self.roles = {}
        self._init_slab()
        self._gate_init()

    if TYPE_CHECKING:
        # The parameters are declared at run time (``guide.weight_loc``, ...): to the type
        # checker every attribute not declared above is one of them.
        def __getattr__(self, name: str) -> nn.Parameter: ...

    def declare(self, name: str, value: torch.Tensor, *, role: Role) -> nn.Parameter:
        """Register ``value`` as the variational parameter ``name`` with its ``role``.

        Parameters
        ----------
        name
            Attribute name of the parameter (``guide.<name>``).
        value
            Its initial value.
        role
            One of :data:`ROLES`; decides the range it is kept in.

        Returns
        -------
        torch.nn.Parameter
            The registered parameter.

        Raises
        ------
        ValueError
            If ``role`` is not one of :data:`ROLES`.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        param = nn.Parameter(value)
        self.register_parameter(name, param)
        self.roles[name] = role
        return param

    def _init_slab(self) -> None:
        r"""Declare the weight and bias parameters.

        Weight means start at :math:`N(0, 1/\text{fan-in})` as in the authors' code,
        whatever the prior's scale: the weights must start where the network computes
        well, not where the prior is widest. Log-variances start near ``LOG_VAR_INIT``.
        """
        shape = self.spec.weight_shape
        std = 1.0 / math.sqrt(self.spec.fan_in)
        self.declare("weight_loc", torch.randn(shape) * std, role="weight_loc")
        self.declare(
            "weight_log_var", LOG_VAR_INIT + 0.01 * torch.randn(shape), role="weight_log_var"
        )
        if self.spec.has_bias:
            self.declare("bias_loc", torch.zeros(shape[0]), role="weight_loc")
            self.declare(
                "bias_log_var",
                LOG_VAR_INIT + 0.01 * torch.randn(shape[0]),
                role="weight_log_var",
            )

    @override
    def forward(self) -> None:
        """Sample the layer's guide sites: the gate's, then the weights' and the bias's."""
        self._gate_guide()
        ndim = len(self.spec.weight_shape)
        q_weight, q_bias = self._slab_guides()
        pyro.sample(self.spec.site("weight"), q_weight.to_event(ndim))
        if q_bias is not None:
            pyro.sample(self.spec.site("bias"), q_bias.to_event(1))

    def _slab_guides(self) -> tuple[TorchDistributionMixin, TorchDistributionMixin | None]:
        """Return the guide factors of the (non-centred) weights and of the bias."""
        q_bias = normal(self.bias_loc, self.bias_log_var) if self.spec.has_bias else None
        return normal(self.weight_loc, self.weight_log_var), q_bias

    # ------------------------------------------------------------------------- hooks
    def _gate_init(self) -> None:
        """Declare the gate's parameters (none in the base family)."""

    def _gate_guide(self) -> None:
        """Sample the gate's sites (none in the base family)."""

    # --------------------------------------------------------------- posterior summary
    def weight_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior mean and variance of the non-centred weights ``W~``."""
        return self.weight_loc, variance(self.weight_log_var)

    def bias_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior mean and variance of the bias."""
        return self.bias_loc, variance(self.bias_log_var)

    def gate_moments(
        self, *, conditional: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Return the posterior ``(E g, E g^2)`` per group; ``None`` without a gate.

        With ``conditional=True`` the moments are those given that the group is kept
        (differs from the marginal ones for spike-and-slab only).
        """
        return None

    def group_log_alpha(self) -> torch.Tensor:
        r"""Return the per-group :math:`\log\alpha`, the log relative variance of the gate."""
        moments = self.gate_moments()
        if moments is None:
            raise TypeError(f"{type(self).__name__} has no gate: define group_log_alpha")
        m1, m2 = moments
        return torch.log((m2 - m1**2).clamp_min(1e-30)) - torch.log((m1**2).clamp_min(1e-30))

    def inclusion_probabilities(self) -> torch.Tensor:
        r"""Return the per-group :math:`1 - \alpha/(1+\alpha) = \sigma(-\log\alpha)`.

        For a Gaussian-dropout view of the gate (Louizos et al. 2017, §3.1; Molchanov et
        al. 2017) :math:`\alpha/(1+\alpha)` is the dropout rate of the group, so its
        complement is the probability that the group is retained.
        """
        return torch.sigmoid(-self.group_log_alpha())

    @override
    def extra_repr(self) -> str:
        return f"{self.spec.name}: {self.prior!r}"


class Prior:
    """Base class of the priors: the weight and bias sites shared by every prior.

    A prior is the model side of a layer's Bayesian treatment: its sample sites, their
    prior distributions, the gate they make, and the per-example gates of the local
    reparametrisation. Its guide family (``guide_family``, a :class:`LayerGuide` subclass)
    is the variational side: the parameters it declares with their roles, its sample
    statements, and the posterior summaries read from its parameters.
    Subclasses add a per-group gate through the ``_gate_*`` hooks and are made known to
    the CLI, the selector and :func:`~pyrocompress.bayesianize` by
    :func:`~pyrocompress.priors.register_prior`.

    Class attributes (declared capabilities)
    ----------------------------------------
    key
        Registry key (``"group-nj"``); set by :func:`register_prior`.
    guide_family
        The :class:`LayerGuide` subclass of the prior's variational family.
    hyper_parameters
        Names of the constructor arguments that define the prior. Their values form the
        prior's identity (:meth:`identity`: equality, hashing, caches and checkpoints).
    has_inclusion_probabilities
        Whether :meth:`inclusion_probabilities` is defined (feature selection).
    needs_local_reparam
        Whether training needs the local reparametrisation (gates marginalised there).
    supports_moments
        Whether the weights are independent Gaussians under the guide, so that moment
        propagation (``objective="moments"``, unit scores) applies.
    nuts_unsupported
        Why NUTS cannot sample the model, or ``None`` when it can.
    """

    key: ClassVar[str] = ""
    guide_family: ClassVar[type[LayerGuide]] = LayerGuide
    hyper_parameters: ClassVar[tuple[str, ...]] = ()
    has_inclusion_probabilities: ClassVar[bool] = True
    needs_local_reparam: ClassVar[bool] = False
    supports_moments: ClassVar[bool] = False
    nuts_unsupported: ClassVar[str | None] = None

    def __init__(self, weight_scale: float = 1.0, bias_scale: float = 1.0):
        self.weight_scale = check_positive("weight_scale", weight_scale)
        self.bias_scale = check_positive("bias_scale", bias_scale)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyper_parameters)
        return f"{type(self).__name__}({args})"

    def identity(self) -> tuple[Hashable, ...]:
        """Return the prior's type and hyper-parameter values, hashable (lists become tuples)."""
        values = tuple((k, _hashable(getattr(self, k))) for k in self.hyper_parameters)
        scales = (("weight_scale", self.weight_scale), ("bias_scale", self.bias_scale))
        return (type(self).__qualname__, values, scales)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prior) and self.identity() == other.identity()

    def __hash__(self) -> int:
        return hash(self.identity())

    # ---------------------------------------------------------------------- model side
    def model(self, spec: LayerSpec, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sample the layer's model sites; return their values by part name."""
        return {
            part: pyro.sample(spec.site(part), d)
            for part, d in self.site_priors(spec, like).items()
        }

    def site_priors(self, spec: LayerSpec, like: torch.Tensor) -> dict[str, Any]:
        """Return the prior of each of the layer's sites, by part name, in sampling order.

        Built once per layer shape, device, dtype and hyper-parameter values and then
        reused: a training step samples every site of every layer, and the priors never
        change.
        """
        key = (spec, like.device, like.dtype, self.identity())
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

    def __getstate__(self) -> dict:  # the cache holds tensors: never pickle or copy it
        return {k: v for k, v in vars(self).items() if k != "_site_prior_cache"}

    def gate(self, spec: LayerSpec, values: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Return the per-group gate computed from sampled site values (plain path)."""
        return None

    def local_gate(
        self, spec: LayerSpec, batch_size: int, qs: dict[str, dist.Distribution]
    ) -> Gate:
        """Return per-example gate draws, or gate moments (local reparametrisation path).

        They come from the guide's distributions ``qs`` of the layer's sites, by part name.
        """
        return None

    # ------------------------------------------------------------------------- hooks
    def _gate_priors(self, spec: LayerSpec, zero: torch.Tensor) -> dict[str, dist.Distribution]:
        return {}
