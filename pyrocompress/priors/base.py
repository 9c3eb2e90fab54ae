r"""Priors over the weights of one Bayesian layer, with their matching guides.

Every prior here writes the effective weight of a layer in non-centred form,

.. math:: W = g \odot \tilde W, \qquad \tilde W \sim N(0, v),

where :math:`g` is one gate or scale per *group* (Linear: the weights leaving one input
unit, i.e. a column of the weight matrix; Conv2d: one output channel, its bias included)
and broadcasts along the group's weights. A prior defines

* the model-side ``pyro.sample`` statements of a layer (:meth:`Prior.model`),
* the variational parameters and guide-side statements (its guide family, a
  :class:`LayerGuide` subclass named by ``guide_family``), fully factorised so that
  :class:`~pyro.infer.TraceMeanField_ELBO` uses the analytic KL of every site,
* the per-example gate for local reparametrisation (:meth:`Prior.local_gate`), and
* the posterior summaries the analysis layer needs (gate moments, group log-alpha and
  inclusion probabilities).

Sites of a layer named ``L``: ``L.weight`` (:math:`\tilde W`), ``L.bias`` and the prior's
gate sites (``L.scale``; ``L.global_a``, ``L.global_b``, ``L.local_a``, ``L.local_b``;
``L.inclusion``).

Guide parameters use log-variances initialised at -9, weight means at
:math:`N(0, 1/\text{fan-in})` and gates near one, as in the public code of
:cite:t:`louizos2017bayesian`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, override

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin
from torch import nn

from pyrocompress.constraints import PARAMETERS
from pyrocompress.distributions import IsotropicNormal, LogVarNormal
from pyrocompress.priors.conditional import GUIDES, GateConditionalNormal, factor_moments

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

#: Initial logit of the conditional weights' coupling r (r = 0.0025: the prior-dominated
#: end, where the conditional mean of the non-centred weights is g times their mean).
_COUPLING_INIT = -6.0
#: Gauss-Hermite nodes of the gate quadratures (the conditional weights' KL and moments).
QUADRATURE_NODES = 16

#: Initial value of every guide log-variance (the public code of :cite:t:`louizos2017bayesian`).
LOG_VAR_INIT = -9.0
#: Range of every guide log-variance;
#: :meth:`~pyrocompress.priors.NetworkGuide.clamp_log_var_` projects the parameters into
#: it after each optimiser step (as :cite:t:`louizos2017bayesian` clip variances).
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
    column_groups
        Linear layers only: the group id of each input column (``in`` integers using
        every id in ``0..G-1``), so that one gate multiplies the weights of several
        columns and the columns are kept or dropped together (the one-hot columns of a
        categorical feature, a spline basis; the group lasso of :cite:t:`yuan2006model`).
        ``None`` (the default): each column is its own group.

    Raises
    ------
    ValueError
        For ``column_groups`` on a layer whose groups are outputs, or not a valid map of
        its input columns (:meth:`check_column_groups`).
    """

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    has_bias: bool
    column_groups: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.column_groups is None:
            return
        if self.kind != "linear":
            raise ValueError(
                f"column_groups ties input columns of a Linear layer; layer {self.name!r} is "
                f"{self.kind!r}, whose groups are its output channels: leave it None"
            )
        groups = self.check_column_groups(self.column_groups, self.weight_shape[1])
        object.__setattr__(self, "column_groups", groups)
        # the map as an index tensor, per device (not a field: no part of eq, hash, repr)
        object.__setattr__(self, "_column_index", {})

    @staticmethod
    def check_column_groups(
        groups: object, n_columns: int, *, label: str = "column_groups"
    ) -> tuple[int, ...]:
        """Return ``groups`` as a tuple of ints if it maps ``n_columns`` columns onto groups.

        A valid map has one integer group id per column and uses every id in
        ``0..G-1`` (``G`` the number of groups), so that no group is empty.

        Parameters
        ----------
        groups
            A sequence (list, tuple, 1-D array or tensor) of integer group ids.
        n_columns
            The number of input columns of the layer.
        label
            The argument's name in messages (``"groups"`` for :func:`bayesianize`).

        Raises
        ------
        TypeError
            If ``groups`` is not a sequence of integers.
        ValueError
            If its length is not ``n_columns``, an id is negative, or an id in
            ``0..G-1`` is unused (naming the fix).
        """
        if isinstance(groups, torch.Tensor):
            groups = groups.tolist()
        elif hasattr(groups, "tolist") and not isinstance(groups, str | bytes):
            groups = groups.tolist()  # type: ignore[union-attr]  (a NumPy array)
        if isinstance(groups, str | bytes) or not isinstance(groups, list | tuple):
            raise TypeError(
                f"{label} must be a sequence of integer group ids, one per input column; "
                f"got {type(groups).__name__}"
            )
        bad = [g for g in groups if isinstance(g, bool) or not isinstance(g, int)]
        if bad:
            raise TypeError(
                f"{label} must hold integer group ids, got {bad[0]!r}; number the groups "
                "0..G-1 (numpy.unique(labels, return_inverse=True)[1] does)"
            )
        ids = tuple(int(g) for g in groups)
        if len(ids) != n_columns:
            raise ValueError(
                f"{label} has {len(ids)} entries but the layer has {n_columns} input "
                "columns; give one group id per column"
            )
        if ids and min(ids) < 0:
            raise ValueError(f"{label} has a negative group id ({min(ids)}); ids are 0..G-1")
        unused = sorted(set(range(max(ids, default=-1) + 1)) - set(ids))
        if unused:
            shown = ", ".join(map(str, unused[:5])) + (" ..." if len(unused) > 5 else "")
            raise ValueError(
                f"{label} leaves group id(s) {shown} unused: ids must be 0..G-1 with every "
                "group non-empty; renumber them (numpy.unique(ids, return_inverse=True)[1])"
            )
        return ids

    @property
    def group_dim(self) -> int:
        """Axis of the weight that indexes groups: inputs (Linear), outputs (Conv2d)."""
        return 1 if self.kind == "linear" else 0

    @property
    def num_groups(self) -> int:
        """Number of groups: the size of the weight along :attr:`group_dim`.

        With :attr:`column_groups`, the number of distinct group ids.
        """
        if self.column_groups is not None:
            return max(self.column_groups) + 1
        return self.weight_shape[self.group_dim]

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Number of weights of each group (``num_groups`` entries)."""
        if self.column_groups is None:
            return (math.prod(self.weight_shape) // self.num_groups,) * self.num_groups
        counts = [0] * self.num_groups
        for g in self.column_groups:
            counts[g] += self.weight_shape[0]
        return tuple(counts)

    @property
    def fan_in(self) -> int:
        """Number of weights each output unit reads: the product of ``weight_shape[1:]``.

        One for an embedding, whose output reads one row of its table.
        """
        if self.kind == "embedding":
            return 1
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

    def _index(self, device: torch.device) -> torch.Tensor:
        """Return the :attr:`column_groups` map as a long tensor on ``device`` (cached)."""
        cache: dict[torch.device, torch.Tensor] = self.__dict__["_column_index"]
        if device not in cache:
            cache[device] = torch.tensor(self.column_groups, dtype=torch.long, device=device)
        return cache[device]

    def expand_inputs(self, g: torch.Tensor) -> torch.Tensor:
        """Map a per-group tensor ``[..., G]`` of a Linear layer to its columns, ``[..., in]``.

        Column ``j`` takes the entry of its group, ``column_groups[j]``; without
        :attr:`column_groups` the groups are the columns and ``g`` is returned as it is.
        Per-example gates and group masks multiply a Linear layer's input through it.
        """
        if self.column_groups is None:
            return g
        return g.index_select(-1, self._index(g.device))

    def expand_groups(self, g: torch.Tensor) -> torch.Tensor:
        """Broadcast a per-group tensor ``[..., G]`` against the weight tensor."""
        if self.kind == "linear":
            return self.expand_inputs(g).unsqueeze(-2)
        return g.reshape(*g.shape, *[1] * (len(self.weight_shape) - 1))

    def group_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a weight-shaped tensor over each group, giving ``[G]``.

        With :attr:`column_groups` the column sums are added up per group
        (:meth:`torch.Tensor.index_add`, differentiable).
        """
        dims = [d for d in range(t.dim()) if d != self.group_dim]
        sums = t.sum(dim=dims)
        if self.column_groups is None:
            return sums
        return sums.new_zeros(self.num_groups).index_add(0, self._index(sums.device), sums)


def product_moments(m1: torch.Tensor, m2: torch.Tensor, mean: torch.Tensor, var: torch.Tensor):
    r"""Return the mean and variance of :math:`g\,w` for independent :math:`g` and :math:`w`.

    With :math:`E g = m_1`, :math:`E g^2 = m_2`, :math:`E w = \mu`,
    :math:`\mathrm{Var}\,w = \sigma^2`:

    .. math:: E[gw] = m_1\mu, \qquad
              \mathrm{Var}[gw] = m_2(\sigma^2 + \mu^2) - m_1^2\mu^2,

    :cite:t:`louizos2017bayesian`'s :math:`\mu_z^2\sigma_w^2 + \sigma_z^2\mu_w^2 +
    \sigma_z^2\sigma_w^2` for the group normal-Jeffreys guide; with :math:`g` Bernoulli
    the moments of a spike-and-slab weight marginalised over its gate :cite:p:`hubin2019combining`.
    The one place this formula is written.
    """
    gm = m1 * mean
    return gm, m2 * (var + mean**2) - gm**2


def normal_quadrature(
    loc: torch.Tensor, scale: torch.Tensor, num_nodes: int = QUADRATURE_NODES
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return Gauss-Hermite nodes and weights for :math:`N(\text{loc}, \text{scale}^2)`.

    :math:`E f(X) \approx \sum_k \omega_k f(x_k)` with :math:`x_k = \text{loc} +
    \sqrt2\,\text{scale}\,z_k` and :math:`\omega_k = a_k/\sqrt\pi` for the
    Gauss-Hermite rule :math:`(z_k, a_k)`; exact for polynomials of degree below
    :math:`2K`. Shapes: ``loc.shape + (K,)``.
    """
    z, a = np.polynomial.hermite.hermgauss(num_nodes)
    z = torch.as_tensor(z, dtype=loc.dtype, device=loc.device)
    a = torch.as_tensor(a / math.sqrt(math.pi), dtype=loc.dtype, device=loc.device)
    nodes = loc.unsqueeze(-1) + math.sqrt(2.0) * scale.unsqueeze(-1) * z
    return nodes, a.expand_as(nodes)


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
#: Every role a guide parameter can declare (:meth:`LayerGuide.declare`).
ROLES: tuple[Role, ...] = ("weight_loc", "loc", "logit", "log_var", "weight_log_var")
#: The roles whose parameters are projected into bounds after each optimiser step.
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
    weights
        ``"mean-field"`` (the default): the weights independent of the gate.
        ``"conditional"``: the weights Gaussian given their group's gate, in the form of
        the posterior's funnel (:mod:`pyrocompress.priors.conditional`); needs a gate
        with a quadrature rule (:meth:`gate_quadrature`).

    Attributes
    ----------
    roles : dict of str to Role
        The role of each declared parameter, by name.

    Raises
    ------
    ValueError
        If ``weights`` is not one of :data:`~pyrocompress.priors.conditional.GUIDES`, or
        is ``"conditional"`` for a guide family without a continuous gate.
    """

    spec: LayerSpec
    prior: Prior
    roles: dict[str, Role]

    def __init__(self, spec: LayerSpec, prior: Prior, *, weights: str = "mean-field"):
        super().__init__()
        if weights not in GUIDES:
            raise ValueError(f"guide must be one of {GUIDES}, got {weights!r}")
        self.spec = spec
        self.prior = prior
        self.weights = weights
        self.roles = {}
        self._init_slab()
        self._gate_init()
        if weights == "conditional":
            if type(self).gate_quadrature is LayerGuide.gate_quadrature:
                raise ValueError(
                    f"guide='conditional' needs a prior with a continuous gate; "
                    f"{type(prior).__name__} has none (use guide='mean-field')"
                )
            # r = sigmoid(logit) per group, small at first: the prior-dominated end
            self.declare(
                "gate_coupling_logit",
                torch.full((spec.num_groups,), _COUPLING_INIT),
                role="logit",
            )
        # mean Fisher information per weight of each group, recorded by fit (NaN: unknown)
        self.register_buffer("information", torch.full((spec.num_groups,), math.nan))
        # each group's sum of squared one-step (Newton) estimates of its weights given the
        # others, recorded by fit for a generalised linear model (zero for other networks,
        # NaN until recorded; pyrocompress.infer.information)
        self.register_buffer("newton_square", torch.full((spec.num_groups,), math.nan))

    @override
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, *args):
        # networks saved before these were recorded load with them unknown
        for key in ("information", "newton_square"):
            state_dict.setdefault(prefix + key, getattr(self, key).clone())
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, *args)

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
        ndim = len(self.spec.weight_shape)
        if self.weights == "conditional":
            nodes: dict[str, Any] = dict(poutine.trace(self._gate_guide).get_trace().nodes)
            prefix = self.spec.site("")
            values = {
                site[len(prefix) :]: node["value"]
                for site, node in nodes.items()
                if node["type"] == "sample" and site.startswith(prefix)
            }
            q_weight, q_bias = self._conditional_guides(self.prior.gate(self.spec, values))
        else:
            self._gate_guide()
            q_weight, q_bias = self._slab_guides()
        pyro.sample(self.spec.site("weight"), q_weight.to_event(ndim))
        if q_bias is not None:
            pyro.sample(self.spec.site("bias"), q_bias.to_event(1))

    def _conditional_guides(
        self, gate: torch.Tensor | None
    ) -> tuple[GateConditionalNormal, TorchDistributionMixin | None]:
        r"""Return :math:`q(\tilde w \mid g)` and the bias's factor (conditional when gated).

        ``gate`` is the gate drawn in this step (``[G]``), or ``None`` (moments only).
        """
        spec = self.spec
        r = torch.sigmoid(self.gate_coupling_logit)
        nodes, weights = self.gate_quadrature()

        def expand(t: torch.Tensor) -> torch.Tensor:  # [G, K] -> weight-broadcast + [K]
            return torch.stack([spec.expand_groups(t[:, k]) for k in range(t.shape[1])], -1)

        q_weight = GateConditionalNormal(
            self.weight_loc,
            self.weight_log_var,
            spec.expand_groups(r),
            None if gate is None else spec.expand_groups(gate),
            (expand(nodes), expand(weights)),
            group_coupling=r,
        )
        q_bias = None
        if spec.has_bias:
            if spec.bias_gated:
                q_bias = GateConditionalNormal(
                    self.bias_loc, self.bias_log_var, r, gate, (nodes, weights)
                )
            else:
                q_bias = normal(self.bias_loc, self.bias_log_var)
        return q_weight, q_bias

    def gate_quadrature(
        self, num_nodes: int = QUADRATURE_NODES
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Return nodes and weights of a quadrature rule for each group's gate under the guide.

        ``(nodes, weights)``, each ``[G, K]``: :math:`E_q f(g_g) \approx \sum_k
        \omega_{gk} f(g_{gk})` (Gauss-Hermite for a normal or log-normal gate). Needed by
        the conditional weights (``weights="conditional"``).

        Raises
        ------
        TypeError
            For a guide family without a continuous gate.
        """
        raise TypeError(f"{type(self).__name__} has no continuous gate to integrate over")

    def mean_multiplier(self, *, conditional: bool = False) -> torch.Tensor | None:
        r"""Return what the posterior mean of a group's weights is :math:`E[\tilde w]` times.

        :math:`E[g]` for the mean-field family (``None`` without a gate), and
        :math:`E[\varphi(g)]` for the conditional one; per group. It also multiplies a
        gated bias.
        """
        if self.weights == "conditional":
            nodes, weights = self.gate_quadrature()
            return factor_moments(nodes, weights, torch.sigmoid(self.gate_coupling_logit))[0]
        moments = self.gate_moments(conditional=conditional)
        return None if moments is None else moments[0]

    def effective_moments(self, *, conditional: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Return the posterior mean and variance of the effective weights :math:`g\tilde w`.

        Mean-field: :func:`product_moments` of the gate's and the weights' moments (the
        gate and the weights independent). Conditional weights: :math:`E w = \mu
        E\varphi`, :math:`\mathrm{Var}\,w = v E\varphi + \mu^2 \mathrm{Var}\,\varphi`
        (:mod:`pyrocompress.priors.conditional`). ``conditional=True`` gives the moments
        given that the group is kept (spike-and-slab differs).
        """
        mu, var = self.weight_moments()
        if self.weights == "conditional":
            e1, e2 = self._conditional_guides(None)[0].factor_moments()
            return mu * e1, var * e1 + mu.square() * (e2 - e1.square()).clamp_min(0.0)
        moments = self.gate_moments(conditional=conditional)
        if moments is None:
            return mu, var
        m1, m2 = (self.spec.expand_groups(t) for t in moments)
        return product_moments(m1, m2, mu, var)

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

    def relevance_threshold(self) -> torch.Tensor:
        r"""Return the gate :math:`t_g = 1 / (s\sqrt{h_g})` above which group :math:`g` is relevant.

        :math:`s` is the prior scale of the non-centred weights and :math:`h_g` the mean
        Fisher information per weight of the group (``information``, recorded by
        :func:`pyrocompress.fit`; :mod:`pyrocompress.infer.information`). At
        :math:`|g| = t_g` the prior variance of the group's weights equals the sampling
        variance of their estimates, so their shrinkage factor is
        :math:`\kappa = 1/(1 + g^2 s^2 h) = 1/2` (:cite:t:`carvalho2010horseshoe`;
        :cite:t:`piironen2017sparsity{eq. 2.5}`); ``inf`` where :math:`h_g = 0`.

        Raises
        ------
        ValueError
            If the information has not been recorded.
        """
        info = self.information
        if bool(torch.isnan(info).any()):
            raise ValueError(
                f"layer {self.spec.name!r} has no recorded Fisher information, which the "
                "inclusion probabilities are measured against: pyrocompress.fit records "
                "it; for a network trained or loaded otherwise call "
                "pyrocompress.infer.record_information(bnn, (X, y)) first"
            )
        return 1.0 / (self.prior.layer_weight_scale(self.spec) * info.clamp_min(0.0).sqrt())

    def gate_exceedance(self, threshold: torch.Tensor | None = None) -> torch.Tensor:
        r"""Return :math:`q(|g_g| > t_g)`, the guide's probability that each gate exceeds ``t``.

        For the spike-and-slab gate :math:`\gamma \in \{0, 1\}` it is the posterior
        inclusion probability; for a continuous gate the posterior inclusion probability
        (:meth:`pyrocompress.Posterior.inclusion_probabilities`) reads the effective
        weights instead, and this guide factor's probability is a diagnostic: a
        non-centred mean-field guide leaves the gate near its prior for a group the data
        switch off, so it can be near 1 for an irrelevant group.

        Parameters
        ----------
        threshold
            The thresholds :math:`t_g` (``[G]``, ``inf`` allowed); by default
            :meth:`relevance_threshold`.

        Returns
        -------
        Tensor
            ``[G]`` probabilities.

        Raises
        ------
        TypeError
            For a guide family without a gate, or one that does not define them.
        """
        raise TypeError(f"{type(self).__name__} does not define inclusion probabilities")

    def _threshold(self, threshold: torch.Tensor | None) -> torch.Tensor:
        """``threshold`` as a float64 tensor on the guide's device, or the default one."""
        t = self.relevance_threshold() if threshold is None else threshold
        return torch.as_tensor(t, dtype=torch.float64, device=self.information.device)

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
    :func:`~pyrocompress.priors.register_prior`. Its class attributes declare what it
    can do:

    Attributes
    ----------
    key
        Registry key (``"group-nj"``); set by :func:`register_prior`.
    guide_family
        The :class:`LayerGuide` subclass of the prior's variational family.
    hyper_parameters
        Names of the constructor arguments that define the prior. Their values form the
        prior's identity (:meth:`identity`: equality, hashing, caches and checkpoints).
    has_inclusion_probabilities
        Whether the prior has inclusion probabilities
        (:meth:`pyrocompress.Posterior.inclusion_probabilities`; feature selection).
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
            weight = IsotropicNormal(0.0, self.layer_weight_scale(spec), shape, like=zero)
            priors["weight"] = weight.to_event(len(shape))
            if spec.has_bias:
                bias = IsotropicNormal(0.0, self.bias_scale, shape[:1], like=zero)
                priors["bias"] = bias.to_event(1)
            cache[key] = priors
        return cache[key]

    def __getstate__(self) -> dict:  # the cache holds tensors: never pickle or copy it
        return {k: v for k, v in vars(self).items() if k != "_site_prior_cache"}

    def layer_weight_scale(self, spec: LayerSpec) -> float:
        r"""Return :math:`s`, the prior scale of the non-centred weights in this layer.

        ``weight_scale`` by default; a prior whose scale depends on the layer (the
        spike-and-slab's ``slab_scaling="fan_in"``) overrides it. The weights' prior, the
        relevance threshold and the inclusion probabilities read it.
        """
        return self.weight_scale

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

    def gate_log_prior(
        self, spec: LayerSpec, values: dict[str, torch.Tensor]
    ) -> Callable[[torch.Tensor], torch.Tensor] | None:
        r"""Return the log prior density of :math:`\log|g|` given the layer's global variables.

        For :func:`~pyrocompress.priors.relevance.relevance_given_weights`: a function of
        ``log_g`` (``[S, G, K]``) for ``S`` draws of the layer's sites in ``values`` (each
        with the draws along its first dimension; only the global sites are read), up to
        an additive constant. ``None`` (the default) for a prior whose gate has no density
        (spike-and-slab) or no gate; its inclusion probabilities come from the guide.
        """
        return None

    def gate_log_upper(
        self, spec: LayerSpec, values: dict[str, torch.Tensor]
    ) -> torch.Tensor | None:
        r"""Return the largest :math:`\log g` the prior allows for each draw (``[S]``), or ``None``.

        A regularised horseshoe's gate stays below its slab width :math:`c`; the
        quadratures of :mod:`~pyrocompress.priors.relevance` keep their grid below it.
        """
        return None

    def global_scale_densities(
        self, spec: LayerSpec, values: dict[str, torch.Tensor]
    ) -> tuple[Callable[..., torch.Tensor], Callable[[torch.Tensor], torch.Tensor]] | None:
        r"""Return the densities that integrate a layer's global scale out, or ``None``.

        For a prior with a global scale :math:`\tau` per layer (the horseshoes):
        ``(log_prior_given, log_global_prior)``, the log density of :math:`\log|g|`
        given :math:`\tau` (``(log_g, log_tau, draw=s) -> Tensor``, normalised in
        :math:`\log g`; other layer variables, such as a slab width, are read from draw
        ``s`` of ``values``) and that of :math:`\log\tau` (up to a constant); see
        :func:`~pyrocompress.priors.relevance.relevance_given_layer`. ``None`` (the
        default) reads the global variables from the posterior draws instead.
        """
        return None

    # ------------------------------------------------------------------------- hooks
    def _gate_priors(self, spec: LayerSpec, zero: torch.Tensor) -> dict[str, dist.Distribution]:
        return {}
