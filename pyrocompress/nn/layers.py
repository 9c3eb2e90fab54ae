r"""Bayesian layers: Pyro programs for the weights of one Linear or Conv2d layer.

A layer's ``forward(x)`` samples its sites from its prior (or, under SVI, takes them
from the guide) and returns its output. What the context asks of it comes through the
effects of :mod:`pyrocompress.effects`: under a point estimate it computes with the
posterior-mean weights; under the local reparametrisation (Kingma, Salimans & Welling
2015) it samples its pre-activations instead, with per-example group gates.

Every way of computing a layer on input moments goes through one protocol,
:meth:`BayesianLayer.output_moments`: the local reparametrisation calls it with
deterministic inputs (``var=None``) and samples; moment propagation, unit scores and
predictive moments call it with propagated variances. The product moments of a gate and
a weight are written once, in :func:`product_moments`.

Groups: the weights leaving one input unit of a Linear layer (a column of its weight
matrix), or one output channel of a Conv2d (its bias included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from pyro.distributions import Distribution
from pyro.nn import PyroModule
from torch import nn

from pyrocompress.effects import example_noise, guide_distributions, point_weights
from pyrocompress.nn.rules import weight_flops
from pyrocompress.priors import Gate, LayerSpec, Prior
from pyrocompress.priors.base import base_distribution, product_moments
from pyrocompress.priors.conditional import GateConditionalNormal, effective_factor

if TYPE_CHECKING:
    from pyrocompress.priors import LayerGuide

__all__ = [
    "BayesianConv2d",
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

    def __init__(self, spec: LayerSpec, prior: Prior):
        super().__init__()
        self.spec = spec
        self.prior = prior
        # fixed pruning of groups (BayesianNetwork.restrict): 1 kept, 0 removed; not saved
        self.register_buffer("group_mask", None, persistent=False)

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
    ) -> Moments:
        r"""Return the mean and variance of the layer's output given moments of its input.

        For independent inputs :math:`(m, v)`, weights :math:`(M, S)` and bias
        :math:`(m_b, s_b)`: :math:`E a = M m + m_b` and
        :math:`\mathrm{Var}\,a = (M^2 + S)v + S m^2 + s_b` (Wu et al. 2019, eq. 9);
        ``var=None`` means a deterministic input (:math:`v = 0`, the local
        reparametrisation of Kingma, Salimans & Welling 2015). ``gate`` is ``None``, the
        moments ``(E g, E g^2)`` of each group's gate (combined with the weights by
        :func:`product_moments`), or per-example draws ``[batch, groups]``. Masks of
        :meth:`~pyrocompress.nn.BayesianNetwork.restrict` are the caller's.
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
            return self._op(x, *point)
        values = self.prior.model(self.spec, x)
        found = guide_distributions([self.spec.site(part) for part in values])
        if found is not None:
            # every site of the layer has a guide site under the local reparametrisation
            qs: dict[str, Any] = {
                part: base_distribution(cast(Distribution, q))
                for part, q in zip(values, found, strict=True)
            }
            q_w = qs["weight"]
            gate = self.prior.local_gate(self.spec, x.shape[0], qs)
            if isinstance(q_w, GateConditionalNormal):
                mean, var = self._conditional_moments(x, q_w, qs.get("bias"), gate)
            else:
                bias = (qs["bias"].loc, qs["bias"].variance) if self.spec.has_bias else None
                mean, var = self.output_moments(x, None, (q_w.loc, q_w.variance), bias, gate)
            noise = example_noise(mean.shape, mean)
            return torch.addcmul(mean, var.clamp_min(_MIN_VAR).sqrt_(), noise)
        weight, bias = values["weight"], values.get("bias")
        g = self.prior.gate(self.spec, values)
        if g is not None:
            weight = weight * self.spec.expand_groups(g)
            if bias is not None and self.spec.bias_gated:
                bias = bias * g
        return self._op(x, weight, bias)

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
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Posterior-mean effective weight and bias, optionally with groups masked out.

        ``E[W] = E[g] E[W~]``. With ``conditional=True`` the gate's mean given that the
        group is kept is used (spike-and-slab: the weights of the median-probability
        model, Barbieri & Berger 2004).
        """
        w, _ = guide.weight_moments()
        b = guide.bias_moments()[0] if self.spec.has_bias else None
        g = guide.mean_multiplier(conditional=conditional)
        if mask is not None:
            m = mask.to(w.dtype)
            g = m if g is None else g * m
        if g is not None:
            w = w * self.spec.expand_groups(g)
            if b is not None and self.spec.bias_gated:
                b = b * g
        return w, b

    def weight_information(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`\sum_n (\partial \langle\delta_n, f(x_n; W)\rangle / \partial W)^2`.

        The per-example squared gradients of the weights, summed over the examples, for
        output cotangents :math:`\delta_n`: with :math:`\delta_n` the columns of a factor
        of the output's Fisher information (:meth:`Likelihood.fisher_factor`,
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
        w0 = x.new_zeros(self.spec.weight_shape)

        def one(xi: torch.Tensor, di: torch.Tensor) -> torch.Tensor:
            vjp = torch.func.vjp(lambda w: self._op(xi.unsqueeze(0), w, None), w0)[1]
            return vjp(di.unsqueeze(0))[0]

        total = torch.zeros_like(w0)
        chunk = max(1, 2**24 // max(w0.numel(), 1))
        for xs, ds in zip(x.split(chunk), delta.split(chunk), strict=True):
            total += torch.func.vmap(one)(xs, ds).square().sum(0)
        return total

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
    """Bayesian counterpart of :class:`torch.nn.Linear`; groups are its input units."""

    def __init__(self, in_features: int, out_features: int, bias: bool, *, name: str, prior):
        super().__init__(LayerSpec(name, "linear", (out_features, in_features), bias), prior)
        self.in_features = in_features
        self.out_features = out_features

    def _op(self, x, weight, bias):
        return F.linear(x, weight, bias)

    def output_covariance(self, mean, cov, weight, bias):
        """Return the output mean and covariance (see :meth:`BayesianLayer.output_covariance`)."""
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
        return delta.square().T @ x.square()

    def to_plain(self, weight, bias):
        """Return an ``nn.Linear`` holding ``weight`` and ``bias``."""
        plain = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        return _filled(plain, weight, bias)

    def extra_repr(self) -> str:
        """Return the sizes and the prior, e.g. ``in=784, out=300, prior=...``."""
        return f"in={self.in_features}, out={self.out_features}, prior={self.prior!r}"


class BayesianConv2d(BayesianLayer):
    """Bayesian counterpart of :class:`torch.nn.Conv2d`; groups are its output channels.

    The gate multiplies the whole output channel, bias included, so a pruned channel
    outputs exactly zero.
    """

    def __init__(self, conv: nn.Conv2d, *, name: str, prior):
        shape = tuple(conv.weight.shape)
        super().__init__(LayerSpec(name, "conv2d", shape, conv.bias is not None), prior)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size = conv.kernel_size
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation

    input_axis = 1
    output_axis = 1

    def _op(self, x, weight, bias):
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)

    def to_plain(self, weight, bias):
        """Return an ``nn.Conv2d`` holding ``weight`` and ``bias``."""
        geometry: dict[str, Any] = {
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
        }
        plain = nn.Conv2d(weight.shape[1], weight.shape[0], bias=bias is not None, **geometry)
        return _filled(plain, weight, bias)

    def extra_repr(self) -> str:
        """Return the channels, kernel size, stride, padding and prior of the layer."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, prior={self.prior!r}"
        )


def _filled(
    plain: nn.Linear | nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None
) -> nn.Module:
    with torch.no_grad():
        plain.weight.copy_(weight)
        if bias is not None and plain.bias is not None:
            plain.bias.copy_(bias)
    return plain
