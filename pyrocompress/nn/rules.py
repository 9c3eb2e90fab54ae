r"""The op-rule registry: what every consumer of the traced network needs to know of an op.

The converted network is traced once (:mod:`pyrocompress.nn.graph`) into modules and
functional ops. Each op is looked up here by its module type, its function, or (for a
tensor method such as ``x.view``) its method name, and its :class:`OpRule` says

* ``moments``: the mean and variance of its output given those of its inputs
  (moment propagation, unit scores, the moment objective);
* ``mask``: how a feature or channel mask passes through it (:data:`MASK_KINDS`):

  ``"same"``
      the op keeps the channel index: elementwise ops, pooling, a per-channel affine
      map (BatchNorm), a mean over the spatial dimensions (whose channels may then be
      the last dimension, as ``x.mean((2, 3))`` gives);
  ``"flatten"``
      channels become blocks of features;
  ``"join"``
      an elementwise op of two or more tensors with the same channel layout (a residual
      ``a + b``, a gating ``x * s``): channel ``c`` of every input and of the output is one
      channel, so the producers of the inputs are *coupled* and a channel is removed
      from all of them or from none;
  ``"concat"``
      ``torch.cat`` along the channel dimension: the output's channels are the inputs'
      channels one after the other (input ``k``'s channel ``c`` is output channel
      ``offset_k + c``);
  ``None``
      pruning across it is not supported (a mean over channels, a LayerNorm).

  The mask may also be a function ``mask(op, *args, **kwargs) -> kind`` of the call when
  the kind depends on its arguments (``torch.mean``'s ``dim``, whether ``a + b`` adds a
  tensor or a number); consumers read it with :func:`mask_of`;
* ``module``: the ``nn.Module`` that computes it in a compact network (functional ops get
  their module equivalent, so the compact network is a plain ``nn.Sequential``);
* ``args``: the constructor arguments that describe it in a compact-model file;
* ``flops``: its FLOPs for one example (0 unless it has weights).

A new op is one :func:`register_op` call, in the spirit of
:func:`torch.distributions.kl.register_kl`::

    register_op(nn.LogSigmoid, OpRule(moments=elementwise_moments, mask="same", args=()))

Bayesian layers are not in this table: they answer
:meth:`~pyrocompress.nn.BayesianLayer.output_moments` and
:meth:`~pyrocompress.nn.BayesianLayer.flops` themselves.

Moment rules (input :math:`(m, v)`, diagonal: units of a layer taken as uncorrelated):

ReLU
    rectified-Gaussian moments, exact for a Gaussian input: with :math:`\alpha = m/\sqrt v`,
    :math:`E = m\Phi(\alpha) + \sqrt v\,\varphi(\alpha)` and
    :math:`E[y^2] = (m^2 + v)\Phi(\alpha) + m\sqrt v\,\varphi(\alpha)`
    :cite:p:`frey1999variational`; :cite:p:`wu2019deterministic{eq. 10}`.
LeakyReLU, Hardtanh, ReLU6, Hardsigmoid, Hardswish
    exact for a Gaussian input: they are piecewise polynomials of degree at most 2, whose
    moments are sums of truncated Gaussian moments (:func:`piecewise_polynomial_moments`).
GELU, SiLU, Mish, ELU, SELU, CELU, Tanh, Sigmoid, Softplus (any other activation)
    :math:`E f(a)` and :math:`E f(a)^2` by Gauss–Hermite quadrature with 32 nodes
    (:func:`gauss_hermite_moments`; :cite:p:`abramowitz1964handbook{25.4.46}`) — exact for
    polynomials of degree up to 63; for input sd up to 2, within :math:`10^{-4}` input sd
    for the smooth ones, :math:`10^{-3}` for Tanh and ELU, :math:`10^{-2}` for SELU
    (a kink in its derivative), measured in ``tests/nn/test_rules_ops.py``.
AvgPool2d, AdaptiveAvgPool2d, a mean over spatial dimensions (global average pooling)
    linear maps: the mean pools, and the variance of a window's average is the sum of its
    variances over the window's size squared — exact for uncorrelated inputs. Adaptive
    windows differ in size from one output position to the next
    (:func:`adaptive_avgpool2d_moments`).
MaxPool2d
    approximate: the maximum of a window taken pairwise with :cite:t:`clark1961greatest`'s
    moment-matched maximum of two independent Gaussians; padded positions (minus infinity in torch)
    are skipped, exact for windows of at most two inside positions.
MaxPool1d, AvgPool1d, AdaptiveAvgPool1d
    the 2-d rules on a ``1 x length`` image.
Sums and products (``a + b``, ``a - b``, ``a * b``; a tensor and a number)
    the inputs of a sum are taken as *independent*: means add and variances add. For a
    residual connection :math:`x + F(x)` the two summands are correlated (both depend on
    :math:`x` and on the weights before it), so this is the diagonal propagation's
    approximation once more; it is exact when one summand is deterministic. A product
    of independent inputs has :math:`\mathrm{Var}[ab] = v_a v_b + v_a m_b^2 + v_b m_a^2`
    :cite:p:`goodman1960exact`. A number :math:`c` shifts the mean (:math:`a + c`) or scales the
    mean by :math:`c` and the variance by :math:`c^2` (:math:`c a`, :math:`a / c`).
torch.cat
    the means and the variances are concatenated.
BatchNorm1d, BatchNorm2d
    a per-channel affine map :math:`y = \gamma (x - \hat\mu)/\sqrt{\hat\sigma^2 +
    \epsilon} + \beta` with the *running* statistics, in training mode as well
    (:func:`batchnorm_affine`): mean :math:`a m + b`, variance :math:`a^2 v` — exact. The
    batch statistics of training mode are those of sampled activations, which moments do
    not give; the BatchNorms pyrocompress attaches to a layer use the same evaluation-mode
    map in their moments (:meth:`~pyrocompress.nn.BayesianLayer.output_moments`).
LayerNorm
    approximate (:func:`layernorm_moments`): the delta method in the example's own mean
    and standard deviation (random when its units are), second order for the mean and
    first order for the variance; exact for a deterministic input.
Flatten, reshapes, Dropout and Identity (evaluation mode)
    the same map applied to the mean and to the variance.

Full-covariance propagation (``covariance`` rules, input :math:`(m, \Sigma)`): every
elementwise activation keeps the exact (or quadrature) variances on the diagonal and the
first-order (Price's theorem) term :math:`E f'(a_i)\,E f'(a_j)\,\Sigma_{ij}` off it
(:func:`elementwise_covariance`), which keeps the matrix positive semi-definite; sums,
products and concatenations in which at most one input is random are exact, two random
inputs are refused (their cross-covariance is not tracked); pooling, means, LayerNorm take
deterministic inputs only; a BatchNorm scales the covariance by :math:`a_i a_j`.
Ops without a rule, or whose rule has no ``moments`` (AdaptiveMaxPool2d), are refused by
moment propagation with their name.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MASK_KINDS",
    "MC",
    "MV",
    "MaskRule",
    "MaskSpec",
    "Mean",
    "OpRule",
    "adaptive_avgpool2d_moments",
    "avgpool2d_moments",
    "batchnorm_affine",
    "elementwise_covariance",
    "elementwise_moments",
    "gauss_hermite_moments",
    "get_rule",
    "layernorm_moments",
    "mask_of",
    "maxpool2d_moments",
    "mean_moments",
    "piecewise_polynomial_moments",
    "register_op",
    "registered_ops",
    "relu_covariance",
    "relu_moments",
    "rules_version",
    "weight_flops",
]

_TINY = 1e-12
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class MV:
    """A tensor's mean and variance, as moment propagation carries it through the graph."""

    mean: torch.Tensor
    var: torch.Tensor

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> MV:
        """Apply a linear shape map (flatten, view, identity) to the mean and the variance."""
        return MV(fn(self.mean), fn(self.var))


@dataclass(frozen=True)
class MC:
    """A tensor's mean and, per example, the covariance of its units (``None``: zero).

    What full-covariance propagation carries through the graph (``[n, d]`` and
    ``[n, d, d]``).
    """

    mean: torch.Tensor
    cov: torch.Tensor | None


#: How a feature or channel mask passes through an op (see the module docstring).
MaskRule = Literal["same", "flatten", "join", "concat"] | None
#: The mask kinds a rule can give (``None``, not listed, refuses pruning across the op).
MASK_KINDS: tuple[str, ...] = ("same", "flatten", "join", "concat")
#: What :attr:`OpRule.mask` holds: a kind, or a function of the call that returns one.
MaskSpec = MaskRule | Callable[..., MaskRule]


@dataclass(frozen=True)
class OpRule:
    """What pyrocompress knows of one op; every field is optional.

    Attributes
    ----------
    moments
        ``moments(op, *args, **kwargs) -> MV``: the op (module or function) with
        :class:`MV` in place of its tensor arguments. ``None``: moment propagation
        refuses the op.
    mask
        How a feature or channel mask passes through it (module docstring): one of
        :data:`MASK_KINDS`, ``None``, or ``mask(op, *args, **kwargs) -> kind`` when the
        kind depends on the call's arguments. Read it with :func:`mask_of`.
    module
        ``module(op, *args, **kwargs) -> nn.Module`` for a functional op: the module
        computing it in a compact network (the arguments are those of the call, tensors
        replaced by ``None``). Module ops are copied as they are.
    args
        Constructor arguments that describe the module in a compact-model file; ``None``
        when the module cannot be written to one.
    flops
        ``flops(module, out_shape) -> int`` for one example; 0 when omitted.
    covariance
        ``covariance(op, *args, **kwargs) -> MC``: the op on means and per-example
        covariances (full-covariance propagation); ``None``: refused there.
    """

    moments: Callable[..., Any] | None = None
    mask: MaskSpec = None
    module: Callable[..., nn.Module] | None = None
    args: tuple[str, ...] | None = None
    flops: Callable[[Any, torch.Size], int] | None = None
    covariance: Callable[..., Any] | None = None


_RULES: dict[object, OpRule] = {}
_VERSION = [0]  # bumped by register_op, so that cached traced graphs see new leaves


def rules_version() -> int:
    """Return a counter that changes whenever a rule is registered."""
    return _VERSION[0]


def register_op(key: object, rule: OpRule) -> OpRule:
    """Register ``rule`` for ``key``: a module type, a function, or a tensor method name."""
    if not (isinstance(key, type | str) or callable(key)):
        raise TypeError(f"an op key is a module type, a function or a method name; got {key!r}")
    _RULES[key] = rule
    _VERSION[0] += 1
    return rule


def get_rule(key: object) -> OpRule | None:
    """Return the rule registered for ``key`` (a module type is also looked up by its bases)."""
    if isinstance(key, type):
        for cls in key.__mro__:
            if cls in _RULES:
                return _RULES[cls]
        return None
    try:
        return _RULES.get(key)
    except TypeError:  # an unhashable callable
        return None


def registered_ops() -> dict[object, OpRule]:
    """Return a copy of the registry: key -> rule."""
    return dict(_RULES)


def mask_of(
    rule: OpRule | None,
    op: object,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> MaskRule:
    """Return how a channel mask passes through one call of ``op`` (:attr:`OpRule.mask`).

    Parameters
    ----------
    rule
        The op's rule (:func:`get_rule`), or ``None`` (then the answer is ``None``).
    op
        The module, function or method name called.
    args, kwargs
        The call's arguments. Data inputs may be tensors (``device="meta"`` ones
        suffice), :class:`MV` / :class:`MC` values, or ``torch.fx`` nodes; numbers are
        constants. Kinds that depend on a dimension counted from the end
        (``x.mean((-2, -1))``, ``torch.cat(xs, -1)``) need the inputs' number of
        dimensions: from a tensor, a value, or a node with shape metadata
        (``node.meta["tensor_meta"]`` or ``node.meta["val"]``); without it they are
        ``None``. Rules whose kind is a fixed string ignore the arguments.

    Returns
    -------
    {"same", "flatten", "join", "concat"} or None
        The kind (module docstring); ``None``: pruning across the op is not supported.

    Raises
    ------
    TypeError
        If the rule's mask function returns something that is not a kind.
    """
    if rule is None:
        return None
    spec = rule.mask
    if spec is None or isinstance(spec, str):
        kind = spec
    else:
        kind = spec(op, *args, **dict(kwargs or {}))
    if kind is not None and kind not in MASK_KINDS:
        raise TypeError(
            f"the mask rule of {_op_name(op)} returned {kind!r}; a mask kind is one of "
            f"{MASK_KINDS} or None"
        )
    return cast(MaskRule, kind)


def weight_flops(weight_shape: tuple[int, ...], out_shape: torch.Size) -> int:
    """Return 2 x the multiply-adds of a layer with a weight for one example.

    Each output unit at each position reads ``prod(weight_shape[1:])`` weights; the
    output (``out_shape``, batch first) holds ``prod(out_shape[1:])`` units-at-positions.
    The one FLOP formula of Linear and convolution layers, plain or Bayesian.
    """
    return 2 * math.prod(weight_shape[1:]) * math.prod(out_shape[1:])


# ------------------------------------------------------------------------ moment maths
def _pdf_cdf(alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _INV_SQRT_2PI * torch.exp(-0.5 * alpha.square()), 0.5 * torch.erfc(-alpha / _SQRT2)


def relu_moments(mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the mean and variance of ``relu(a)`` for ``a ~ N(mean, var)`` (exact)."""
    std = (var + _TINY).sqrt()
    pdf, cdf = _pdf_cdf(mean / std)
    m = mean * cdf + std * pdf
    second = (mean.square() + var) * cdf + mean * std * pdf
    return m, (second - m.square()).clamp_min(0.0)


def _clark_max(ma, va, mb, vb) -> tuple[torch.Tensor, torch.Tensor]:
    """Moments of ``max(A, B)`` for independent Gaussians.

    Eqs. 2-3 of :cite:t:`clark1961greatest`.
    """
    theta = (va + vb + _TINY).sqrt()
    pdf, cdf = _pdf_cdf((ma - mb) / theta)
    cdf_neg = 1.0 - cdf
    m = ma * cdf + mb * cdf_neg + theta * pdf
    second = (ma.square() + va) * cdf + (mb.square() + vb) * cdf_neg + (ma + mb) * theta * pdf
    return m, (second - m.square()).clamp_min(0.0)


def _pair(x) -> tuple[int, int]:
    return (x, x) if isinstance(x, int) else tuple(x)


def maxpool2d_moments(
    pool: nn.MaxPool2d, mean: torch.Tensor, var: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return approximate moments of a max-pooling layer (Clark's pairwise maximum).

    Any kernel, stride, padding and dilation; ``ceil_mode=True`` is refused. torch pads
    with minus infinity, so a padded position never wins: the maximum of a window is
    the maximum of its positions inside the input, and the pairwise reduction skips the
    padded ones (a window always holds one, since torch's padding is at most half the
    kernel). Exact for windows of at most two positions inside the input. For windows of
    four, against the exact moments by quadrature over 500 random windows (means
    N(0, 1), variances U(0.01, 2.01); ``tests/nn/test_moments.py``): median error 0.005 sd
    in the mean and 2.5 % in the sd, worst 0.11 sd and 32 %.

    Raises
    ------
    TypeError
        For ``ceil_mode=True`` or ``return_indices=True``.
    """
    if pool.ceil_mode or pool.return_indices:
        raise TypeError(
            f"moment propagation supports MaxPool2d without ceil_mode or return_indices; got {pool}"
        )
    k, s = _pair(pool.kernel_size), _pair(pool.stride or pool.kernel_size)
    p, d = _pair(pool.padding), _pair(pool.dilation)
    n, c, h, w = mean.shape
    out_h = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    out_w = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    size = k[0] * k[1]

    def windows(t: torch.Tensor) -> torch.Tensor:  # [n', c', size, positions]
        cols = F.unfold(t, k, dilation=d, padding=p, stride=s)
        return cols.view(t.shape[0], t.shape[1], size, out_h * out_w)

    cols_m, cols_v = windows(mean), windows(var)
    m, v = cols_m[:, :, 0], cols_v[:, :, 0]
    if p == (0, 0):
        for i in range(1, size):
            m, v = _clark_max(m, v, cols_m[:, :, i], cols_v[:, :, i])
    else:  # unfold pads with zeros: skip the padded positions of each window
        inside = windows(mean.new_ones(1, 1, h, w)).bool()  # [1, 1, size, positions]
        seen = inside[:, :, 0]
        for i in range(1, size):
            mi, vi, here = cols_m[:, :, i], cols_v[:, :, i], inside[:, :, i]
            cm, cv = _clark_max(m, v, mi, vi)
            both = seen & here
            m = torch.where(both, cm, torch.where(here, mi, m))
            v = torch.where(both, cv, torch.where(here, vi, v))
            seen = seen | here
    return m.reshape(n, c, out_h, out_w), v.reshape(n, c, out_h, out_w)


def avgpool2d_moments(
    pool: nn.AvgPool2d, mean: torch.Tensor, var: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return the moments of an average-pooling layer, exact for uncorrelated inputs.

    A window's sum over the divisor :math:`d` (the window size, or
    ``divisor_override``) has mean ``pool(mean)`` and variance :math:`\sum v / d^2` =
    ``pool(var) / d``. Supports ``padding=0`` and ``ceil_mode=False``.
    """
    if _pair(pool.padding) != (0, 0) or pool.ceil_mode:
        raise TypeError(
            f"moment propagation supports AvgPool2d without padding or ceil_mode; got {pool}"
        )
    k = _pair(pool.kernel_size)
    d = pool.divisor_override or k[0] * k[1]
    return pool(mean), pool(var) / d


def relu_covariance(mean: torch.Tensor, cov: torch.Tensor | None) -> MC:
    r"""Return the mean and covariance of ``relu(a)`` for ``a ~ N(mean, cov)`` per example.

    Exact rectified-Gaussian variances on the diagonal; off the diagonal the first-order
    term of the expansion in the correlation (Price's theorem),
    :math:`\mathrm{Cov}[\mathrm{relu}(a_i), \mathrm{relu}(a_j)] \approx
    \Phi(\alpha_i)\Phi(\alpha_j)\Sigma_{ij}`, which keeps the matrix positive
    semi-definite (:mod:`pyrocompress.nn.moments`).
    """
    if cov is None:
        return MC(torch.relu(mean), None)
    var = cov.diagonal(0, -2, -1)
    _, cdf = _pdf_cdf(mean / (var + _TINY).sqrt())
    new_mean, new_var = relu_moments(mean, var)
    off = cdf.unsqueeze(-1) * cov * cdf.unsqueeze(-2)
    return MC(new_mean, off + torch.diag_embed(new_var - off.diagonal(0, -2, -1)))


# ------------------------------------------------------------------ helpers of the rules
def _op_name(op: object) -> str:
    """Return a short name of an op for messages (as ``graph.describe_op`` does)."""
    if isinstance(op, nn.Module):
        return type(op).__name__
    if isinstance(op, str):
        return f"Tensor.{op}"
    return getattr(op, "__name__", repr(op))


def _is_number(x: object) -> bool:
    """Whether a call argument is a number (a constant), not a data input."""
    return isinstance(x, numbers.Number)


def _ndim(x: object) -> int | None:
    """Return the number of dimensions of a data input, when it can be known.

    From a tensor, an :class:`MV` / :class:`MC` value, or a ``torch.fx`` node with shape
    metadata (``meta["val"]`` or ``meta["tensor_meta"]``); ``None`` otherwise.
    """
    if isinstance(x, MV | MC):
        return x.mean.dim()
    if isinstance(x, torch.Tensor):
        return x.dim()
    meta = getattr(x, "meta", None)
    if isinstance(meta, dict):
        val = meta.get("val")
        if isinstance(val, torch.Tensor):
            return val.dim()
        shape = getattr(meta.get("tensor_meta"), "shape", None)
        if shape is not None:
            return len(shape)
    return None


def _resolve_dim(dim: int, ndim: int | None) -> int | None:
    """Return ``dim`` counted from the front; ``None`` if it counts from an unknown end."""
    if dim >= 0:
        return dim
    return None if ndim is None else dim + ndim


def _check_dim(dim: object, ndim: int, what: str) -> int:
    """Return ``dim`` (an int in ``[-ndim, ndim)``) counted from the front, or raise."""
    if not isinstance(dim, int) or isinstance(dim, bool) or not -ndim <= dim < ndim:
        raise TypeError(f"{what}: dim must be an int in [{-ndim}, {ndim}), got {dim!r}")
    return dim % ndim


def _call(op: object, *args: Any, **kwargs: Any) -> Any:
    """Call ``op`` (a module, a function, or a tensor method's name) on plain values."""
    if isinstance(op, str):
        return getattr(args[0], op)(*args[1:], **kwargs)
    if not callable(op):
        raise TypeError(f"cannot call the op {op!r}")
    return op(*args, **kwargs)


def _as_mv(x: object, op: object) -> MV:
    """Return a data input as moments: a tensor constant has variance zero."""
    if isinstance(x, MV):
        return x
    if isinstance(x, torch.Tensor):
        return MV(x, torch.zeros_like(x))
    raise TypeError(f"moment propagation: {_op_name(op)} got {type(x).__name__}, not a tensor")


def _as_mc(x: object, op: object) -> MC:
    """Return a data input of full-covariance propagation (a tensor constant: ``cov=None``)."""
    if isinstance(x, MC):
        return x
    if isinstance(x, torch.Tensor):
        return MC(x, None)
    raise TypeError(
        f"full-covariance propagation: {_op_name(op)} got {type(x).__name__}, not a tensor"
    )


def _deterministic_cov(op, x, *args, **kwargs) -> MC:
    """Apply an op that full-covariance propagation takes on deterministic inputs only."""
    x = _as_mc(x, op)
    if x.cov is not None:
        raise TypeError(
            f"full-covariance propagation supports {_op_name(op)} only on deterministic "
            "inputs (before the first Bayesian layer); use covariance='diagonal'"
        )
    return MC(_call(op, x.mean, *args, **kwargs), None)


# ------------------------------------------------------------ elementwise activations
#: Gauss–Hermite nodes of :func:`gauss_hermite_moments` (exact for polynomials of
#: degree up to 63).
GAUSS_HERMITE_NODES = 32

#: ``(mean, var) -> (mean, var, slope)`` of an elementwise function of a Gaussian:
#: the moments of :math:`f(a)` and :math:`E f'(a)` (the slope of full-covariance
#: propagation, :func:`elementwise_covariance`).
Moments3 = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@functools.cache
def _hermite(nodes: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Nodes and weights (summing to 1) of probabilists' Gauss–Hermite quadrature."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()  # the weight function exp(-z^2 / 2) integrates to sqrt(2 pi)
    return tuple(float(v) for v in z), tuple(float(v) for v in w)


def gauss_hermite_moments(
    f: Callable[[torch.Tensor], torch.Tensor],
    mean: torch.Tensor,
    var: torch.Tensor,
    nodes: int = GAUSS_HERMITE_NODES,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Return the moments of ``f(a)`` for ``a ~ N(mean, var)``, by Gauss–Hermite quadrature.

    With the probabilists' nodes and weights :math:`(z_k, w_k)`, :math:`\sum_k w_k = 1`
    (:cite:t:`abramowitz1964handbook{25.4.46}`; :func:`numpy.polynomial.hermite_e.hermegauss`),

    .. math::
        E\,g(a) \approx \sum_k w_k\, g(m + \sqrt v\, z_k),

    exact when :math:`g` is a polynomial of degree below :math:`2n`. It is applied to
    :math:`d = f(a) - f(m)` (centring: the variance :math:`E d^2 - (E d)^2` is not the
    difference of two large numbers when :math:`v` is small), and gives the slope
    :math:`E f'(a) = E[z f(a)]/\sqrt v` (Stein's lemma) for
    :func:`elementwise_covariance`. ``f`` is evaluated ``nodes + 1`` times on tensors of
    the input's shape (no ``[nodes, ...]`` tensor is held; the nodes are cached as
    floats). Accuracy with 32 nodes, errors in the mean and the sd in units of the input
    sd, for input sd up to 2 (``tests/nn/test_rules_ops.py``, against dense quadrature):
    GELU, SiLU, Mish, Sigmoid, Softplus below :math:`10^{-4}`; Tanh and ELU below
    :math:`10^{-3}`; a kink (SELU's derivative, or ReLU's had it no exact rule) below
    :math:`10^{-2}`. At input sd 5 all are within about :math:`8\cdot 10^{-3}`: the
    error grows as the function's features get small against the input sd.

    Parameters
    ----------
    f
        The elementwise function (a module or a function of one tensor). It is called on
        fresh tensors, so an in-place activation is safe.
    mean, var
        The input's moments (same shape).
    nodes
        Number of quadrature nodes, at least 2.

    Returns
    -------
    tuple of torch.Tensor
        Mean and variance of ``f(a)``, and :math:`E f'(a)`.
    """
    if not isinstance(nodes, int) or nodes < 2:
        raise ValueError(f"nodes must be an int of at least 2, got {nodes!r}")
    zs, ws = _hermite(nodes)
    std = (var + _TINY).sqrt()
    centre = f(mean.clone())
    s1 = torch.zeros_like(centre)
    s2 = torch.zeros_like(centre)
    sz = torch.zeros_like(centre)
    for z, w in zip(zs, ws, strict=True):
        d = f(mean + std * z) - centre
        s1 = s1 + w * d
        s2 = s2 + w * d.square()
        sz = sz + (w * z) * d
    return centre + s1, (s2 - s1.square()).clamp_min(0.0), sz / std


_Z_CLAMP = 1e3  # standardised bounds beyond it change no probability (and keep z^3 finite)


def _truncated_moments(
    lo: torch.Tensor | None, hi: torch.Tensor | None, like: torch.Tensor, order: int
) -> list[torch.Tensor]:
    r"""Return :math:`M_k = \int_{lo}^{hi} z^k \varphi(z)\,dz` for :math:`k = 0..order`.

    ``None`` bounds are infinite. :math:`M_0` is a difference of lower or of upper tail
    probabilities (whichever is accurate), and
    :math:`M_k = (k-1) M_{k-2} + lo^{k-1}\varphi(lo) - hi^{k-1}\varphi(hi)` (integration
    by parts).
    """
    ones = torch.ones_like(like)
    if lo is None:
        pdf_lo, cdf_lo, sf_lo = torch.zeros_like(like), torch.zeros_like(like), ones
    else:
        pdf_lo, cdf_lo = _pdf_cdf(lo)
        sf_lo = 0.5 * torch.erfc(lo / _SQRT2)
    if hi is None:
        pdf_hi, cdf_hi, sf_hi = torch.zeros_like(like), ones, torch.zeros_like(like)
    else:
        pdf_hi, cdf_hi = _pdf_cdf(hi)
        sf_hi = 0.5 * torch.erfc(hi / _SQRT2)
    if lo is None:
        mass = cdf_hi
    elif hi is None:
        mass = sf_lo
    else:  # a difference of the smaller tails
        mass = torch.where(lo > 0, sf_lo - sf_hi, cdf_hi - cdf_lo)
    out = [mass]
    for k in range(1, order + 1):
        term = torch.zeros_like(like)
        if lo is not None:
            term = term + lo ** (k - 1) * pdf_lo
        if hi is not None:
            term = term - hi ** (k - 1) * pdf_hi
        out.append(term + (k - 1) * out[k - 2] if k >= 2 else term)
    return out


def piecewise_polynomial_moments(
    breaks: Sequence[float],
    polys: Sequence[Sequence[float]],
    mean: torch.Tensor,
    var: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Return the exact moments of a piecewise-polynomial ``f(a)``, ``a ~ N(mean, var)``.

    ``f`` is the polynomial ``polys[k]`` (coefficients :math:`c_0, c_1, c_2` of
    :math:`1, x, x^2`) on the ``k``-th interval between the sorted ``breaks`` (the first
    and last intervals are unbounded). ReLU, LeakyReLU, Hardtanh, ReLU6, Hardsigmoid and
    Hardswish are such functions. With :math:`a = m + \sigma z` and the centre
    :math:`f(m)`, on each interval :math:`d = f(a) - f(m) = a_0 + a_1 z + a_2 z^2` with
    :math:`a_0 = p(m) - f(m)`, :math:`a_1 = \sigma p'(m)`, :math:`a_2 = c_2 \sigma^2`, so
    :math:`E d`, :math:`E d^2` and :math:`E f'(a)` are sums of the truncated Gaussian
    moments :math:`M_k = \int z^k\varphi` over the interval's standardised bounds
    (:math:`k \le 4`; :cite:p:`{e.g.}johnson1994continuous{§13.10}`). Centring at
    :math:`f(m)` keeps the variance :math:`E d^2 - (E d)^2` accurate for small
    :math:`\sigma`.

    Parameters
    ----------
    breaks
        The ``K - 1`` breakpoints, strictly increasing.
    polys
        The ``K`` polynomials, each at most 3 coefficients (degree at most 2).
    mean, var
        The input's moments.

    Returns
    -------
    tuple of torch.Tensor
        Mean and variance of ``f(a)``, and :math:`E f'(a)` (the slope of
        :func:`elementwise_covariance`).
    """
    edges = [float(b) for b in breaks]
    if len(polys) != len(edges) + 1:
        raise ValueError(f"{len(edges)} breaks need {len(edges) + 1} polys, got {len(polys)}")
    if any(b >= c for b, c in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"breaks must be strictly increasing, got {list(breaks)}")
    coefs = []
    for p in polys:
        if not 1 <= len(p) <= 3:
            raise ValueError(f"each poly has 1 to 3 coefficients (degree <= 2), got {p!r}")
        coefs.append(tuple(float(c) for c in p) + (0.0,) * (3 - len(p)))
    order = 4 if any(c[2] != 0.0 for c in coefs) else 2
    std = (var + _TINY).sqrt()
    bounds: list[float | None] = [None, *edges, None]
    centre = torch.zeros_like(mean)
    for k, (c0, c1, c2) in enumerate(coefs):
        lo, hi = bounds[k], bounds[k + 1]
        inside = torch.ones_like(mean, dtype=torch.bool)
        if lo is not None:
            inside = inside & (mean >= lo)
        if hi is not None:
            inside = inside & (mean < hi)
        centre = torch.where(inside, c0 + c1 * mean + c2 * mean.square(), centre)
    e1, e2, slope = torch.zeros_like(mean), torch.zeros_like(mean), torch.zeros_like(mean)
    for k, (c0, c1, c2) in enumerate(coefs):
        lo, hi = bounds[k], bounds[k + 1]
        z_lo = None if lo is None else ((lo - mean) / std).clamp(-_Z_CLAMP, _Z_CLAMP)
        z_hi = None if hi is None else ((hi - mean) / std).clamp(-_Z_CLAMP, _Z_CLAMP)
        m = _truncated_moments(z_lo, z_hi, mean, order)
        grad = c1 + 2.0 * c2 * mean  # p'(mean)
        a0 = c0 + c1 * mean + c2 * mean.square() - centre
        a1 = grad * std
        e1 = e1 + a0 * m[0] + a1 * m[1]
        e2 = e2 + a0.square() * m[0] + 2.0 * a0 * a1 * m[1] + a1.square() * m[2]
        slope = slope + grad * m[0]
        if c2 != 0.0:
            a2 = c2 * var
            e1 = e1 + a2 * m[2]
            e2 = e2 + 2.0 * a0 * a2 * m[2] + 2.0 * a1 * a2 * m[3] + a2.square() * m[4]
            slope = slope + 2.0 * c2 * std * m[1]
    return centre + e1, (e2 - e1.square()).clamp_min(0.0), slope


#: Activations that are piecewise polynomials (looked up along the module type's bases:
#: ReLU6 is a Hardtanh), with their breaks and polynomials; they get exact moments.
_PIECEWISE: dict[
    type[nn.Module], Callable[[Any], tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]]
] = {
    nn.ReLU: lambda m: ((0.0,), ((0.0,), (0.0, 1.0))),
    nn.LeakyReLU: lambda m: ((0.0,), ((0.0, m.negative_slope), (0.0, 1.0))),
    nn.Hardtanh: lambda m: ((m.min_val, m.max_val), ((m.min_val,), (0.0, 1.0), (m.max_val,))),
    nn.Hardsigmoid: lambda m: ((-3.0, 3.0), ((0.0,), (0.5, 1.0 / 6.0), (1.0,))),
    nn.Hardswish: lambda m: ((-3.0, 3.0), ((0.0,), (0.0, 0.5, 1.0 / 6.0), (0.0, 1.0))),
}


def elementwise_covariance(mean: torch.Tensor, cov: torch.Tensor, moments: Moments3) -> MC:
    r"""Return the mean and covariance of ``f(a)`` for ``a ~ N(mean, cov)`` per example.

    ``moments(m, v) -> (mean, var, slope)`` gives the elementwise moments and
    :math:`g = E f'(a)`. The diagonal holds the variances; off the diagonal the
    first-order term of the expansion in the correlation (Price's theorem),
    :math:`\mathrm{Cov}[f(a_i), f(a_j)] \approx g_i g_j \Sigma_{ij}` — the rule of
    :func:`relu_covariance` for any activation. The matrix stays positive semi-definite:
    :math:`\mathrm{Var} f(a_i) \ge g_i^2 \Sigma_{ii}` by Stein's lemma and Cauchy–Schwarz
    (:math:`g_i \Sigma_{ii} = \mathrm{Cov}[a_i, f(a_i)]`), and the diagonal is kept at least
    :math:`g_i^2\Sigma_{ii}` where quadrature rounds below it.

    Parameters
    ----------
    mean, cov
        ``[n, d]`` and ``[n, d, d]``.
    moments
        The activation's elementwise moments and slope.
    """
    var = cov.diagonal(0, -2, -1)
    out_mean, out_var, slope = moments(mean, var)
    off = slope.unsqueeze(-1) * cov * slope.unsqueeze(-2)
    extra = (out_var - off.diagonal(0, -2, -1)).clamp_min(0.0)
    return MC(out_mean, off + torch.diag_embed(extra))


@dataclass(frozen=True)
class _Functional:
    """The module equivalent of a functional activation.

    Its class, and the function's parameters after the input, in order (``inplace`` is
    dropped).
    """

    module: type[nn.Module]
    params: tuple[str, ...] = ()

    def build(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> nn.Module:
        if len(args) > len(self.params):
            raise ValueError(
                f"{self.module.__name__}'s function takes at most {len(self.params)} "
                f"arguments after the input ({', '.join(self.params) or 'none'}); got "
                f"{len(args)}"
            )
        bound = dict(zip(self.params, args, strict=False))
        for key, value in kwargs.items():
            if key not in self.params:
                raise ValueError(
                    f"unexpected argument {key!r} for the function of {self.module.__name__}"
                )
            bound[key] = value
        bound.pop("inplace", None)
        return self.module(**bound)


_FUNCTIONAL: dict[object, _Functional] = {
    F.relu6: _Functional(nn.ReLU6, ("inplace",)),
    F.hardtanh: _Functional(nn.Hardtanh, ("min_val", "max_val", "inplace")),
    F.hardsigmoid: _Functional(nn.Hardsigmoid, ("inplace",)),
    F.leaky_relu: _Functional(nn.LeakyReLU, ("negative_slope", "inplace")),
    F.gelu: _Functional(nn.GELU, ("approximate",)),
    F.silu: _Functional(nn.SiLU, ("inplace",)),
    F.hardswish: _Functional(nn.Hardswish, ("inplace",)),
    F.mish: _Functional(nn.Mish, ("inplace",)),
    F.elu: _Functional(nn.ELU, ("alpha", "inplace")),
    F.celu: _Functional(nn.CELU, ("alpha", "inplace")),
    F.selu: _Functional(nn.SELU, ("inplace",)),
    F.softplus: _Functional(nn.Softplus, ("beta", "threshold")),
    torch.tanh: _Functional(nn.Tanh),
    torch.sigmoid: _Functional(nn.Sigmoid),
    "tanh": _Functional(nn.Tanh),
    "sigmoid": _Functional(nn.Sigmoid),
}


def _functional_spec(op: object) -> _Functional | None:
    try:
        return _FUNCTIONAL.get(op)
    except TypeError:  # an unhashable callable
        return None


def _activation(
    op: object, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> tuple[Callable[[torch.Tensor], torch.Tensor], Moments3]:
    """Return an activation call as a function of its input, and its moments function."""
    spec = _functional_spec(op)
    if spec is not None:  # a functional activation: its module, with the call's arguments
        op, args, kwargs = spec.build(args, kwargs), (), {}
    if isinstance(op, nn.Module):
        module = op
        pieces = next((_PIECEWISE[c] for c in type(op).__mro__ if c in _PIECEWISE), None)
        if pieces is not None:
            return module, functools.partial(piecewise_polynomial_moments, *pieces(module))
        return module, functools.partial(gauss_hermite_moments, module)

    def f(t: torch.Tensor) -> torch.Tensor:
        return _call(op, t, *args, **kwargs)

    return f, functools.partial(gauss_hermite_moments, f)


def elementwise_moments(op: object, x: MV, *args: Any, **kwargs: Any) -> MV:
    """Return the moments of an elementwise activation (the ``moments`` rule of activations).

    The op is a module (``nn.GELU()``), a function (``F.gelu``, called with the input and
    ``args``, ``kwargs``) or a tensor method name (``"tanh"``). ReLU, LeakyReLU,
    Hardtanh, ReLU6, Hardsigmoid and Hardswish get their exact moments
    (:func:`piecewise_polynomial_moments`); any other activation its
    Gauss–Hermite moments (:func:`gauss_hermite_moments`), so registering a new
    activation with this rule needs no maths.

    Parameters
    ----------
    op
        The activation.
    x
        Its input's moments.
    *args, **kwargs
        The call's other arguments (for a function or a method).

    Returns
    -------
    MV
        The output's moments.
    """
    _, moments = _activation(op, args, kwargs)
    x = _as_mv(x, op)
    mean, var, _ = moments(x.mean, x.var)
    return MV(mean, var)


def _elementwise_cov(op, x, *args, **kwargs) -> MC:
    f, moments = _activation(op, args, kwargs)
    x = _as_mc(x, op)
    if x.cov is None:
        return MC(f(x.mean.clone()), None)
    if x.mean.dim() != 2:
        raise TypeError(
            f"full-covariance propagation applies {_op_name(op)} to [n, d] inputs with a "
            "covariance; use covariance='diagonal' for convolutional networks"
        )
    return elementwise_covariance(x.mean, x.cov, moments)


def _functional_module(op, *args, **kwargs) -> nn.Module:
    spec = _functional_spec(op)
    if spec is None:  # pragma: no cover - registered only for the table's keys
        raise ValueError(f"{_op_name(op)} has no module equivalent")
    return spec.build(args[1:], kwargs)


# --------------------------------------------------------------------------- pooling
def _adaptive_windows(size_in: int, size_out: int) -> list[int]:
    """Return the window lengths of adaptive pooling along one axis.

    torch's rule: output ``i`` of ``k`` reads ``[floor(i n / k), ceil((i + 1) n / k))``.
    """
    return [-(-(i + 1) * size_in // size_out) - (i * size_in) // size_out for i in range(size_out)]


def _output_hw(output_size: object, h: int, w: int) -> tuple[int, int]:
    """Resolve an adaptive pooling ``output_size`` (an int, or a pair of ints or None)."""
    size = (output_size, output_size) if isinstance(output_size, int) else output_size
    if not isinstance(size, Sequence) or len(size) != 2:
        raise TypeError(f"output_size must be an int or a pair, got {output_size!r}")
    out = tuple(full if s is None else s for s, full in zip(size, (h, w), strict=True))
    if not all(isinstance(s, int) and s > 0 for s in out):
        raise TypeError(f"output_size must hold positive ints or None, got {output_size!r}")
    return out[0], out[1]


def adaptive_avgpool2d_moments(
    output_size: int | Sequence[int | None], mean: torch.Tensor, var: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return the moments of adaptive average pooling, exact for uncorrelated inputs.

    Output position :math:`(i, j)` averages a window of :math:`A_{ij} = h_i w_j` inputs,
    whose lengths :math:`h_i, w_j` vary with the position when the input size is not a
    multiple of the output size (:func:`torch.nn.functional.adaptive_avg_pool2d`:
    ``[floor(i H / k), ceil((i + 1) H / k))``). The average has mean ``pool(mean)`` and
    variance :math:`\sum_{\text{window}} v / A_{ij}^2` = ``pool(var)`` :math:`/ A_{ij}`.
    Global average pooling is ``output_size=1``.

    Parameters
    ----------
    output_size
        As :class:`torch.nn.AdaptiveAvgPool2d` takes it.
    mean, var
        ``[n, c, h, w]`` (or ``[c, h, w]``) moments of the input.

    Returns
    -------
    tuple of torch.Tensor
        The output's mean and variance.
    """
    if mean.dim() not in (3, 4):
        raise TypeError(
            f"adaptive average pooling takes [n, c, h, w] inputs, got the shape {tuple(mean.shape)}"
        )
    h, w = mean.shape[-2:]
    oh, ow = _output_hw(output_size, h, w)
    rows = torch.tensor(_adaptive_windows(h, oh), dtype=var.dtype, device=var.device)
    cols = torch.tensor(_adaptive_windows(w, ow), dtype=var.dtype, device=var.device)
    area = rows[:, None] * cols[None, :]
    return F.adaptive_avg_pool2d(mean, (oh, ow)), F.adaptive_avg_pool2d(var, (oh, ow)) / area


def _mean_dims(dim: object, ndim: int, what: str) -> tuple[int, ...]:
    """Validate a mean's ``dim`` for moment propagation: its dimensions, from the front."""
    if dim is None:
        raise TypeError(
            f"{what}: a mean over every dimension mixes the examples of a batch; give the "
            "dimensions to average, e.g. x.mean((2, 3)) for global average pooling"
        )
    dims = (dim,) if isinstance(dim, int) else tuple(dim)  # type: ignore[arg-type]
    if not dims:
        raise TypeError(f"{what}: dim is empty; give the dimensions to average")
    resolved = tuple(_check_dim(d, ndim, what) for d in dims)
    if 0 in resolved:
        raise TypeError(
            f"{what}: a mean over the batch dimension (0) mixes examples; average over the "
            "spatial dimensions, e.g. x.mean((2, 3))"
        )
    return resolved


def mean_moments(x: MV, dim: int | Sequence[int], keepdim: bool = False) -> MV:
    r"""Return the moments of ``x.mean(dim, keepdim)``, exact for uncorrelated inputs.

    The average of :math:`N` units (the product of the sizes of the dimensions ``dim``)
    has mean the average of their means and variance :math:`\sum v / N^2` = the average
    of their variances over :math:`N`. ``x.mean((2, 3))`` is global average pooling.

    Raises
    ------
    TypeError
        If ``dim`` is ``None`` or empty, out of range, or holds the batch dimension 0.
    """
    dims = _mean_dims(dim, x.mean.dim(), "mean")
    n = math.prod(x.mean.shape[d] for d in dims)
    return MV(x.mean.mean(dims, keepdim=keepdim), x.var.mean(dims, keepdim=keepdim) / n)


def _mean_kind(dims: object, x: object) -> MaskRule:
    """Mask kind of a mean: ``"same"`` unless it averages the batch or the channels."""
    if dims is None:
        return None
    ndim = _ndim(x)
    seq = (dims,) if isinstance(dims, int) else tuple(dims)  # type: ignore[arg-type]
    resolved = [_resolve_dim(d, ndim) for d in seq]
    if not seq or any(d is None or d in (0, 1) for d in resolved):
        return None
    return "same"


class Mean(nn.Module):
    """``x.mean(dim, keepdim)`` as a module: global average pooling written as a mean.

    The module equivalent of ``x.mean((2, 3))`` / ``torch.mean(x, dim=(-2, -1))`` in a
    compact network.

    Parameters
    ----------
    dim
        The dimensions to average (not the batch dimension 0).
    keepdim
        Whether the averaged dimensions stay, with size 1.
    """

    def __init__(self, dim: int | Sequence[int], keepdim: bool = False):
        super().__init__()
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if not dims or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
            raise ValueError(f"dim must be an int or a non-empty sequence of ints, got {dim!r}")
        if 0 in dims:
            raise ValueError("dim holds the batch dimension 0: a mean over it mixes examples")
        self.dim = dims
        self.keepdim = bool(keepdim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x.mean(dim, keepdim)``."""
        return x.mean(self.dim, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        """Return the arguments shown by ``repr``."""
        return f"dim={self.dim}, keepdim={self.keepdim}"


# --------------------------------------------------------------------- normalisation
def batchnorm_affine(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return a BatchNorm's evaluation-mode map as per-channel :math:`(a, b)`, :math:`y = a x + b`.

    :math:`a = \gamma / \sqrt{\hat\sigma^2 + \epsilon}`, :math:`b = \beta - a\hat\mu` with
    the running statistics :math:`(\hat\mu, \hat\sigma^2)` :cite:p:`ioffe2015batch{Alg. 2}`;
    :math:`\gamma = 1, \beta = 0` without affine parameters.

    Raises
    ------
    TypeError
        If the norm tracks no running statistics (``track_running_stats=False``).
    """
    mean = getattr(norm, "running_mean", None)
    var = getattr(norm, "running_var", None)
    if not isinstance(mean, torch.Tensor) or not isinstance(var, torch.Tensor):
        raise TypeError(
            f"{type(norm).__name__} tracks no running statistics (track_running_stats=False):"
            " it has no evaluation-mode affine map for moment propagation"
        )
    a = torch.rsqrt(var + float(getattr(norm, "eps", 1e-5)))
    b = -a * mean
    weight, bias = getattr(norm, "weight", None), getattr(norm, "bias", None)
    if isinstance(weight, torch.Tensor):
        a, b = a * weight, b * weight
    if isinstance(bias, torch.Tensor):
        b = b + bias
    return a, b


def _batchnorm_map(norm: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(a, b)`` of :func:`batchnorm_affine` shaped to broadcast over ``x``."""
    check = getattr(norm, "_check_input_dim", None)
    if check is not None:
        try:
            check(x)
        except ValueError as err:
            raise TypeError(f"{type(norm).__name__}: {err}") from None
    features = getattr(norm, "num_features", None)
    if x.dim() < 2 or x.shape[1] != features:
        raise TypeError(
            f"{type(norm).__name__} has {features} features; its input has the shape "
            f"{tuple(x.shape)}"
        )
    a, b = batchnorm_affine(norm)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return a.reshape(shape), b.reshape(shape)


def _batchnorm_moments(op, x) -> MV:
    x = _as_mv(x, op)
    a, b = _batchnorm_map(op, x.mean)
    return MV(a * x.mean + b, a.square() * x.var)


def _batchnorm_cov(op, x) -> MC:
    x = _as_mc(x, op)
    a, b = _batchnorm_map(op, x.mean)
    mean = a * x.mean + b
    if x.cov is None:
        return MC(mean, None)
    if x.mean.dim() != 2:  # pragma: no cover - full covariances are [n, d, d]
        raise TypeError("full-covariance propagation takes [n, d] inputs with a covariance")
    return MC(mean, a.unsqueeze(-1) * x.cov * a.unsqueeze(-2))


def layernorm_moments(
    norm: nn.LayerNorm, mean: torch.Tensor, var: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return approximate moments of a LayerNorm, by the delta method in its statistics.

    A LayerNorm computes :math:`y_i = \gamma_i u_i / S + \beta_i` over an example's
    :math:`D` normalised units, with :math:`u_i = a_i - \bar a` and
    :math:`S^2 = \frac1D\sum_j u_j^2 + \epsilon`, both random when the units are. For
    independent units :math:`a_i \sim N(m_i, v_i)`, with :math:`c_i = m_i - \bar m`:
    :math:`E u_i = c_i`, :math:`\mathrm{Var}\,u_i = v_i(1 - 2/D) + \bar v / D` (exact);
    :math:`s^2 = E S^2 = \overline{c^2} + \bar v (1 - 1/D) + \epsilon` (exact);
    :math:`\mathrm{Var}\,S^2 \approx \frac1{D^2}\sum_j (4 c_j^2 v_j + 2 v_j^2)` and
    :math:`\mathrm{Cov}[u_i, S^2] \approx \frac2D (c_i v_i - \overline{c v})`. Expanding
    :math:`u / S` about :math:`(c_i, s^2)` to second order for the mean and to first order
    for the variance (the delta method):

    .. math::
        E y_i &\approx \gamma_i\Big(\frac{c_i}{s}\big(1 + \tfrac38
            \mathrm{Var}\,S^2 / s^4\big) - \frac{\mathrm{Cov}[u_i, S^2]}{2 s^3}\Big)
            + \beta_i, \\
        \mathrm{Var}\,y_i &\approx \gamma_i^2 \Big(\frac{\mathrm{Var}\,u_i}{s^2}
            + \frac{c_i^2\,\mathrm{Var}\,S^2}{4 s^6}
            - \frac{c_i \mathrm{Cov}[u_i, S^2]}{s^4}\Big).

    Exact for a deterministic input. Against Monte Carlo (``tests/nn/test_rules_ops.py``,
    :math:`D = 64`, input sd up to half the spread of the means) the errors are below
    :math:`0.01|\gamma_i|` in the mean and the sd; the terms dropped are of higher order
    in :math:`1/D`. The statistics are per example, so the diagonal propagation keeps
    its meaning (the outputs of one example are correlated through them: dropped, as
    everywhere in the diagonal propagation).
    """
    shape = tuple(norm.normalized_shape)
    if tuple(mean.shape[mean.dim() - len(shape) :]) != shape:
        raise TypeError(f"LayerNorm over {shape}: its input has the shape {tuple(mean.shape)}")
    dims = tuple(range(-len(shape), 0))
    size = math.prod(shape)
    mu = mean.mean(dims, keepdim=True)
    centred = mean - mu  # c_i
    v_bar = var.mean(dims, keepdim=True)
    s2 = centred.square().mean(dims, keepdim=True) + v_bar * (1.0 - 1.0 / size) + norm.eps
    # y_i ~ u_i / s - c_i (S^2 - s^2) / (2 s^3), u_i = a_i - mean(a) (delta method)
    var_u = var * (1.0 - 2.0 / size) + v_bar / size
    var_s2 = (4.0 * centred.square() * var + 2.0 * var.square()).mean(dims, keepdim=True) / size
    cov_us2 = 2.0 * (centred * var - (centred * var).mean(dims, keepdim=True)) / size
    inv = torch.rsqrt(s2)
    out_mean = centred * inv * (1.0 + 0.375 * var_s2 / s2.square()) - 0.5 * cov_us2 * inv / s2
    out_var = (
        var_u / s2
        + centred.square() * var_s2 / (4.0 * s2.square())
        - centred * cov_us2 / s2.square()
    ).clamp_min(0.0)
    if norm.weight is not None:
        out_mean, out_var = out_mean * norm.weight, out_var * norm.weight.square()
    if norm.bias is not None:
        out_mean = out_mean + norm.bias
    return out_mean, out_var


# ------------------------------------------------------------ sums, products, joins
def _data_count(*inputs: object) -> int:
    """Return the number of data inputs among a call's operands (numbers are constants)."""
    return sum(1 for t in inputs if not _is_number(t))


def _join_mask(op, a=None, b=None, *args, **kwargs) -> MaskRule:
    """``"join"`` for two data inputs, ``"same"`` for a tensor and a number."""
    count = _data_count(a, b)
    return "join" if count >= 2 else "same" if count == 1 else None


def _scale_mask(op, a=None, b=None, *args, **kwargs) -> MaskRule:
    """Return a division's mask: ``"same"`` for a tensor over a number, else ``None``."""
    return "same" if not _is_number(a) and _is_number(b) else None


def _sum_moments(op, a, b, sign: float, alpha: Any = 1) -> MV:
    r"""Return the moments of ``a + sign * alpha * b``, the inputs taken as independent.

    Means add, variances add: :math:`\mathrm{Var} = v_a + \alpha^2 v_b` (module docstring).
    """
    s = sign * alpha
    if _is_number(b):
        x = _as_mv(a, op)
        return MV(x.mean + s * b, x.var)
    y = _as_mv(b, op)
    if _is_number(a):
        return MV(a + s * y.mean, s * s * y.var)
    x = _as_mv(a, op)
    return MV(x.mean + s * y.mean, x.var + s * s * y.var)


def _sum_cov(op, a, b, sign: float, alpha: Any = 1) -> MC:
    """Covariance rule of a sum: exact when at most one input is random."""
    s = sign * alpha
    if _is_number(b):
        x = _as_mc(a, op)
        return MC(x.mean + s * b, x.cov)
    y = _as_mc(b, op)
    if _is_number(a):
        return MC(a + s * y.mean, None if y.cov is None else s * s * y.cov)
    x = _as_mc(a, op)
    mean = x.mean + s * y.mean
    if x.cov is not None and y.cov is not None:
        raise TypeError(
            f"full-covariance propagation cannot take {_op_name(op)} of two random tensors: "
            "their cross-covariance is not tracked; use covariance='diagonal'"
        )
    random = x if x.cov is not None else y
    cov = x.cov if x.cov is not None else None if y.cov is None else s * s * y.cov
    if random.cov is not None and random.mean.shape != mean.shape:
        raise TypeError(
            f"full-covariance propagation: {_op_name(op)} broadcasts its random input from "
            f"{tuple(random.mean.shape)} to {tuple(mean.shape)}; use covariance='diagonal'"
        )
    return MC(mean, cov)


def _add_rule(sign: float) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Return the moments and covariance rules of addition (``sign=1``) or subtraction."""

    def moments(op, a, b, *, alpha: Any = 1):
        if _is_number(a) and _is_number(b):  # shape arithmetic (x.size(1) + 1)
            return _call(op, a, b) if alpha == 1 else _call(op, a, b, alpha=alpha)
        return _sum_moments(op, a, b, sign, alpha)

    def covariance(op, a, b, *, alpha: Any = 1):
        if _is_number(a) and _is_number(b):
            return _call(op, a, b) if alpha == 1 else _call(op, a, b, alpha=alpha)
        return _sum_cov(op, a, b, sign, alpha)

    return moments, covariance


def _mul_moments(op, a, b):
    r"""Return the moments of ``a * b`` for independent inputs :cite:p:`goodman1960exact`.

    :math:`E = m_a m_b`, :math:`\mathrm{Var} = v_a v_b + v_a m_b^2 + v_b m_a^2`.
    """
    if _is_number(a) and _is_number(b):
        return _call(op, a, b)
    if _is_number(a):
        a, b = b, a
    if _is_number(b):
        x = _as_mv(a, op)
        return MV(x.mean * b, x.var * (b * b))
    x, y = _as_mv(a, op), _as_mv(b, op)
    var = x.var * y.var + x.var * y.mean.square() + y.var * x.mean.square()
    return MV(x.mean * y.mean, var)


def _scale_mc(x: MC, scale: Any) -> MC:
    """Return a random input times a number, or times a deterministic ``[n, d]`` tensor."""
    mean = x.mean * scale
    if x.cov is None:
        return MC(mean, None)
    if _is_number(scale):
        return MC(mean, x.cov * (scale * scale))
    s = torch.as_tensor(scale).expand_as(mean)
    return MC(mean, s.unsqueeze(-1) * x.cov * s.unsqueeze(-2))


def _mul_cov(op, a, b):
    """Covariance rule of a product: exact when at most one input is random."""
    if _is_number(a) and _is_number(b):
        return _call(op, a, b)
    if _is_number(a):
        a, b = b, a
    if _is_number(b):
        return _scale_mc(_as_mc(a, op), b)
    x, y = _as_mc(a, op), _as_mc(b, op)
    if x.cov is not None and y.cov is not None:
        raise TypeError(
            f"full-covariance propagation cannot take {_op_name(op)} of two random tensors; "
            "use covariance='diagonal'"
        )
    random, other = (x, y) if y.cov is None else (y, x)
    if random.cov is not None and torch.broadcast_shapes(
        random.mean.shape, other.mean.shape
    ) != tuple(random.mean.shape):
        raise TypeError(
            f"full-covariance propagation: {_op_name(op)} broadcasts its random input; use "
            "covariance='diagonal'"
        )
    return _scale_mc(random, other.mean)


def _check_divisor(op, a, b, rounding_mode: object) -> None:
    if rounding_mode is not None:
        raise TypeError(
            f"moment propagation: {_op_name(op)} with rounding_mode={rounding_mode!r} is "
            "not smooth; only true division by a number is supported"
        )
    if not _is_number(b):
        raise TypeError(
            f"moment propagation supports {_op_name(op)} of a tensor by a number, not by a "
            "tensor (the moments of a ratio of random tensors have no closed form)"
        )
    if b == 0:
        raise ZeroDivisionError(f"{_op_name(op)} by zero")


def _div_moments(op, a, b, *, rounding_mode: object = None):
    """Moments of ``a / c`` for a number ``c``: mean / c, variance / c^2."""
    if _is_number(a) and _is_number(b):
        return (
            _call(op, a, b)
            if rounding_mode is None
            else _call(op, a, b, rounding_mode=rounding_mode)
        )
    _check_divisor(op, a, b, rounding_mode)
    x = _as_mv(a, op)
    return MV(x.mean / b, x.var / (b * b))


def _div_cov(op, a, b, *, rounding_mode: object = None):
    if _is_number(a) and _is_number(b):
        return (
            _call(op, a, b)
            if rounding_mode is None
            else _call(op, a, b, rounding_mode=rounding_mode)
        )
    _check_divisor(op, a, b, rounding_mode)
    return _scale_mc(_as_mc(a, op), 1.0 / b)


def _neg_moments(op, a):
    if _is_number(a):
        return -a
    x = _as_mv(a, op)
    return MV(-x.mean, x.var)


def _neg_cov(op, a):
    if _is_number(a):
        return -a
    x = _as_mc(a, op)
    return MC(-x.mean, x.cov)


# ------------------------------------------------------------------- concatenation
def _cat_args(op, tensors: object, dim: object, axis: object) -> tuple[list[Any], Any]:
    if axis is not None:  # torch.cat accepts numpy's name
        dim = axis
    if not isinstance(tensors, list | tuple) or not tensors:
        raise TypeError(f"{_op_name(op)} takes a non-empty list of tensors, got {tensors!r}")
    return list(tensors), dim


def _cat_moments(op, tensors, dim=0, *, axis=None, out=None) -> MV:
    """Moments of ``torch.cat``: the means and the variances concatenated along ``dim``."""
    items, dim = _cat_args(op, tensors, dim, axis)
    parts = [_as_mv(t, op) for t in items]
    d = _check_dim(dim, parts[0].mean.dim(), _op_name(op))
    if d == 0:
        raise TypeError(
            f"{_op_name(op)} along the batch dimension (0) mixes examples; concatenate "
            "along the channels (dim=1)"
        )
    return MV(torch.cat([p.mean for p in parts], d), torch.cat([p.var for p in parts], d))


def _cat_cov(op, tensors, dim=0, *, axis=None, out=None) -> MC:
    """Covariance rule of ``torch.cat`` on ``[n, d]``: exact when at most one piece is random."""
    items, dim = _cat_args(op, tensors, dim, axis)
    parts = [_as_mc(t, op) for t in items]
    d = _check_dim(dim, parts[0].mean.dim(), _op_name(op))
    if d == 0:
        raise TypeError(f"{_op_name(op)} along the batch dimension (0) mixes examples")
    mean = torch.cat([p.mean for p in parts], d)
    random = [k for k, p in enumerate(parts) if p.cov is not None]
    if not random:
        return MC(mean, None)
    if len(random) > 1:
        raise TypeError(
            f"full-covariance propagation cannot take {_op_name(op)} of several random "
            "tensors: their cross-covariance is not tracked; use covariance='diagonal'"
        )
    if mean.dim() != 2:  # pragma: no cover - full covariances are [n, d, d]
        raise TypeError("full-covariance propagation concatenates [n, d] inputs")
    k = random[0]
    piece = parts[k].cov
    assert piece is not None
    start = sum(p.mean.shape[1] for p in parts[:k])
    size = parts[k].mean.shape[1]
    cov = mean.new_zeros(*mean.shape, mean.shape[1])
    cov[:, start : start + size, start : start + size] = piece
    return MC(mean, cov)


def _cat_mask(op, tensors=(), dim=0, *, axis=None, out=None) -> MaskRule:
    """``"concat"`` for a concatenation along the channel dimension 1."""
    if axis is not None:
        dim = axis
    if not isinstance(dim, int):
        return None
    first = tensors[0] if isinstance(tensors, list | tuple) and tensors else None
    return "concat" if _resolve_dim(dim, _ndim(first)) == 1 else None


# --------------------------------------------------------------------- built-in rules
def _relu(op, x: MV, *args, **kwargs) -> MV:
    return MV(*relu_moments(x.mean, x.var))


def _same(op, x, *args, **kwargs):
    return x


def _relu_cov(op, x: MC, *args, **kwargs) -> MC:
    return relu_covariance(x.mean, x.cov)


def _flatten_cov(op, x: MC, *args, **kwargs) -> MC:
    if x.cov is not None and x.mean.dim() != 2:
        raise TypeError(
            "full-covariance propagation flattens only deterministic inputs; use "
            "covariance='diagonal' for convolutional networks"
        )
    flat = op(x.mean) if isinstance(op, nn.Module) else torch.flatten(x.mean, *args, **kwargs)
    return MC(flat, x.cov)


def _apply_module(op, x: MV) -> MV:
    return x.map(op)


#: Constructor arguments of the elementwise activation modules (compact-model files).
_ACTIVATION_ARGS: dict[type[nn.Module], tuple[str, ...]] = {
    nn.ReLU6: (),
    nn.LeakyReLU: ("negative_slope",),
    nn.ELU: ("alpha",),
    nn.CELU: ("alpha",),
    nn.SELU: (),
    nn.GELU: ("approximate",),
    nn.SiLU: (),
    nn.Hardswish: (),
    nn.Hardsigmoid: (),
    nn.Mish: (),
    nn.Tanh: (),
    nn.Sigmoid: (),
    nn.Softplus: ("beta", "threshold"),
    nn.Hardtanh: ("min_val", "max_val"),
}
for _cls, _args in _ACTIVATION_ARGS.items():
    register_op(
        _cls,
        OpRule(moments=elementwise_moments, mask="same", args=_args, covariance=_elementwise_cov),
    )
for _key in _FUNCTIONAL:
    register_op(
        _key,
        OpRule(
            moments=elementwise_moments,
            mask="same",
            module=_functional_module,
            covariance=_elementwise_cov,
        ),
    )

register_op(nn.ReLU, OpRule(moments=_relu, mask="same", args=(), covariance=_relu_cov))
register_op(nn.Identity, OpRule(moments=_same, mask="same", args=(), covariance=_same))
register_op(nn.Dropout, OpRule(moments=_same, mask="same", args=("p",), covariance=_same))
register_op(nn.Dropout2d, OpRule(moments=_same, mask="same", args=("p",)))
register_op(
    nn.MaxPool2d,
    OpRule(
        moments=lambda op, x: MV(*maxpool2d_moments(op, x.mean, x.var)),
        mask="same",
        args=("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    ),
)
register_op(
    nn.AvgPool2d,
    OpRule(
        moments=lambda op, x: MV(*avgpool2d_moments(op, x.mean, x.var)),
        mask="same",
        args=("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    ),
)
register_op(
    nn.Flatten,
    OpRule(
        moments=_apply_module,
        mask="flatten",
        args=("start_dim", "end_dim"),
        covariance=_flatten_cov,
    ),
)
register_op(
    nn.Linear,
    OpRule(
        args=("in_features", "out_features"),
        flops=lambda m, s: weight_flops(tuple(m.weight.shape), s),
    ),
)
#: Constructor arguments of the convolutions (compact-model files; ``bias`` is added).
_CONV_ARGS = (
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "padding_mode",
)
for _cls in (nn.Conv1d, nn.Conv2d):
    register_op(
        _cls, OpRule(args=_CONV_ARGS, flops=lambda m, s: weight_flops(tuple(m.weight.shape), s))
    )
# a lookup multiplies nothing: no FLOPs
register_op(
    nn.Embedding,
    OpRule(
        args=(
            "num_embeddings",
            "embedding_dim",
            "padding_idx",
            "max_norm",
            "norm_type",
            "scale_grad_by_freq",
            "sparse",
        )
    ),
)

# functional forms and tensor methods, for models with their own forward
_relu_fn = OpRule(
    moments=_relu, mask="same", module=lambda op, *a, **k: nn.ReLU(), covariance=_relu_cov
)
for _fn in (F.relu, torch.relu, "relu"):
    register_op(_fn, _relu_fn)


def _flatten_moments(op, x: MV, start_dim: int = 0, end_dim: int = -1) -> MV:
    return x.map(lambda t: torch.flatten(t, start_dim, end_dim))


def _flatten_module(op, x, start_dim: int = 0, end_dim: int = -1) -> nn.Module:
    if start_dim != 1:
        raise ValueError(
            f"a flatten that starts at dimension {start_dim} mixes examples or is not "
            "supported; flatten from dimension 1"
        )
    return nn.Flatten(start_dim, end_dim)


_flatten_fn = OpRule(
    moments=_flatten_moments, mask="flatten", module=_flatten_module, covariance=_flatten_cov
)
register_op(torch.flatten, _flatten_fn)
register_op("flatten", _flatten_fn)


def _view_moments(op, x: MV, *shape) -> MV:
    return x.map(lambda t: t.reshape(*shape))


def _view_module(op, x, *shape) -> nn.Module:
    if len(shape) == 2 and shape[1] == -1:
        return nn.Flatten()
    raise ValueError(
        f"only x.view(batch, -1) / x.reshape(batch, -1) is supported as a reshape, got "
        f"the shape {shape}; use torch.flatten(x, 1)"
    )


def _view_cov(op, x: MC, *shape) -> MC:
    if x.cov is not None and x.mean.dim() != 2:
        raise TypeError(
            "full-covariance propagation reshapes only deterministic inputs; use "
            "covariance='diagonal' for convolutional networks"
        )
    return MC(x.mean.reshape(*shape), x.cov)


for _name in ("view", "reshape"):
    register_op(
        _name,
        OpRule(moments=_view_moments, mask="flatten", module=_view_module, covariance=_view_cov),
    )


# shape queries (x.size(0), x.shape[0]) are evaluated on the mean and carry no data
def _size(op, x, *args):
    return x.mean.size(*args)


def _getattr(op, x, name):
    return getattr(x.mean, name)


def _getitem(op, x, index):
    if isinstance(x, MV):  # slicing data: the same slice of the mean and the variance
        return x.map(lambda t: t[index])
    if isinstance(x, MC):
        raise TypeError("full-covariance propagation does not support slicing a tensor")
    return x[index]  # indexing a shape


register_op("size", OpRule(moments=_size, covariance=_size))
register_op(getattr, OpRule(moments=_getattr, covariance=_getattr))
register_op(operator.getitem, OpRule(moments=_getitem, covariance=_getitem))


# ------------------------------------------------ pooling, means, joins, normalisation
register_op(
    nn.AdaptiveAvgPool2d,
    OpRule(
        moments=lambda op, x: MV(*adaptive_avgpool2d_moments(op.output_size, x.mean, x.var)),
        mask="same",
        args=("output_size",),
        covariance=_deterministic_cov,
    ),
)


def _adaptive_avg_moments(op, x, output_size) -> MV:
    x = _as_mv(x, op)
    return MV(*adaptive_avgpool2d_moments(output_size, x.mean, x.var))


register_op(
    F.adaptive_avg_pool2d,
    OpRule(
        moments=_adaptive_avg_moments,
        mask="same",
        module=lambda op, x, output_size: nn.AdaptiveAvgPool2d(output_size),
        covariance=_deterministic_cov,
    ),
)


def _as_2d(t: torch.Tensor) -> torch.Tensor:
    """``[n, c, length]`` as a ``[n, c, 1, length]`` image (1-d pooling by the 2-d rules)."""
    if t.dim() != 3:
        raise TypeError(f"1-d pooling takes [n, c, length] inputs, got the shape {tuple(t.shape)}")
    return t.unsqueeze(2)


def _single(v: int | Sequence[int]) -> int:
    return v if isinstance(v, int) else v[0]


def _maxpool1d_moments(op: nn.MaxPool1d, x: MV) -> MV:
    pool = nn.MaxPool2d(
        (1, _single(op.kernel_size)),
        (1, _single(op.stride or op.kernel_size)),
        (0, _single(op.padding)),
        (1, _single(op.dilation)),
        ceil_mode=op.ceil_mode,
        return_indices=op.return_indices,
    )
    m, v = maxpool2d_moments(pool, _as_2d(x.mean), _as_2d(x.var))
    return MV(m.squeeze(2), v.squeeze(2))


def _avgpool1d_moments(op: nn.AvgPool1d, x: MV) -> MV:
    if op.padding not in (0, (0,)) or op.ceil_mode:
        raise TypeError(
            f"moment propagation supports AvgPool1d without padding or ceil_mode; got {op}"
        )
    return MV(op(x.mean), op(x.var) / _single(op.kernel_size))


def _adaptive_avg1d_moments(op: nn.AdaptiveAvgPool1d, x: MV) -> MV:
    size = _single(cast(Any, op.output_size))
    m, v = adaptive_avgpool2d_moments((1, size), _as_2d(x.mean), _as_2d(x.var))
    return MV(m.squeeze(2), v.squeeze(2))


register_op(
    nn.MaxPool1d,
    OpRule(
        moments=_maxpool1d_moments,
        mask="same",
        args=("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    ),
)
register_op(
    nn.AvgPool1d,
    OpRule(
        moments=_avgpool1d_moments,
        mask="same",
        args=("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    ),
)
register_op(
    nn.AdaptiveAvgPool1d,
    OpRule(
        moments=_adaptive_avg1d_moments,
        mask="same",
        args=("output_size",),
        covariance=_deterministic_cov,
    ),
)
# no moments: the maximum of a large window has no reliable closed form (refused)
register_op(
    nn.AdaptiveMaxPool2d,
    OpRule(mask="same", args=("output_size",), covariance=_deterministic_cov),
)


def _mean_fn_moments(op, x, dim=None, keepdim=False, *, dtype=None) -> MV:
    out = mean_moments(_as_mv(x, op), dim, keepdim)  # type: ignore[arg-type]
    return out if dtype is None else out.map(lambda t: t.to(dtype))


def _mean_fn_module(op, x, dim=None, keepdim=False, *, dtype=None) -> nn.Module:
    if dtype is not None:
        raise ValueError("a mean with a dtype has no module equivalent; cast separately")
    if dim is None:
        raise ValueError("a mean over every dimension mixes examples; give dim")
    return Mean(dim, keepdim)


def _mean_fn_mask(op, x=None, dim=None, keepdim=False, *, dtype=None) -> MaskRule:
    return _mean_kind(dim, x)


_mean_fn = OpRule(
    moments=_mean_fn_moments,
    mask=_mean_fn_mask,
    module=_mean_fn_module,
    covariance=_deterministic_cov,
)
register_op(torch.mean, _mean_fn)
register_op("mean", _mean_fn)
register_op(
    Mean,
    OpRule(
        moments=lambda op, x: mean_moments(_as_mv(x, op), op.dim, op.keepdim),
        mask=lambda op, x=None: _mean_kind(op.dim, x),
        args=("dim", "keepdim"),
        covariance=_deterministic_cov,
    ),
)

_add_moments, _add_cov = _add_rule(1.0)
_sub_moments, _sub_cov = _add_rule(-1.0)
for _keys, _moments, _cov in (
    ((operator.add, operator.iadd, torch.add, "add", "add_"), _add_moments, _add_cov),
    ((operator.sub, operator.isub, torch.sub, "sub", "sub_"), _sub_moments, _sub_cov),
    ((operator.mul, operator.imul, torch.mul, "mul", "mul_"), _mul_moments, _mul_cov),
):
    for _key in _keys:
        register_op(_key, OpRule(moments=_moments, mask=_join_mask, covariance=_cov))
for _key in (operator.truediv, operator.itruediv, torch.div, "div", "div_"):
    register_op(_key, OpRule(moments=_div_moments, mask=_scale_mask, covariance=_div_cov))
for _key in (operator.neg, torch.neg, "neg"):
    register_op(_key, OpRule(moments=_neg_moments, mask="same", covariance=_neg_cov))
for _key in (torch.cat, torch.concat, torch.concatenate):
    register_op(_key, OpRule(moments=_cat_moments, mask=_cat_mask, covariance=_cat_cov))

_BATCHNORM_ARGS = ("num_features", "eps", "momentum", "affine", "track_running_stats")
for _cls in (nn.BatchNorm1d, nn.BatchNorm2d):
    register_op(
        _cls,
        OpRule(
            moments=_batchnorm_moments,
            mask="same",
            args=_BATCHNORM_ARGS,
            covariance=_batchnorm_cov,
        ),
    )
register_op(
    nn.LayerNorm,
    OpRule(
        moments=lambda op, x: MV(*layernorm_moments(op, _as_mv(x, op).mean, _as_mv(x, op).var)),
        mask=None,
        args=("normalized_shape", "eps", "elementwise_affine"),
        covariance=_deterministic_cov,
    ),
)
