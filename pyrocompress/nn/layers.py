r"""Bayesian layers: Pyro programs for the weights of one Linear, convolution or embedding.

A layer's ``forward(x)`` samples its sites from its prior (or, under SVI, takes them
from the guide) and returns its output. What the context asks of it comes through the
effects of :mod:`pyrocompress.effects`: under a point estimate it computes with the
posterior-mean weights; under the local reparametrisation :cite:p:`kingma2015variational` it samples
its pre-activations instead, with per-example group gates.

Every way of computing a layer on input moments goes through one protocol,
:meth:`BayesianLayer.output_moments`: the local reparametrisation calls it with
deterministic inputs (``var=None``) and samples; moment propagation, unit scores and
predictive moments call it with propagated variances. The product moments of a gate and
a weight are written once, in :func:`product_moments`.

Groups: the weights leaving one input unit of a Linear layer (a column of its weight
matrix), one output channel of a convolution (its bias included), or one dimension of an
embedding.

Normalisation: a BatchNorm directly after a layer is attached to it
(:meth:`BayesianLayer.attach_norm`, done by :func:`~pyrocompress.bayesianize`). A gate in
front of a BatchNorm would be undone by it — the normalisation divides a channel by its
own scale — so a layer with groups on its outputs applies its gate *after* the norm:
:math:`y_c = g_c\,\mathrm{BN}_c(a_c)`. The norm's affine parameters and running
statistics are point estimates (trained by maximum likelihood along with the variational
parameters); under the local reparametrisation the norm sees the sampled pre-activations,
in training mode its batch statistics, in evaluation mode its running ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

import torch
import torch.nn.functional as F
from pyro.distributions import Distribution
from pyro.nn import PyroModule
from torch import nn

from pyrocompress.effects import (
    PointWeights,
    example_noise,
    guide_distributions,
    point_weights,
)
from pyrocompress.nn.rules import batchnorm_affine, weight_flops
from pyrocompress.priors import Gate, LayerSpec, Prior
from pyrocompress.priors.base import base_distribution, product_moments
from pyrocompress.priors.conditional import GateConditionalNormal, effective_factor

if TYPE_CHECKING:
    from pyrocompress.priors import LayerGuide

__all__ = [
    "BayesianConv1d",
    "BayesianConv2d",
    "BayesianEmbedding",
    "BayesianLayer",
    "BayesianLinear",
    "Moments",
    "product_moments",
]

_MIN_VAR = 1e-16

#: A mean and a variance of the same shape.
Moments = tuple[torch.Tensor, torch.Tensor]


class BayesianLayer(PyroModule):
    """Common part of :class:`BayesianLinear` and :class:`BayesianConv2d`.

    Subclasses give the deterministic operation (:meth:`_op`) and the shape facts in
    their :class:`~pyrocompress.priors.LayerSpec`; everything else is shared.
    """

    spec: LayerSpec
    prior: Prior
    #: The axis of the layer's input that its weight's second dimension indexes (the
    #: last one for Linear, channels for Conv2d); pruning slices inputs along it.
    input_axis: int = -1
    #: The axis of the layer's output that its weight's first dimension indexes.
    output_axis: int = -1

    #: The normalisation after the layer
    #: (:meth:`~pyrocompress.nn.BayesianLayer.attach_norm`), or ``None``.
    norm: nn.Module | None
    #: Where the norm was in the user's module tree (export puts it back there).
    norm_path: str | None

    def __init__(self, spec: LayerSpec, prior: Prior):
        super().__init__()
        self.spec = spec
        self.prior = prior
        self.norm = None
        self.norm_path = None
        # fixed pruning of groups (BayesianNetwork.restrict): 1 kept, 0 removed; not saved
        self.register_buffer("group_mask", None, persistent=False)

    def attach_norm(self, norm: nn.Module, path: str) -> None:
        """Make ``norm`` (a BatchNorm over the layer's outputs) part of the layer.

        The layer then computes ``norm(op(x))``, with its output gate (if its groups are
        its outputs) after the norm (module docstring). ``path`` is where the norm was in
        the user's module tree (:func:`~pyrocompress.bayesianize` puts an ``nn.Identity``
        there; export puts the norm back).

        Parameters
        ----------
        norm
            A ``BatchNorm1d`` / ``BatchNorm2d`` with as many features as the layer has
            outputs.
        path
            Its path in the module tree.

        Raises
        ------
        ValueError
            If the norm's number of features is not the layer's number of outputs.
        """
        features = getattr(norm, "num_features", None)
        if features != self.spec.weight_shape[0]:
            raise ValueError(
                f"the norm at {path!r} has {features} features; layer {self.spec.name!r} "
                f"has {self.spec.weight_shape[0]} outputs"
            )
        self.norm = norm
        self.norm_path = path

    @property
    def gate_after_norm(self) -> bool:
        """Whether the output gate multiplies the norm's output (groups on outputs, a norm)."""
        return self.norm is not None and self.spec.bias_gated

    def norm_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Return the evaluation-mode norm as a per-channel affine map :math:`(a, b)`.

        :math:`a = \gamma / \sqrt{\hat\sigma^2 + \epsilon}`, :math:`b = \beta - a\hat\mu`
        (running statistics), so that the norm is :math:`y = a x + b` per channel.
        """
        if self.norm is None:
            raise ValueError(f"layer {self.spec.name!r} has no norm")
        return batchnorm_affine(self.norm)

    def _channel_view(self, t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Reshape per-channel ``t`` (``[C]`` or ``[batch, C]``) to broadcast over ``out``."""
        lead = t.shape[:-1] if t.dim() > 1 else (1,)
        return t.reshape(*lead, t.shape[-1], *([1] * (out.dim() - 2)))

    def _normalise(self, out: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        """Apply the norm (if any), then the per-channel or per-example ``scale`` (if any)."""
        if self.norm is not None:
            out = self.norm(out)
        return out if scale is None else out * self._channel_view(scale, out)

    def _op(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Apply the deterministic layer with the given weight and bias."""
        raise NotImplementedError

    # ----------------------------------------------------------------- fixed pruning
    def mask_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with the inputs of removed groups zeroed (groups on the input side)."""
        mask = self.group_mask
        return x if mask is None or self.spec.bias_gated else x * self.spec.expand_inputs(mask)

    def mask_output(self, out: torch.Tensor) -> torch.Tensor:
        """``out`` with the outputs of removed groups zeroed (groups on the output side)."""
        mask = self.group_mask
        if mask is None or not self.spec.bias_gated:
            return out
        return out * mask.reshape(-1, *([1] * (out.dim() - 2)))

    # ------------------------------------------------------------------ the protocol
    def output_moments(
        self,
        mean: torch.Tensor,
        var: torch.Tensor | None,
        weight: Moments,
        bias: Moments | None,
        gate: Gate = None,
        *,
        norm: bool = True,
    ) -> Moments:
        r"""Return the mean and variance of the layer's output given moments of its input.

        For independent inputs :math:`(m, v)`, weights :math:`(M, S)` and bias
        :math:`(m_b, s_b)`: :math:`E a = M m + m_b` and
        :math:`\mathrm{Var}\,a = (M^2 + S)v + S m^2 + s_b` :cite:p:`wu2019deterministic{eq. 9}`;
        ``var=None`` means a deterministic input (:math:`v = 0`, the local
        reparametrisation of :cite:t:`kingma2015variational`). ``gate`` is ``None``, the
        moments ``(E g, E g^2)`` of each group's gate (combined with the weights by
        :func:`product_moments`), or per-example draws ``[batch, groups]``. Masks of
        :meth:`~pyrocompress.nn.BayesianNetwork.restrict` are the caller's. A norm after
        the layer (:meth:`~pyrocompress.nn.BayesianLayer.attach_norm`) enters as its
        evaluation-mode affine map (:meth:`norm_affine`), before an output gate;
        ``norm=False`` leaves it out (the local reparametrisation samples first and
        normalises the sample).
        """
        spec = self.spec
        if gate is not None and not spec.bias_gated:  # groups are the inputs
            if isinstance(gate, tuple):
                m1, m2 = (spec.expand_groups(t) for t in gate)
                weight = product_moments(m1, m2, *weight)
            else:
                g = spec.expand_inputs(gate)  # [batch, G] -> [batch, in] (column groups)
                g = g.reshape(g.shape[0], *([1] * (mean.dim() - 2)), g.shape[-1])
                mean = mean * g
                var = None if var is None else var * g.square()
        out_mean, out_var = self._affine_moments(mean, var, weight, bias)
        if norm and self.norm is not None:  # evaluation-mode affine map, before the gate
            a, b = self.norm_affine()
            out_mean = self._channel_view(a, out_mean) * out_mean + self._channel_view(b, out_mean)
            out_var = self._channel_view(a.square(), out_var) * out_var
        if gate is not None and spec.bias_gated:  # groups are the outputs, bias included
            trail = [1] * (out_mean.dim() - 2)
            if isinstance(gate, tuple):
                m1, m2 = (t.reshape(-1, *trail) for t in gate)
                return product_moments(m1, m2, out_mean, out_var)
            g = gate.reshape(*gate.shape, *trail)
            return g * out_mean, g * g * out_var
        return out_mean, out_var

    def _affine_moments(
        self, mean: torch.Tensor, var: torch.Tensor | None, weight: Moments, bias: Moments | None
    ) -> Moments:
        w_mean, w_var = weight
        b_mean, b_var = (None, None) if bias is None else bias
        out_mean = self._op(mean, w_mean, b_mean)
        if var is None:
            return out_mean, self._op(mean.square(), w_var, b_var)
        out_var = self._op(var, w_mean.square() + w_var, b_var)
        return out_mean, out_var + self._op(mean.square(), w_var, None)

    def output_covariance(
        self,
        mean: torch.Tensor,
        cov: torch.Tensor | None,
        weight: Moments,
        bias: Moments | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Return the output mean and per-example covariance given the input's.

        Only for layers whose groups are inputs and whose op is a matrix product (Linear):
        :math:`\mathrm{Cov}[a] = M\Sigma M^\top + \mathrm{diag}\big(S(\mathrm{diag}\,
        \Sigma + m^2) + s_b\big)`, exact since a layer's weights are independent of its
        input and of each other. ``cov=None`` is a deterministic input.
        """
        raise TypeError(
            f"full-covariance propagation supports Bayesian Linear layers, not "
            f"{type(self).__name__}; use covariance='diagonal' for convolutional networks"
        )

    def posterior_moments(self, guide: LayerGuide) -> tuple[Moments, Moments | None]:
        """Posterior mean and variance of the non-centred weights and of the bias."""
        weight = guide.weight_moments()
        bias = guide.bias_moments() if self.spec.has_bias else None
        return weight, bias

    # ------------------------------------------------------------------ Pyro program
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the layer's output: point, locally reparametrised, or sampled."""
        return self.mask_output(self._forward(self.mask_input(x)))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        point = point_weights(self)
        if point is not None:
            scale = point[2] if len(point) == 3 else None
            return self._normalise(self._op(x, point[0], point[1]), scale)
        values = self.prior.model(self.spec, x)
        found = guide_distributions([self.spec.site(part) for part in values])
        if found is not None:
            return self._local_forward(x, values, found)
        weight, bias = values["weight"], values.get("bias")
        g = self.prior.gate(self.spec, values)
        if g is not None and self.gate_after_norm:
            return self._normalise(self._op(x, weight, bias), g)
        if g is not None:
            weight = weight * self.spec.expand_groups(g)
            if bias is not None and self.spec.bias_gated:
                bias = bias * g
        return self._normalise(self._op(x, weight, bias), None)

    def _local_forward(self, x: torch.Tensor, values: dict, found: tuple) -> torch.Tensor:
        """Sample the pre-activations (local reparametrisation), then norm and gate them."""
        # every site of the layer has a guide site under the local reparametrisation
        qs: dict[str, Any] = {
            part: base_distribution(cast(Distribution, q))
            for part, q in zip(values, found, strict=True)
        }
        q_w = qs["weight"]
        gate = self.prior.local_gate(self.spec, x.shape[0], qs)
        after = self.gate_after_norm and gate is not None
        if isinstance(q_w, GateConditionalNormal):
            if self.norm is not None:
                raise TypeError(
                    f"layer {self.spec.name!r} has a norm after it: the conditional guide "
                    "is not defined there; use guide='mean-field'"
                )
            mean, var = self._conditional_moments(x, q_w, qs.get("bias"), gate)
        else:
            bias = (qs["bias"].loc, qs["bias"].variance) if self.spec.has_bias else None
            inner = None if after else gate
            mean, var = self.output_moments(
                x, None, (q_w.loc, q_w.variance), bias, inner, norm=False
            )
        noise = example_noise(mean.shape, mean)
        out = torch.addcmul(mean, var.clamp_min(_MIN_VAR).sqrt_(), noise)
        if self.norm is None:
            return out
        if not after or isinstance(gate, torch.Tensor):
            return self._normalise(out, cast(torch.Tensor, gate) if after else None)
        # gate moments (E g, E g^2) of a marginalised gate, after the norm: the normalised
        # value n times the gate has mean E[g] n and variance Var[g] n^2 given n, sampled
        # as a Gaussian as the moments marginalise the gate before a norm
        m1, m2 = cast(tuple[torch.Tensor, torch.Tensor], gate)
        normed = self._normalise(out, None)
        spread = (m2 - m1.square()).clamp_min(0.0).sqrt()
        noise = example_noise(normed.shape, normed)
        return (
            self._channel_view(m1, normed) * normed
            + self._channel_view(spread, normed) * normed.abs() * noise
        )

    def _conditional_moments(
        self, x: torch.Tensor, q_w: GateConditionalNormal, q_b: Any, gate: Gate
    ) -> Moments:
        r"""Return the pre-activation moments given per-example gates, for conditional weights.

        Given the gate, an effective weight is :math:`N(\varphi\mu, \varphi v)` with
        :math:`\varphi = g^2/D(g)` (:mod:`pyrocompress.priors.conditional`), so
        :math:`E a = \sum_j x_j \varphi_j \mu_j` and :math:`\mathrm{Var}\,a = \sum_j
        x_j^2 \varphi_j v_j` for input groups; a gated output channel's mean and variance
        (bias included) are :math:`\varphi` times the ungated ones.
        """
        if not isinstance(gate, torch.Tensor):
            raise TypeError("conditional weights need per-example gate draws")
        phi = effective_factor(gate, q_w.group_coupling)  # [batch, groups]
        mu, v = q_w.loc_at_one, q_w.log_var.exp()
        if not self.spec.bias_gated:  # groups are the inputs
            phi = self.spec.expand_inputs(phi)  # [batch, in] (column groups)
            f = phi.reshape(phi.shape[0], *([1] * (x.dim() - 2)), phi.shape[-1])
            b_m, b_v = (q_b.loc, q_b.variance) if q_b is not None else (None, None)
            return self._op(x * f, mu, b_m), self._op(x.square() * f, v, b_v)
        if q_b is not None:
            b_m, b_v = q_b.loc_at_one, q_b.log_var.exp()
        else:
            b_m, b_v = None, None
        mean, var = self._op(x, mu, b_m), self._op(x.square(), v, b_v)
        f = phi.reshape(*phi.shape, *([1] * (mean.dim() - 2)))
        return f * mean, f * var

    def point_weights(
        self,
        guide: LayerGuide,
        mask: torch.Tensor | None = None,
        *,
        conditional: bool = False,
    ) -> PointWeights:
        r"""Posterior-mean effective weight and bias, optionally with groups masked out.

        ``E[W] = E[g] E[W~]``; for a layer whose gate follows its norm
        (:attr:`gate_after_norm`) the weight and bias are :math:`E[\tilde W]` and a third
        entry is the per-channel scale :math:`E[g]` (masked) of the norm's output. With
        ``conditional=True`` the gate's mean given that the group is kept is used
        (spike-and-slab: the weights of the median-probability model of
        :cite:t:`barbieri2004optimal`).
        """
        w, _ = guide.weight_moments()
        b = guide.bias_moments()[0] if self.spec.has_bias else None
        g = guide.mean_multiplier(conditional=conditional)
        if mask is not None:
            m = mask.to(w.dtype)
            g = m if g is None else g * m
        if self.gate_after_norm:  # the gate scales the norm's output
            return w, b, g
        if g is not None:
            w = w * self.spec.expand_groups(g)
            if b is not None and self.spec.bias_gated:
                b = b * g
        return w, b

    def weight_information(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`\sum_n (\partial \langle\delta_n, f(x_n; W)\rangle / \partial W)^2`.

        The per-example squared gradients of the weights, summed over the examples, for
        output cotangents :math:`\delta_n`: with :math:`\delta_n` the columns of a factor
        of the output's Fisher information
        (:meth:`~pyrocompress.distributions.likelihoods.Likelihood.fisher_factor`,
        back-propagated), the sum over the columns is the diagonal of the Fisher
        (Gauss-Newton) information of the weights. The layer's op is linear in its weight,
        so the gradient does not depend on the weight's value. This generic version maps
        :func:`torch.func.vjp` over the examples in chunks; a layer with a closed form
        overrides it.

        Parameters
        ----------
        x
            The layer's inputs, ``[N, ...]``.
        delta
            Cotangents of its outputs, ``[N, ...]`` (the output's shape).

        Returns
        -------
        Tensor
            Shaped as the weight.
        """
        delta = self._pre_norm_cotangent(delta)
        w0 = x.new_zeros(self.spec.weight_shape)

        def one(xi: torch.Tensor, di: torch.Tensor) -> torch.Tensor:
            vjp = torch.func.vjp(lambda w: self._op(xi.unsqueeze(0), w, None), w0)[1]
            return vjp(di.unsqueeze(0))[0]

        total = torch.zeros_like(w0)
        chunk = max(1, 2**24 // max(w0.numel(), 1))
        for xs, ds in zip(x.split(chunk), delta.split(chunk), strict=True):
            total += torch.func.vmap(one)(xs, ds).square().sum(0)
        return total

    def _pre_norm_cotangent(self, delta: torch.Tensor) -> torch.Tensor:
        r"""Return the cotangent of the layer's op output given that of the layer's output.

        Through the norm's evaluation-mode scale :math:`a` (:meth:`norm_affine`): the
        information is then that of :math:`a\tilde w`, whose prior scale the norm has
        multiplied by :math:`a` (the relevance threshold of the gate is in those units).
        """
        if self.norm is None:
            return delta
        return delta * self._channel_view(self.norm_affine()[0], delta)

    @property
    def groups_on_outputs(self) -> bool:
        """Whether a group is an output unit (Conv2d channels) rather than an input unit."""
        return self.spec.bias_gated

    def to_plain(self, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
        """Return the plain torch layer computing ``_op`` with ``weight`` and ``bias``."""
        raise NotImplementedError

    def flops(self, out_shape: torch.Size) -> int:
        """Return the FLOPs (2 x multiply-adds) of one example's output of ``out_shape``."""
        return weight_flops(self.spec.weight_shape, out_shape)


class BayesianLinear(BayesianLayer):
    """Bayesian counterpart of :class:`torch.nn.Linear`; groups are its input units.

    Examples
    --------
    :func:`~pyrocompress.bayesianize` makes one of each ``nn.Linear``; its weight is
    ``[out, in]`` and its groups are the columns (one per input unit):

    >>> import torch, pyrocompress as pc
    >>> bnn = pc.bayesianize(pc.mlp([4, 3]), "group-nj", seed=0)
    >>> layer = bnn.bayesian_layers()["1"]
    >>> layer
    BayesianLinear(in=4, out=3, prior=GroupNormalJeffreys())
    >>> layer.spec.weight_shape, layer.spec.num_groups
    ((3, 4), 4)
    >>> weight, bias = layer.point_weights(bnn.guide["1"])[:2]  # the posterior means
    >>> plain = layer.to_plain(weight, bias)
    >>> x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(plain(x), bnn.predict_point(x))
    True
    """

    def __init__(self, in_features: int, out_features: int, bias: bool, *, name: str, prior):
        super().__init__(LayerSpec(name, "linear", (out_features, in_features), bias), prior)
        self.in_features = in_features
        self.out_features = out_features

    def _op(self, x, weight, bias):
        return F.linear(x, weight, bias)

    def output_covariance(self, mean, cov, weight, bias):
        """Return the output mean and covariance (see :meth:`BayesianLayer.output_covariance`)."""
        if self.norm is not None:
            raise TypeError(
                f"full-covariance propagation does not support the norm after layer "
                f"{self.spec.name!r}; use covariance='diagonal'"
            )
        w_m, w_v = weight
        b_m, b_v = (None, None) if bias is None else bias
        second = mean.square() if cov is None else mean.square() + cov.diagonal(0, -2, -1)
        noise = second @ w_v.T + (b_v if b_v is not None else 0.0)
        new_cov = torch.diag_embed(noise)
        if cov is not None:
            new_cov = new_cov + w_m @ cov @ w_m.T
        return mean @ w_m.T + (b_m if b_m is not None else 0.0), new_cov

    def weight_information(self, x, delta):
        r"""Return :math:`\sum_n \delta_n^2 (x_n^2)^\top`.

        The per-example gradient of a Linear layer's weight is :math:`\delta_n x_n^\top`.
        """
        if x.dim() != 2:  # a sequence dimension: the per-example gradient sums over it
            return super().weight_information(x, delta)
        return self._pre_norm_cotangent(delta).square().T @ x.square()

    def to_plain(self, weight, bias):
        """Return an ``nn.Linear`` holding ``weight`` and ``bias``."""
        plain = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        return _fill(plain, weight, bias)

    def extra_repr(self) -> str:
        """Return the sizes and the prior, e.g. ``in=784, out=300, prior=...``."""
        return f"in={self.in_features}, out={self.out_features}, prior={self.prior!r}"


class _BayesianConv(BayesianLayer):
    """Common part of the Bayesian convolutions: groups are output channels.

    The gate multiplies the whole output channel, bias included, so a pruned channel
    outputs exactly zero. Grouped and depthwise convolutions (``groups > 1``) compute as
    torch does; their weight is ``[out, in / groups, *kernel]``. A subclass names its
    spec kind, its functional op and its plain module.
    """

    _kind: ClassVar[str]
    _functional: ClassVar[Callable[..., torch.Tensor]]
    _plain: ClassVar[type[nn.Module]]

    input_axis = 1
    output_axis = 1

    def __init__(self, conv: nn.Module, *, name: str, prior):
        conv = cast(nn.modules.conv._ConvNd, conv)
        shape = tuple(conv.weight.shape)
        super().__init__(LayerSpec(name, self._kind, shape, conv.bias is not None), prior)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size = conv.kernel_size
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.groups = conv.groups

    def _op(self, x, weight, bias):
        fn = type(self)._functional
        return fn(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def weight_information(self, x, delta):
        r"""Return :math:`\sum_n (D_n U_n^\top)^2` for ungrouped convolutions.

        The per-example gradient of a convolution's weight is the product of the output
        cotangents :math:`D_n` (``[out, positions]``) and the unfolded input patches
        :math:`U_n` (``[in * prod(kernel), positions]``), one batched matrix product for a
        chunk of examples (a 1-d convolution is unfolded as a ``1 x length`` image);
        grouped convolutions and string paddings take the generic path.
        """
        if self.groups != 1 or isinstance(self.padding, str):  # "same": no unfold padding
            return super().weight_information(x, delta)
        delta = self._pre_norm_cotangent(delta)
        shape = self.spec.weight_shape
        lift = 2 - len(self.kernel_size)  # leading unit axes that make the geometry 2-d
        kernel = (1,) * lift + tuple(self.kernel_size)
        dilation = (1,) * lift + tuple(self.dilation)
        padding = (0,) * lift + tuple(cast(tuple[int, ...], self.padding))
        stride = (1,) * lift + tuple(self.stride)
        total = x.new_zeros(shape[0], math.prod(shape[1:]))
        per_example = total.numel() + x[0].numel() * math.prod(shape[2:])
        chunk = max(1, 2**24 // max(per_example, 1))
        for xs, ds in zip(x.split(chunk), delta.split(chunk), strict=True):
            image = xs.reshape(xs.shape[0], xs.shape[1], *([1] * lift), *xs.shape[2:])
            patches = F.unfold(image, kernel, dilation, padding, stride)
            total += torch.bmm(ds.flatten(2), patches.transpose(1, 2)).square().sum(0)
        return total.reshape(shape)

    def to_plain(self, weight, bias):
        """Return the plain convolution holding ``weight`` and ``bias``."""
        plain = type(self)._plain(
            weight.shape[1] * self.groups,
            weight.shape[0],
            bias=bias is not None,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )
        return _fill(plain, weight, bias)

    def extra_repr(self) -> str:
        """Return the channels, kernel size, stride, padding and prior of the layer."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
            + (f", dilation={self.dilation}" if any(d != 1 for d in self.dilation) else "")
            + (f", groups={self.groups}" if self.groups != 1 else "")
            + f", prior={self.prior!r}"
        )


class BayesianConv2d(_BayesianConv):
    """Bayesian counterpart of :class:`torch.nn.Conv2d`; groups are its output channels.

    The gate multiplies the whole output channel, bias included, so a pruned channel
    outputs exactly zero. Grouped and depthwise convolutions (``groups > 1``) compute as
    torch does; their weight is ``[out, in / groups, kh, kw]``.

    Examples
    --------
    :func:`~pyrocompress.bayesianize` makes one of each ``nn.Conv2d``:

    >>> import torch, pyrocompress as pc
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    >>> bnn = pc.bayesianize(net, "group-horseshoe", seed=0)
    >>> conv = bnn.bayesian_layers()["0"]
    >>> conv  # doctest: +NORMALIZE_WHITESPACE
    BayesianConv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0),
                   prior=GroupHorseshoe(scale_global=1e-05))
    >>> conv.spec.weight_shape, conv.spec.num_groups  # one group per output channel
    ((4, 1, 3, 3), 4)
    >>> bnn.predict_point(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 2])
    """

    _kind = "conv2d"
    _functional = F.conv2d
    _plain = nn.Conv2d


class BayesianConv1d(_BayesianConv):
    """Bayesian counterpart of :class:`torch.nn.Conv1d`; groups are its output channels.

    As :class:`BayesianConv2d` along one spatial axis: inputs are ``[batch, channels,
    length]`` and the weight is ``[out, in / groups, k]``.

    Examples
    --------
    :func:`~pyrocompress.bayesianize` makes one of each ``nn.Conv1d`` (here in a
    regression network on sequences of length 10 with 2 channels):

    >>> import torch, pyrocompress as pc
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8, 1))
    >>> bnn = pc.bayesianize(net, "group-nj", likelihood="gaussian", seed=0)
    >>> conv = bnn.bayesian_layers()["0"]
    >>> type(conv).__name__, conv.spec.weight_shape, conv.spec.num_groups
    ('BayesianConv1d', (3, 2, 3), 3)
    >>> bnn.predict_point(torch.zeros(5, 2, 10)).shape
    torch.Size([5, 1])
    """

    _kind = "conv1d"
    _functional = F.conv1d
    _plain = nn.Conv1d


def _fill(plain: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """Copy ``weight`` (and ``bias``, if the module has one) into a plain module."""
    with torch.no_grad():
        cast(torch.Tensor, plain.weight).copy_(weight)
        if bias is not None and getattr(plain, "bias", None) is not None:
            cast(torch.Tensor, plain.bias).copy_(bias)
    return plain


class BayesianEmbedding(BayesianLayer):
    r"""Bayesian counterpart of :class:`torch.nn.Embedding`; groups are its dimensions.

    Group :math:`j` is embedding dimension :math:`j` of every vector: its gate multiplies
    output feature :math:`j` whatever the index looked up, so a pruned dimension outputs
    exactly zero and is removed from the table. The weight is held output-first, as every
    layer's (:class:`~pyrocompress.priors.LayerSpec`): ``[embedding_dim, num_embeddings]``,
    the transpose of torch's table; :meth:`to_plain` transposes it back.

    The input holds indices, integer or floating (the training loop hands data over as
    floats; a float index must be a whole number). The outputs are the looked-up columns,
    ``[*input.shape, embedding_dim]``: their groups are on the *last* axis
    (:attr:`output_axis`). With a deterministic input the lookup's moments are exact: the
    output's mean and variance are the looked-up entries' (:meth:`output_moments`). Under
    the local reparametrisation :cite:p:`kingma2015variational` each position of an
    example draws its own noise, so an index repeated within one example is treated as
    two independent draws of its row — the same approximation the local reparametrisation
    makes for a convolution's positions.

    ``padding_idx`` is kept: its row is zero, in every mode, and at export. ``max_norm``
    (renormalising rows in place at lookup) is refused at conversion.

    Examples
    --------
    :func:`~pyrocompress.bayesianize` makes one of each ``nn.Embedding`` (here a table of
    10 tokens in 4 dimensions, read by sequences of 3 tokens):

    >>> import torch, pyrocompress as pc
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(3 * 4, 2))
    >>> bnn = pc.bayesianize(net, "group-nj", seed=0)
    >>> table = bnn.bayesian_layers()["0"]
    >>> type(table).__name__, table.spec.weight_shape, table.spec.num_groups
    ('BayesianEmbedding', (4, 10), 4)
    >>> tokens = torch.tensor([[1, 2, 3], [4, 5, 6]])
    >>> bnn.predict_point(tokens).shape
    torch.Size([2, 2])
    """

    input_axis = -1
    output_axis = -1

    def __init__(self, embedding: nn.Embedding, *, name: str, prior):
        num, dim = embedding.num_embeddings, embedding.embedding_dim
        super().__init__(LayerSpec(name, "embedding", (dim, num), False), prior)
        self.num_embeddings, self.embedding_dim = num, dim
        self.padding_idx = embedding.padding_idx
        self.scale_grad_by_freq = embedding.scale_grad_by_freq
        self.sparse = embedding.sparse

    def attach_norm(self, norm: nn.Module, path: str) -> None:
        """Refuse a norm: an embedding's groups are its last axis, a BatchNorm's its second."""
        raise TypeError(
            f"the norm at {path!r} follows the Embedding {self.spec.name!r}: a BatchNorm "
            "normalises axis 1 and an embedding's dimensions are its last axis; put another "
            "layer between them"
        )

    def _indices(self, x: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """Return ``x`` as a long index tensor; ``check``: float indices must be whole."""
        if not x.is_floating_point():
            return x.long()
        idx = x.round().long()
        if check and not torch.equal(idx.to(x.dtype), x):
            raise ValueError(
                f"layer {self.spec.name!r} (an Embedding) reads indices; its input has "
                "non-integer values. Pass the token indices (integers, or floats that are "
                "whole numbers)"
            )
        return idx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the looked-up vectors (point, locally reparametrised, or sampled)."""
        self._indices(x)  # the boundary: refuse non-integer indices
        return super().forward(x)

    def _lookup(self, idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Return the columns of ``table`` (``[dim, num]``) at ``idx``; the padding row is 0."""
        out = F.embedding(idx, table.T)
        if self.padding_idx is None:
            return out
        return out * (idx != self.padding_idx).unsqueeze(-1).to(out.dtype)

    def _op(self, x, weight, bias):  # checked in forward (vmap cannot check)
        out = self._lookup(self._indices(x, check=False), weight)
        return out if bias is None else out + bias

    def _last_axis(self, t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Reshape per-dimension ``t`` (``[D]`` or ``[batch, D]``) to broadcast over ``out``."""
        if t.dim() == 1:
            return t
        return t.reshape(t.shape[0], *([1] * (out.dim() - 2)), t.shape[-1])

    def mask_output(self, out: torch.Tensor) -> torch.Tensor:
        """``out`` with the removed dimensions zeroed (they are its last axis)."""
        mask = self.group_mask
        return out if mask is None else out * mask.to(out.dtype)

    def output_moments(self, mean, var, weight, bias, gate=None, *, norm=True):
        r"""Return the mean and variance of the looked-up vectors, times the gate.

        The input is deterministic (indices): the output's moments are the looked-up
        entries' :math:`(M_{j,i}, S_{j,i})`, exact; a gate's moments combine with them by
        :func:`product_moments`, per-example gate draws scale them (their square the
        variance). ``norm`` is ignored (an embedding has no norm).

        Raises
        ------
        ValueError
            If the input has a non-zero variance (an embedding must read the data).
        """
        if var is not None and bool(var.ne(0).any()):
            raise ValueError(
                f"layer {self.spec.name!r} (an Embedding) reads indices, which are not "
                "random; it must read the network's input"
            )
        idx = self._indices(mean)
        out_mean, out_var = (self._lookup(idx, t) for t in weight)
        if bias is not None:
            out_mean, out_var = out_mean + bias[0], out_var + bias[1]
        if gate is None:
            return out_mean, out_var
        if isinstance(gate, tuple):
            return product_moments(gate[0], gate[1], out_mean, out_var)
        g = self._last_axis(gate, out_mean)
        return g * out_mean, g * g * out_var

    def _conditional_moments(self, x, q_w, q_b, gate):
        r"""Return the looked-up moments given per-example gates, for conditional weights.

        The effective weight of dimension :math:`j` is :math:`N(\varphi_j\mu, \varphi_j v)`
        (:meth:`BayesianLayer._conditional_moments`), looked up.
        """
        if not isinstance(gate, torch.Tensor):
            raise TypeError("conditional weights need per-example gate draws")
        phi = effective_factor(gate, q_w.group_coupling)  # [batch, D]
        idx = self._indices(x)
        mean = self._lookup(idx, q_w.loc_at_one)
        var = self._lookup(idx, q_w.log_var.exp())
        f = self._last_axis(phi, mean)
        return f * mean, f * var

    def weight_information(self, x, delta):
        r"""Return :math:`\sum_n G_n^2`, :math:`G_n[j, i] = \sum_{l: x_{nl} = i} \delta_{nlj}`.

        The per-example gradient of a lookup scatters the output cotangents of the
        positions reading index :math:`i` into column :math:`i`: the cotangents are summed
        per distinct (example, index) pair, squared and added up per index — memory of the
        order of the cotangents, whatever the vocabulary. The padding column has none.
        """
        idx = self._indices(x)
        dim, num = self.spec.weight_shape
        n = idx.shape[0]
        example = torch.arange(n, device=idx.device).reshape(n, *[1] * (idx.dim() - 1))
        pairs, which = torch.unique((example * num + idx).reshape(-1), return_inverse=True)
        sums = delta.new_zeros(len(pairs), dim).index_add_(0, which, delta.reshape(-1, dim))
        total = delta.new_zeros(num, dim).index_add_(0, pairs % num, sums.square())
        if self.padding_idx is not None:
            total[self.padding_idx] = 0.0
        return total.T.contiguous()

    def flops(self, out_shape: torch.Size) -> int:
        """Return 0: a lookup multiplies nothing."""
        return 0

    def to_plain(self, weight, bias):
        """Return an ``nn.Embedding`` whose table is ``weight`` transposed (padding row 0)."""
        if bias is not None:
            raise ValueError("an Embedding has no bias")
        table = weight.T.clone()
        if self.padding_idx is not None:
            table[self.padding_idx] = 0.0
        plain = nn.Embedding(
            weight.shape[1],
            weight.shape[0],
            padding_idx=self.padding_idx,
            scale_grad_by_freq=self.scale_grad_by_freq,
            sparse=self.sparse,
        )
        return _fill(plain, table, None)

    def extra_repr(self) -> str:
        """Return the table's size, the padding index and the prior."""
        padding = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}, prior={self.prior!r}"
