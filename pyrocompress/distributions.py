r"""Distributions that pyrocompress adds, with their analytic KL divergences.

Every KL here is registered with :func:`torch.distributions.kl.register_kl`, which is
the extension point Pyro's :class:`~pyro.infer.TraceMeanField_ELBO` dispatches through;
nothing in torch or Pyro is patched.

Registered pairs
----------------
``KL(Normal || LogUniform)``
    Molchanov, Ashukha & Vetrov (2017), "Variational Dropout Sparsifies Deep Neural
    Networks", eq. (14), as used by Louizos, Ullrich & Welling (2017), "Bayesian
    Compression for Deep Learning", §3.1, for the group normal-Jeffreys scale.
``KL(LogNormal || Gamma)`` and ``KL(LogNormal || InverseGamma)``
    Closed forms used by the group horseshoe of Louizos et al. (2017), §3.2, where each
    half-Cauchy scale is written as the square root of a Gamma times an inverse-Gamma
    variable.
``KL(MarginalizedBernoulli || Bernoulli)``
    Inherited from torch's Bernoulli–Bernoulli KL (spike-and-slab inclusion gates).
``KL(ConditionalSlab || Normal)``
    The expected conditional KL :math:`\pi\,\mathrm{KL}(N(\mu, \sigma^2) \,\|\, p)` of the
    slab weights under the structured spike-and-slab family (Titsias & Lázaro-Gredilla
    2011; Bai, Song & Cheng 2020, eq. 5).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints
from torch.distributions.kl import kl_divergence, register_kl
from torch.distributions.utils import broadcast_all

__all__ = [
    "K1",
    "K2",
    "K3",
    "ConditionalSlab",
    "LogUniform",
    "MarginalizedBernoulli",
    "half_cauchy_scale_parts",
    "neg_kl_log_uniform",
]

#: Constants of the Molchanov et al. (2017) approximation, eq. (14).
K1, K2, K3 = 0.63576, 1.87320, 1.48695

_EULER_GAMMA = 0.5772156649015329
#: ``-E[log|eps|]`` for ``eps ~ N(0, 1)``: the limit of ``0.5 log a - E log|1 + sqrt(a) eps|``
#: as ``a -> inf``; Molchanov et al. fit ``K1`` to the same number.
_LIMIT = 0.5 * (_EULER_GAMMA + math.log(2.0))
#: Normalising constant chosen for the improper log-uniform density so that
#: ``E_q[log q - log p]`` for ``q = N(mu, mu^2 a)`` tends to zero as ``a -> inf``, exactly as the
#: approximation does. With it a sampled ELBO and the analytic one agree.
_LOG_UNIFORM_CONST = -0.5 * math.log(2.0 * math.pi * math.e) - _LIMIT


def neg_kl_log_uniform(log_alpha: torch.Tensor) -> torch.Tensor:
    r"""Molchanov et al. (2017) approximation of :math:`-\mathrm{KL}(q\,\|\,p)`.

    For :math:`q(z) = N(\mu, \mu^2\alpha)` and the log-uniform :math:`p(z) \propto 1/|z|`,

    .. math::

        -\mathrm{KL} \approx k_1\,\sigma(k_2 + k_3 \log\alpha)
        - \tfrac12 \log(1 + \alpha^{-1}) - k_1,

    with :math:`k_1 = 0.63576, k_2 = 1.87320, k_3 = 1.48695` (Molchanov et al. 2017,
    eq. 14; Louizos et al. 2017, eq. 10). The value depends on ``log_alpha`` only.
    """
    return (
        K1 * torch.sigmoid(K2 + K3 * log_alpha)
        - 0.5 * torch.nn.functional.softplus(-log_alpha)
        - K1
    )


class LogUniform(TorchDistribution):
    r"""The improper scale-invariant (log-uniform, normal-Jeffreys) density on the real line.

    .. math:: p(z) \propto |z|^{-1}

    It is the hyper-prior of the group normal-Jeffreys prior (Louizos et al. 2017, §3.1,
    eq. 8). Being improper it cannot be sampled; it only scores values (``log_prob``) and
    acts as the model side of the registered KL. The arbitrary normalising constant is
    fixed so that ``E_q[log q(z) - log p(z)]`` for ``q = N(mu, mu^2 alpha)`` tends to zero
    as ``alpha -> inf``, the convention of the Molchanov et al. approximation.
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, batch_shape: torch.Size | tuple = (), validate_args=None):
        super().__init__(torch.Size(batch_shape), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LogUniform, _instance)
        TorchDistribution.__init__(new, torch.Size(batch_shape), validate_args=False)
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = -value.abs().log() + _LOG_UNIFORM_CONST
        return lp.expand(torch.broadcast_shapes(lp.shape, self.batch_shape + self.event_shape))

    def sample(self, sample_shape=()):
        raise NotImplementedError(
            "LogUniform is an improper prior and cannot be sampled; "
            "draw the group scales from the guide (the variational posterior) instead."
        )


class MarginalizedBernoulli(dist.Bernoulli):
    r"""A Bernoulli inclusion gate whose gradient comes from analytic marginalisation.

    The spike-and-slab guide samples inclusion gates :math:`\gamma_g \sim
    \mathrm{Bernoulli}(\pi_g)`. pyrocompress never back-propagates through the sampled
    value: during training the layers marginalise :math:`\gamma` exactly in the first two
    moments of the locally reparametrised pre-activations (Hubin & Storvik 2019;
    Kingma et al. 2015), so the gradient with respect to :math:`\pi` is the gradient of a
    deterministic function and needs no score-function term. This class declares
    ``has_rsample`` so that Pyro's mean-field ELBO accepts the site; ``rsample`` returns a
    detached draw. The KL to a Bernoulli prior is torch's Bernoulli–Bernoulli KL.

    Use it only with the local reparametrisation estimator (``fit(local_reparam=True)``,
    the default); :func:`pyrocompress.fit` refuses the spike-and-slab prior otherwise.
    """

    has_rsample = True

    def rsample(self, sample_shape=()):
        return self.sample(sample_shape)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MarginalizedBernoulli, _instance)
        return super().expand(batch_shape, _instance=new)


class ConditionalSlab(dist.Normal):
    r"""Slab weights of a spike-and-slab group under the structured variational family.

    Spike-and-slab with :math:`w = \gamma_g\tilde w` leaves :math:`\tilde w` unidentified when
    :math:`\gamma_g = 0`: its exact posterior given exclusion is the prior. The structured
    family :math:`q(\gamma, \tilde w) = q(\gamma)\,q(\tilde w \mid \gamma)` with
    :math:`q(\tilde w \mid \gamma = 1) = N(\mu, \sigma^2)` and
    :math:`q(\tilde w \mid \gamma = 0) = p(\tilde w)` (Titsias & Lázaro-Gredilla 2011;
    Carbonetto & Stephens 2012) keeps that exact, and its KL is

    .. math::

        \mathrm{KL}(q \,\|\, p) = \mathrm{KL}(q(\gamma) \,\|\, p(\gamma))
        + \pi\,\mathrm{KL}(N(\mu, \sigma^2) \,\|\, p(\tilde w)),

    the form of Bai, Song & Cheng (2020), eq. (5), used by Saha, Liu & Liang (2024). This
    distribution is the :math:`\tilde w` factor: its registered KL to a Normal prior is the
    second term, so the price of a group's slab is paid only in proportion to its
    inclusion probability. A mean-field :math:`q(\tilde w)` would charge it in full
    whatever :math:`\pi` is; switching a group off would then save only the Bernoulli KL,
    and weights fitted to noise early in training keep their group on.

    It samples, and scores, as :math:`N(\mu, \sigma^2)`: a drawn :math:`\tilde w` only
    matters through :math:`\gamma\tilde w`, which is the same under both families.

    Parameters
    ----------
    loc, scale
        :math:`\mu, \sigma` of the slab given inclusion.
    inclusion
        :math:`\pi = q(\gamma = 1)`, broadcast against ``loc``.
    """

    arg_constraints = {
        "loc": constraints.real,
        "scale": constraints.positive,
        "inclusion": constraints.unit_interval,
    }

    def __init__(self, loc, scale, inclusion, validate_args=None):
        loc, scale, inclusion = broadcast_all(loc, scale, inclusion)
        self.inclusion = inclusion
        super().__init__(loc, scale, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ConditionalSlab, _instance)
        new.inclusion = self.inclusion.expand(torch.Size(batch_shape))
        return super().expand(batch_shape, _instance=new)


@register_kl(ConditionalSlab, dist.Normal)
def _kl_conditional_slab_normal(q: ConditionalSlab, p: dist.Normal) -> torch.Tensor:
    return q.inclusion * kl_divergence(dist.Normal(q.loc, q.scale), p)


@register_kl(dist.Normal, LogUniform)
def _kl_normal_log_uniform(q: dist.Normal, p: LogUniform) -> torch.Tensor:
    log_alpha = 2.0 * (q.scale.log() - q.loc.abs().clamp_min(1e-16).log())
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
    r"""The Gamma / inverse-Gamma pair whose product's square root is :math:`C^+(0, b)`.

    If :math:`a \sim \mathrm{Gamma}(\tfrac12, \text{rate } b^{-2})` and
    :math:`\beta \sim \mathrm{InvGamma}(\tfrac12, 1)` then
    :math:`a\beta = b^2 F(1, 1)` and :math:`\sqrt{a\beta} \sim C^+(0, b)`
    (Louizos et al. 2017, §3.2; Ingraham & Marks 2017). The tensors take the dtype and
    device of ``like``.
    """
    like = torch.zeros(()) if like is None else like
    half = like.new_tensor(0.5)
    rate = like.new_tensor(float(scale)) ** -2
    gamma = dist.Gamma(half, rate).expand(shape)
    inv_gamma = dist.InverseGamma(half, like.new_tensor(1.0)).expand(shape)
    return gamma, inv_gamma
