r"""Distributions that pyrocompress adds, with their analytic KL divergences.

Every KL here is registered with :func:`torch.distributions.kl.register_kl`, which is
the extension point Pyro's :class:`~pyro.infer.TraceMeanField_ELBO` dispatches through;
nothing in torch or Pyro is patched.

Registered pairs
----------------
``KL(Normal || LogUniform)``
    :cite:t:`molchanov2017variational{eq. 14}`, as used by :cite:t:`louizos2017bayesian{§3.1}` for
    the group normal-Jeffreys scale.
``KL(LogNormal || Gamma)`` and ``KL(LogNormal || InverseGamma)``
    Closed forms used by the group horseshoe of :cite:t:`louizos2017bayesian{§3.2}`, where each
    half-Cauchy scale is written as the square root of a Gamma times an inverse-Gamma
    variable.
``KL(LogVarNormal || Normal)`` and ``KL(FactorisedLogVarNormal || Independent)``
    The Gaussian KL from a guide factor stored as mean and log-variance, without the
    detour through the standard deviation; for a whole weight tensor against an isotropic
    prior, from three sums (the fast path of a training step).
``KL(MarginalizedBernoulli || Bernoulli)``
    Inherited from torch's Bernoulli–Bernoulli KL (spike-and-slab inclusion gates).
``KL(ConditionalSlab || Normal)``
    The expected conditional KL :math:`\pi\,\mathrm{KL}(N(\mu, \sigma^2) \,\|\, p)` of the
    slab weights under the structured spike-and-slab family :cite:p:`titsias2011spike`;
    :cite:p:`bai2020efficient{eq. 5}`.
"""

from __future__ import annotations

import math
from typing import cast, override

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from pyro.distributions.util import sum_rightmost
from torch.distributions import Distribution, constraints
from torch.distributions.kl import kl_divergence, register_kl
from torch.distributions.utils import broadcast_all, lazy_property

__all__ = [
    "K1",
    "K2",
    "K3",
    "ConditionalSlab",
    "LogUniform",
    "FactorisedLogVarNormal",
    "IsotropicNormal",
    "LogVarNormal",
    "MarginalizedBernoulli",
    "half_cauchy_scale_parts",
    "neg_kl_log_uniform",
]

#: Constants of the approximation of :cite:t:`molchanov2017variational` (their eq. 14).
K1, K2, K3 = 0.63576, 1.87320, 1.48695

_EULER_GAMMA = 0.5772156649015329
#: ``-E[log|eps|]`` for ``eps ~ N(0, 1)``: the limit of ``0.5 log a - E log|1 + sqrt(a) eps|``
#: as ``a -> inf``; Molchanov et al. fit ``K1`` to the same number.
_LIMIT = 0.5 * (_EULER_GAMMA + math.log(2.0))
#: Normalising constant chosen for the improper log-uniform density so that
#: ``E_q[log q - log p]`` for ``q = N(mu, mu^2 a)`` tends to zero as ``a -> inf``, exactly as the
#: approximation does. With it a sampled ELBO and the analytic one agree.
_LOG_UNIFORM_CONST = -0.5 * math.log(2.0 * math.pi * math.e) - _LIMIT


def _checked_instance[D: Distribution](
    self: Distribution, cls: type[D], instance: Distribution | None
) -> D:
    """Return the instance that ``cls.expand`` fills in (torch's ``_get_checked_instance``).

    It is ``instance`` when a subclass passes one, else a bare instance of ``type(self)``,
    a subclass of ``cls``; torch leaves the method unannotated.
    """
    return cast(D, self._get_checked_instance(cls, instance))


def neg_kl_log_uniform(log_alpha: torch.Tensor) -> torch.Tensor:
    r"""Return :cite:t:`molchanov2017variational`'s approximation of :math:`-\mathrm{KL}(q\,\|\,p)`.

    For :math:`q(z) = N(\mu, \mu^2\alpha)` and the log-uniform :math:`p(z) \propto 1/|z|`,

    .. math::

        -\mathrm{KL} \approx k_1\,\sigma(k_2 + k_3 \log\alpha)
        - \tfrac12 \log(1 + \alpha^{-1}) - k_1,

    with :math:`k_1 = 0.63576, k_2 = 1.87320, k_3 = 1.48695`
    :cite:p:`molchanov2017variational{eq. 14}`; :cite:p:`louizos2017bayesian{eq. 10}`. The value
    depends on ``log_alpha`` only.

    Parameters
    ----------
    log_alpha
        :math:`\log\alpha`, elementwise.

    Returns
    -------
    Tensor
        The approximate negative KL, elementwise (the shape of ``log_alpha``).
    """
    return (
        K1 * torch.sigmoid(K2 + K3 * log_alpha)
        - 0.5 * torch.nn.functional.softplus(-log_alpha)
        - K1
    )


class LogUniform(TorchDistribution):
    r"""The improper scale-invariant (log-uniform, normal-Jeffreys) density on the real line.

    .. math:: p(z) \propto |z|^{-1}

    It is the hyper-prior of the group normal-Jeffreys prior
    :cite:p:`louizos2017bayesian{§3.1, eq. 8}`. Being improper it cannot be sampled; it only scores
    values (``log_prob``) and acts as the model side of the registered KL. The arbitrary normalising
    constant is fixed so that ``E_q[log q(z) - log p(z)]`` for ``q = N(mu, mu^2 alpha)`` tends to
    zero as ``alpha -> inf``, the convention of the :cite:t:`molchanov2017variational`
    approximation.

    Parameters
    ----------
    batch_shape
        Batch shape of the density.
    validate_args
        As for every torch distribution.
    """

    arg_constraints: dict = {}
    support: constraints.Constraint = constraints.real
    has_rsample = False

    def __init__(self, batch_shape: torch.Size | tuple = (), validate_args=None):
        super().__init__(torch.Size(batch_shape), validate_args=validate_args)

    @override
    def expand(self, batch_shape, _instance=None):
        new = _checked_instance(self, LogUniform, _instance)
        TorchDistribution.__init__(new, torch.Size(batch_shape), validate_args=False)
        return new

    @override
    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = -value.abs().log() + _LOG_UNIFORM_CONST
        return lp.expand(torch.broadcast_shapes(lp.shape, self.batch_shape + self.event_shape))

    @override
    def sample(self, sample_shape=()):
        raise NotImplementedError(
            "LogUniform is an improper prior and cannot be sampled; "
            "draw the group scales from the guide (the variational posterior) instead."
        )


class LogVarNormal(dist.Normal):
    r"""A Normal parametrised by its mean and log-variance, :math:`N(\mu, e^{v})`.

    Variational factors are stored as ``(loc, log_var)``; this class keeps that
    parametrisation so that the quantities a training step needs are computed once, from
    ``log_var`` directly: :attr:`variance` :math:`= e^{v}` (what the locally reparametrised
    layers use) and :attr:`scale` :math:`= e^{v/2}` are lazy and cached on the instance,
    and the registered KL to a Normal prior reads ``log_var`` instead of taking the log of
    a standard deviation. It samples and scores exactly as :class:`~pyro.distributions.Normal`.

    ``to_event`` returns a :class:`FactorisedLogVarNormal`, whose KL to a factorised
    Normal prior with one mean and one scale is computed from three sums (see there).

    Parameters
    ----------
    loc, log_var
        :math:`\mu` and :math:`v = \log\sigma^2`, broadcast against each other.
    validate_args
        As for every torch distribution.
    """

    arg_constraints = {"loc": constraints.real, "log_var": constraints.real}
    loc: torch.Tensor
    log_var: torch.Tensor

    def __init__(
        self,
        loc: torch.Tensor | float,
        log_var: torch.Tensor | float,
        validate_args: bool | None = None,
    ):
        if isinstance(loc, torch.Tensor) and isinstance(log_var, torch.Tensor):
            if loc.shape == log_var.shape:
                self.loc, self.log_var = loc, log_var
            else:
                self.loc, self.log_var = torch.broadcast_tensors(loc, log_var)
        else:
            self.loc, self.log_var = broadcast_all(loc, log_var)
        # Normal.__init__ would set a standard deviation; ours is derived lazily
        TorchDistribution.__init__(self, self.loc.shape, validate_args=validate_args)

    @lazy_property
    def variance(self) -> torch.Tensor:
        """The variance :math:`e^{v}`, computed once per instance."""
        return self.log_var.exp()

    @lazy_property
    def scale(self) -> torch.Tensor:
        """The standard deviation :math:`e^{v/2}`, computed once per instance."""
        return (0.5 * self.log_var).exp()

    @override
    def expand(self, batch_shape, _instance=None):
        new = _checked_instance(self, LogVarNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.log_var = self.log_var.expand(batch_shape)
        TorchDistribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @override
    def to_event(self, reinterpreted_batch_ndims=None):
        if reinterpreted_batch_ndims is None:
            reinterpreted_batch_ndims = len(self.batch_shape)
        if reinterpreted_batch_ndims <= 0:
            return super().to_event(reinterpreted_batch_ndims)
        return FactorisedLogVarNormal(self, reinterpreted_batch_ndims)


class FactorisedLogVarNormal(dist.Independent):
    r"""A :class:`LogVarNormal` whose rightmost batch dimensions are one event.

    It is ``LogVarNormal(...).to_event(n)``: the mean-field factor of a whole weight
    tensor. Its KL to a prior ``Normal(m, s).expand(shape).to_event(n)`` (one mean and one
    scale broadcast over the tensor, as every prior here has) is the sum

    .. math::
        \mathrm{KL} = \frac{1}{2}\Big[\frac{\sum_i e^{v_i} + \lVert \mu - m \rVert^2}{s^2}
        - \sum_i v_i\Big] + n\big(\log s - \tfrac12\big),

    computed from three reductions, with no elementwise KL tensor and so a third of the
    passes over the weights (forward and backward) that the generic Normal–Normal KL
    takes. Other priors get the elementwise KL, summed.
    """

    @override
    def expand(self, batch_shape, _instance=None):
        new = _checked_instance(self, FactorisedLogVarNormal, _instance)
        return super().expand(batch_shape, _instance=new)


class IsotropicNormal(dist.Normal):
    r""":math:`N(m, s^2)` on every element of a tensor, with :math:`m` and :math:`s` numbers.

    The prior of a layer's weights (``IsotropicNormal(0, s, shape).to_event(n)``). It is a
    :class:`~pyro.distributions.Normal` in every respect; keeping :math:`m` and :math:`s` as
    Python numbers lets the KL from a :class:`FactorisedLogVarNormal` use them without
    tensor arithmetic on broadcast copies.

    Parameters
    ----------
    loc, scale
        :math:`m` and :math:`s > 0`.
    shape
        Batch shape.
    like
        Tensor whose dtype and device the parameters take (default: float32 on the CPU).
    """

    def __init__(self, loc: float, scale: float, shape=(), *, like: torch.Tensor | None = None):
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        self.loc_value, self.scale_value = float(loc), float(scale)
        like = torch.zeros(()) if like is None else like
        shape = torch.Size(shape)
        super().__init__(
            like.new_tensor(self.loc_value).expand(shape),
            like.new_tensor(self.scale_value).expand(shape),
            validate_args=False,
        )

    @override
    def expand(self, batch_shape, _instance=None):
        new = _checked_instance(self, IsotropicNormal, _instance)
        new.loc_value, new.scale_value = self.loc_value, self.scale_value
        return super().expand(batch_shape, _instance=new)


def _repeated_value(t: torch.Tensor) -> torch.Tensor | None:
    """Return the single value of ``t`` as a 0-dim tensor if ``t`` is one value broadcast.

    That is, all strides are 0, as in ``Normal(0, s).expand(shape)``; else ``None``.
    """
    if t.dim() == 0:
        return t
    if not any(t.stride()):
        return t.as_strided((), ())
    return None


def _kl_log_var_normal(q: LogVarNormal, p: dist.Normal) -> torch.Tensor:
    r"""Elementwise :math:`\tfrac12\big[(e^{v} + (\mu - m)^2)/s^2 - 1 - v\big] + \log s`."""
    m = _repeated_value(p.loc)
    s = _repeated_value(p.scale)
    m = p.loc if m is None else m
    s = p.scale if s is None else s
    kl = ((q.variance + (q.loc - m).square()) / s.square() - q.log_var) * 0.5 + (s.log() - 0.5)
    return kl.expand(torch.broadcast_shapes(kl.shape, p.batch_shape))


@register_kl(LogVarNormal, dist.Normal)
def _kl_log_var_normal_normal(q: LogVarNormal, p: dist.Normal) -> torch.Tensor:
    return _kl_log_var_normal(q, p)


class _GaussianKLSum(torch.autograd.Function):
    r"""Sum :math:`\mathrm{KL}(N(\mu, e^{v}) \,\|\, N(m, s^2))` over the event dims, in one node.

    Inputs ``loc``, ``log_var`` and ``var`` :math:`= e^{v}` (the caller's, so that its
    exponential is shared with the locally reparametrised layer), the numbers ``m`` and
    ``s``, and the event ``dims``. Gradients: :math:`\partial/\partial\mu = (\mu - m)/s^2`,
    :math:`\partial/\partial v = -\tfrac12`, :math:`\partial/\partial e^{v} = 1/(2s^2)` per
    element, the last two returned as broadcast views (no pass over the weights).
    """

    @staticmethod
    def forward(ctx, loc, log_var, var, m: float, s: float, dims):
        diff = loc - m if m else loc
        inv_s2 = 1.0 / (s * s)
        size = math.prod(loc.shape[d] for d in dims)
        sq = torch.linalg.vector_norm(diff, dim=dims).square_()
        total = sq.add_(var.sum(dims)).mul_(0.5 * inv_s2).sub_(log_var.sum(dims), alpha=0.5)
        ctx.save_for_backward(diff)
        ctx.dims, ctx.inv_s2 = dims, inv_s2
        return total.add_(size * (math.log(s) - 0.5))

    @staticmethod
    def backward(ctx, grad):
        (diff,) = ctx.saved_tensors
        g = grad if grad.dim() == 0 else grad.reshape(grad.shape + (1,) * len(ctx.dims))
        grad_loc = torch.mul(diff, g * ctx.inv_s2) if ctx.needs_input_grad[0] else None
        grad_log_var = (g * -0.5).expand(diff.shape) if ctx.needs_input_grad[1] else None
        grad_var = (g * (0.5 * ctx.inv_s2)).expand(diff.shape) if ctx.needs_input_grad[2] else None
        return grad_loc, grad_log_var, grad_var, None, None, None


class _LogUniformKLSum(torch.autograd.Function):
    r"""Sum the :cite:t:`molchanov2017variational` KL approximation over the event dims in one node.

    With :math:`\log\alpha = v - \log\mu^2` clamped to :math:`[-30, 30]` (and
    :math:`|\mu| \ge 10^{-16}`), :math:`\mathrm{KL} = -(k_1\sigma(k_2 + k_3\log\alpha) -
    \tfrac12\log(1 + e^{-\log\alpha}) - k_1)` and
    :math:`\partial\mathrm{KL}/\partial\log\alpha = -k_1k_3\sigma(1-\sigma) - \tfrac12
    \sigma(-\log\alpha)`, zero where a clamp is active; :math:`\partial\log\alpha/\partial v
    = 1`, :math:`\partial\log\alpha/\partial\mu = -2/\mu`.
    """

    @staticmethod
    def forward(ctx, loc, log_var, dims):
        sq = loc.square()
        inside = sq > 1e-32
        raw = log_var - sq.clamp_min_(1e-32).log_()
        log_alpha = raw.clamp(-30.0, 30.0)
        sig = torch.sigmoid(log_alpha * K3 + K2)
        e = torch.exp(-log_alpha)  # softplus(-a) = log1p(e), sigmoid(-a) = e / (1 + e)
        kl = torch.log1p(e).mul_(0.5).sub_(sig, alpha=K1).add_(K1)
        # the derivative is cheap to form here, from what the value already needed
        d_alpha = (sig - sig.square()).mul_(-K1 * K3)
        d_alpha.sub_(e.div_(e + 1.0), alpha=0.5).mul_(raw == log_alpha)
        d_loc = torch.where(inside, d_alpha / loc, 0.0).mul_(-2.0)
        ctx.save_for_backward(d_loc, d_alpha)
        ctx.dims = dims
        return kl.sum(dims)

    @staticmethod
    def backward(ctx, grad):
        d_loc, d_log_var = ctx.saved_tensors
        g = grad if grad.dim() == 0 else grad.reshape(grad.shape + (1,) * len(ctx.dims))
        grad_loc = d_loc * g if ctx.needs_input_grad[0] else None
        grad_log_var = d_log_var * g if ctx.needs_input_grad[1] else None
        return grad_loc, grad_log_var, None


@register_kl(FactorisedLogVarNormal, dist.Independent)
def _kl_factorised_log_var_normal(q: FactorisedLogVarNormal, p: dist.Independent) -> torch.Tensor:
    n = q.reinterpreted_batch_ndims
    if p.reinterpreted_batch_ndims != n:  # Pyro's rule for differing event dims
        return kl_divergence(dist.Independent(q.base_dist, n), p)
    qb, pb = q.base_dist, p.base_dist
    dims = tuple(range(-n, 0))
    if type(qb) is LogVarNormal and qb.batch_shape == pb.batch_shape:
        if isinstance(pb, IsotropicNormal):
            args = (qb.loc, qb.log_var, qb.variance, pb.loc_value, pb.scale_value, dims)
            # (torch leaves Function.apply unannotated; forward returns a tensor)
            return cast(torch.Tensor, _GaussianKLSum.apply(*args))
        elif type(pb) is LogUniform:
            return cast(torch.Tensor, _LogUniformKLSum.apply(qb.loc, qb.log_var, dims))
    # (Pyro leaves sum_rightmost unannotated; it returns a tensor for a tensor)
    return cast(torch.Tensor, sum_rightmost(kl_divergence(qb, pb), n))


class MarginalizedBernoulli(dist.Bernoulli):
    r"""A Bernoulli inclusion gate whose gradient comes from analytic marginalisation.

    The spike-and-slab guide samples inclusion gates :math:`\gamma_g \sim
    \mathrm{Bernoulli}(\pi_g)`. pyrocompress never back-propagates through the sampled
    value: during training the layers marginalise :math:`\gamma` exactly in the first two
    moments of the locally reparametrised pre-activations
    :cite:p:`hubin2019combining,kingma2015variational`, so the gradient with respect to :math:`\pi`
    is the gradient of a deterministic function and needs no score-function term. This class
    declares ``has_rsample`` so that Pyro's mean-field ELBO accepts the site; ``rsample`` returns a
    detached draw. The KL to a Bernoulli prior is torch's Bernoulli–Bernoulli KL.

    Use it only with the local reparametrisation estimator (``fit(local_reparam=True)``,
    the default); :func:`pyrocompress.fit` refuses the spike-and-slab prior otherwise.
    """

    has_rsample = True

    def rsample(self, sample_shape=()):
        """Return a detached draw (see the class: the gradient comes from marginalisation)."""
        return self.sample(sample_shape)

    def expand(self, batch_shape, _instance=None):
        """Return the gate expanded to ``batch_shape``.

        As :meth:`torch.distributions.Bernoulli.expand`.
        """
        new = _checked_instance(self, MarginalizedBernoulli, _instance)
        return super().expand(batch_shape, _instance=new)


class ConditionalSlab(LogVarNormal):
    r"""Slab weights of a spike-and-slab group under the structured variational family.

    Spike-and-slab with :math:`w = \gamma_g\tilde w` leaves :math:`\tilde w` unidentified when
    :math:`\gamma_g = 0`: its exact posterior given exclusion is the prior. The structured
    family :math:`q(\gamma, \tilde w) = q(\gamma)\,q(\tilde w \mid \gamma)` with
    :math:`q(\tilde w \mid \gamma = 1) = N(\mu, \sigma^2)` and
    :math:`q(\tilde w \mid \gamma = 0) = p(\tilde w)`
    :cite:p:`titsias2011spike,carbonetto2012scalable` keeps that exact, and its KL is

    .. math::

        \mathrm{KL}(q \,\|\, p) = \mathrm{KL}(q(\gamma) \,\|\, p(\gamma))
        + \pi\,\mathrm{KL}(N(\mu, \sigma^2) \,\|\, p(\tilde w)),

    the form of :cite:t:`bai2020efficient{eq. 5}`, used by :cite:t:`saha2024efficient`. This
    distribution is the :math:`\tilde w` factor: its registered KL to a Normal prior is the
    second term, so the price of a group's slab is paid only in proportion to its
    inclusion probability. A mean-field :math:`q(\tilde w)` would charge it in full
    whatever :math:`\pi` is; switching a group off would then save only the Bernoulli KL,
    and weights fitted to noise early in training keep their group on.

    It samples, and scores, as :math:`N(\mu, \sigma^2)`: a drawn :math:`\tilde w` only
    matters through :math:`\gamma\tilde w`, which is the same under both families.

    Parameters
    ----------
    loc, log_var
        :math:`\mu, \log\sigma^2` of the slab given inclusion.
    inclusion
        :math:`\pi = q(\gamma = 1)`, broadcast against ``loc``.
    validate_args
        As for every torch distribution.
    """

    arg_constraints = {
        "loc": constraints.real,
        "log_var": constraints.real,
        "inclusion": constraints.unit_interval,
    }

    def __init__(self, loc, log_var, inclusion, validate_args=None):
        loc, log_var, inclusion = broadcast_all(loc, log_var, inclusion)
        self.inclusion = inclusion
        super().__init__(loc, log_var, validate_args=validate_args)

    @override
    def expand(self, batch_shape, _instance=None):
        new = _checked_instance(self, ConditionalSlab, _instance)
        new.inclusion = self.inclusion.expand(torch.Size(batch_shape))
        return super().expand(batch_shape, _instance=new)


@register_kl(ConditionalSlab, dist.Normal)
def _kl_conditional_slab_normal(q: ConditionalSlab, p: dist.Normal) -> torch.Tensor:
    return q.inclusion * _kl_log_var_normal(q, p)


@register_kl(dist.Normal, LogUniform)
def _kl_normal_log_uniform(q: dist.Normal, p: LogUniform) -> torch.Tensor:
    log_var = q.log_var if isinstance(q, LogVarNormal) else 2.0 * q.scale.log()
    log_alpha = log_var - 2.0 * q.loc.abs().clamp_min(1e-16).log()
    kl = -neg_kl_log_uniform(log_alpha.clamp(-30.0, 30.0))
    return kl.expand(torch.broadcast_shapes(kl.shape, p.batch_shape))


def _lognormal_moments(q: dist.LogNormal) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mu, sigma = q.loc, q.scale
    neg_entropy = -mu - 0.5 - sigma.log() - 0.5 * math.log(2.0 * math.pi)
    return mu, sigma, neg_entropy


@register_kl(dist.LogNormal, dist.Gamma)
def _kl_lognormal_gamma(q: dist.LogNormal, p: dist.Gamma) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\log N(\mu, \sigma^2) \,\|\, \mathrm{Gamma}(k, \theta))`, rate ``theta``.

    .. math:: -\mu - \tfrac12 - \log\sigma - \tfrac12\log 2\pi - k\log\theta + \log\Gamma(k)
              - (k-1)\mu + \theta e^{\mu + \sigma^2/2}
    """
    mu, sigma, neg_entropy = _lognormal_moments(q)
    k, rate = p.concentration, p.rate
    expected_log_p = (
        k * rate.log() - torch.lgamma(k) + (k - 1.0) * mu - rate * torch.exp(mu + 0.5 * sigma**2)
    )
    return neg_entropy - expected_log_p


@register_kl(dist.LogNormal, dist.InverseGamma)
def _kl_lognormal_inverse_gamma(q: dist.LogNormal, p: dist.InverseGamma) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\log N(\mu, \sigma^2) \,\|\, \mathrm{InvGamma}(k, \beta))`.

    .. math:: -\mu - \tfrac12 - \log\sigma - \tfrac12\log 2\pi - k\log\beta + \log\Gamma(k)
              + (k+1)\mu + \beta e^{-\mu + \sigma^2/2}
    """
    mu, sigma, neg_entropy = _lognormal_moments(q)
    k, rate = p.concentration, p.rate
    expected_log_p = (
        k * rate.log() - torch.lgamma(k) - (k + 1.0) * mu - rate * torch.exp(-mu + 0.5 * sigma**2)
    )
    return neg_entropy - expected_log_p


def half_cauchy_scale_parts(
    scale: float | torch.Tensor,
    shape: torch.Size | tuple = (),
    *,
    like: torch.Tensor | None = None,
) -> tuple[dist.Gamma, dist.InverseGamma]:
    r"""Return the Gamma / inverse-Gamma pair whose product's square root is :math:`C^+(0, b)`.

    If :math:`a \sim \mathrm{Gamma}(\tfrac12, \text{rate } b^{-2})` and
    :math:`\beta \sim \mathrm{InvGamma}(\tfrac12, 1)` then
    :math:`a\beta = b^2 F(1, 1)` and :math:`\sqrt{a\beta} \sim C^+(0, b)`
    :cite:p:`louizos2017bayesian{§3.2}`; :cite:p:`ingraham2017variational`. The tensors take the
    dtype and device of ``like``.

    Parameters
    ----------
    scale
        The half-Cauchy scale :math:`b`.
    shape
        Batch shape of both distributions.
    like
        Tensor whose dtype and device the parameters take (default: float32 on the CPU).

    Returns
    -------
    gamma : Gamma
        :math:`\mathrm{Gamma}(\tfrac12, \text{rate } b^{-2})`.
    inv_gamma : InverseGamma
        :math:`\mathrm{InvGamma}(\tfrac12, 1)`.
    """
    like = torch.zeros(()) if like is None else like
    half = like.new_tensor(0.5)
    rate = like.new_tensor(float(scale)) ** -2
    gamma = cast(dist.Gamma, dist.Gamma(half, rate).expand(shape))
    inv_gamma = cast(dist.InverseGamma, dist.InverseGamma(half, like.new_tensor(1.0)).expand(shape))
    return gamma, inv_gamma
