r"""The regularised horseshoe prior :cite:p:`piironen2017sparsity`, per group, with its guide.

The group gate of a layer is, with the regularised local scale :math:`\tilde\lambda_g` of
:cite:t:`piironen2017sparsity{eq. 2.8}`,

.. math::

    g_g = \tau\tilde\lambda_g, \qquad
    \tilde\lambda_g^2 = \frac{c^2\lambda_g^2}{c^2 + \tau^2\lambda_g^2}, \qquad
    \frac{1}{g_g^2} = \frac{1}{\tau^2\lambda_g^2} + \frac{1}{c^2},

so :math:`g_g^2 = c^2\,\sigma(\log\tau^2\lambda_g^2 - \log c^2)` with :math:`\sigma` the
logistic function: a soft minimum of the horseshoe scale :math:`\tau\lambda_g` and the slab
width :math:`c`. All posterior summaries of the guide below use that form.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import cast, override

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from pyrocompress.distributions import half_cauchy_scale_parts
from pyrocompress.effects import example_noise
from pyrocompress.priors.base import (
    LOG_VAR_INIT,
    Gate,
    LayerSpec,
    Prior,
    check_positive,
    lognormal,
    normal_quadrature,
    variance,
)
from pyrocompress.priors.base import (
    QUADRATURE_NODES as HERMITE_NODES,
)
from pyrocompress.priors.guides import LayerGuide
from pyrocompress.priors.registry import register_prior
from pyrocompress.priors.relevance import softplus_outer

__all__ = ["RegularizedHorseshoe", "RegularizedHorseshoeGuide"]

#: The scale parts of each gate: the horseshoe's four (global, shared by a layer's groups,
#: and local) and the slab variance :math:`c^2` (one per layer).
_HORSESHOE_PARTS = ("global_a", "global_b", "local_a", "local_b")
_PARTS = (*_HORSESHOE_PARTS, "slab_var")
#: Gauss-Legendre nodes per panel of the quadratures (:func:`_log_gate_moment`,
#: :func:`_prob_sum_below_one`; ``benchmarks/inference/regularized_horseshoe_quadrature.py``
#: measures their error).
QUADRATURE_NODES = 64
#: The standard-normal range the probabilities integrate over (the mass outside, 2e-19,
#: is dropped).
_Z_MAX = 9.0


@functools.cache
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``n`` Gauss-Legendre nodes and weights on [-1, 1]."""
    return np.polynomial.legendre.leggauss(n)


def _panel(lo: torch.Tensor, hi: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return Gauss-Legendre nodes and weights ``[..., n]`` on ``[lo, hi]`` (none if hi <= lo)."""
    x, w = (torch.as_tensor(a, dtype=lo.dtype, device=lo.device) for a in _legendre(n))
    half = (0.5 * (hi - lo)).clamp_min(0.0).unsqueeze(-1)
    return (0.5 * (hi + lo)).unsqueeze(-1) + half * x, half * w


def _log_mean_logistic_power(
    h: float, m: torch.Tensor, s: torch.Tensor, n: int = QUADRATURE_NODES
) -> torch.Tensor:
    r"""Return :math:`\log E[\sigma(X)^h]` for :math:`X \sim N(m, s^2)`, elementwise.

    The log-integrand :math:`\ell(x) = h\log\sigma(x) - (x - m)^2/2s^2` is concave: its mode
    :math:`\hat x \in [m, m + hs^2]` is found by bisection, the integral is restricted to
    :math:`\hat x \pm 12s` (beyond, :math:`\ell` has dropped by more than 72), and that
    window is cut at :math:`x = \pm 10`, where :math:`\sigma` turns from :math:`e^x` to 1, into
    three panels with an ``n``-node Gauss-Legendre rule each: every panel's integrand is
    smooth on the panel's scale, whatever :math:`s` is (a single Gauss-Hermite rule is
    not: at :math:`s = 10` its error is 3 %).
    """
    lo, hi = m, m + h * s.square()
    for _ in range(64):  # bisection on l'(x) = h sigma(-x) - (x - m) / s^2, decreasing
        mid = 0.5 * (lo + hi)
        up = h * torch.sigmoid(-mid) > (mid - m) / s.square()
        lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
    mode = 0.5 * (lo + hi)
    a, b = mode - 12.0 * s, mode + 12.0 * s
    c1 = torch.minimum(torch.maximum(a.new_tensor(-10.0), a), b)
    c2 = torch.minimum(torch.maximum(a.new_tensor(10.0), a), b)
    nodes = [_panel(p, q, n) for p, q in ((a, c1), (c1, c2), (c2, b))]
    x = torch.cat([x for x, _ in nodes], -1)
    w = torch.cat([w for _, w in nodes], -1)
    ell = (
        h * torch.nn.functional.logsigmoid(x) - 0.5 * ((x - m.unsqueeze(-1)) / s.unsqueeze(-1)) ** 2
    )
    log_norm = torch.log(s * math.sqrt(2.0 * math.pi))
    return torch.logsumexp(ell + w.clamp_min(1e-300).log(), -1) - log_norm


def _log_gate_moment(
    k: int,
    mu_u: torch.Tensor,
    var_u: torch.Tensor,
    mu_c: torch.Tensor,
    var_c: torch.Tensor,
    n: int = QUADRATURE_NODES,
) -> torch.Tensor:
    r"""Return :math:`\log E[g^k]` for :math:`g^{-2} = e^{-U} + e^{-C}`, :math:`U, C` independent.

    With :math:`U \sim N(\mu_u, v_u)`, :math:`C \sim N(\mu_c, v_c)` and
    :math:`g^k = e^{kU/2}\,\sigma(C - U)^{k/2}`, the exponential tilt of the normal
    (:math:`E[e^{kU/2} f(U)] = e^{k\mu_u/2 + k^2 v_u/8}\,E[f(U')]`,
    :math:`U' \sim N(\mu_u + k v_u/2, v_u)`) reduces the double integral exactly to one
    dimension,

    .. math::

        E[g^k] = e^{k\mu_u/2 + k^2 v_u/8}\; E\big[\sigma(D)^{k/2}\big], \qquad
        D \sim N(\mu_c - \mu_u - k v_u/2,\; v_u + v_c),

    or the same with the roles of :math:`U` and :math:`C` exchanged; the role that gives
    :math:`D` the larger mean is taken (the prefactor is then the dominant log-normal
    moment). The last expectation is :func:`_log_mean_logistic_power`, in float64:
    relative error below 1e-13 for :math:`\mathrm{sd}\,D \le 50`, 1e-5 at 300 (the most
    the log-variance bounds allow).
    """
    d_u = mu_c - mu_u - 0.5 * k * var_u  # mean of D, tilting U
    d_c = mu_u - mu_c - 0.5 * k * var_c  # mean of D, tilting C
    tilt_u = d_u >= d_c
    log_pre = torch.where(
        tilt_u, 0.5 * k * mu_u + 0.125 * k * k * var_u, 0.5 * k * mu_c + 0.125 * k * k * var_c
    )
    mean = torch.where(tilt_u, d_u, d_c)
    return log_pre + _log_mean_logistic_power(0.5 * k, mean, (var_u + var_c).sqrt(), n)


def _prob_sum_below_one(
    mu_a: torch.Tensor,
    sd_a: torch.Tensor,
    mu_b: torch.Tensor,
    sd_b: torch.Tensor,
    n: int = QUADRATURE_NODES,
) -> torch.Tensor:
    r"""Return :math:`P(a + b < 1)` for independent log-normal :math:`a, b`.

    :math:`\log a = \mu_a + s_a z_a`, :math:`\log b = \mu_b + s_b z_b`, :math:`z` standard
    normal. In the :math:`(z_a, z_b)` plane the boundary :math:`a + b = 1` is a decreasing
    curve of slope :math:`-s_a a / (s_b b)`; it is cut where the slope is -1, at
    :math:`a^* = s_b/(s_a + s_b)`, :math:`b^* = 1 - a^*`. Left of the cut the region is
    integrated over :math:`z_a` with :math:`z_b` in closed form, below it over :math:`z_b`:

    .. math::

        P = \int_{-\infty}^{z_a^*} \phi(z)\,
            \Phi\Big(\frac{\log(1 - a(z)) - \mu_b}{s_b}\Big)\,dz
          + \int_{-\infty}^{z_b^*} \phi(z)\Big[
            \Phi\Big(\frac{\log(1 - b(z)) - \mu_a}{s_a}\Big) - \Phi(z_a^*)\Big]\,dz.

    On each piece the inner boundary has slope at most 1, so each integrand is smooth on
    the scale of the standard normal whatever the two spreads are, and an ``n``-node
    Gauss-Legendre rule on :math:`[-9, z^*]` (float64) gives an absolute error below 1e-9.
    (A rule over one variable alone is not uniform: conditioning on a vague variable
    makes the integrand a near step where the other is sharply known.)
    """
    a_star = sd_b / (sd_a + sd_b)
    za = ((a_star.log() - mu_a) / sd_a).clamp(-_Z_MAX, _Z_MAX)
    zb = ((torch.log1p(-a_star) - mu_b) / sd_b).clamp(-_Z_MAX, _Z_MAX)
    lo = torch.full_like(za, -_Z_MAX)

    def piece(z_hi, mu_o, sd_o, mu_i, sd_i, minus):
        z, w = _panel(lo, z_hi, n)
        log_x = (mu_o.unsqueeze(-1) + sd_o.unsqueeze(-1) * z).clamp_max(-1e-300)
        arg = (torch.log(-torch.expm1(log_x)) - mu_i.unsqueeze(-1)) / sd_i.unsqueeze(-1)
        inner = torch.special.ndtr(arg) - minus.unsqueeze(-1)
        return (w * torch.exp(-0.5 * z.square()) * inner).sum(-1) / math.sqrt(2.0 * math.pi)

    p = piece(za, mu_a, sd_a, mu_b, sd_b, torch.zeros_like(za))
    p = p + piece(zb, mu_b, sd_b, mu_a, sd_a, torch.special.ndtr(za))
    return p.clamp(0.0, 1.0)


class RegularizedHorseshoeGuide(LayerGuide):
    r"""The guide family of :class:`RegularizedHorseshoe`: log-normal scale factors.

    One log-normal factor for each of the horseshoe's four scale parts (:math:`\tau^2 =
    s_a s_b` per layer, :math:`\lambda_g^2 = a_g b_g` per group, as in
    :class:`~pyrocompress.priors.GroupHorseshoeGuide`) and one for the slab variance
    :math:`c^2` (per layer), with the base family's weights and bias. Under it
    :math:`U_g = \log\tau^2\lambda_g^2 \sim N(\sum\mu, \sum\sigma^2)` (the sum of the four
    parts) and :math:`C = \log c^2 \sim N(\mu_c, \sigma_c^2)` are independent normals, and
    the gate :math:`g_g = (e^{-U_g} + e^{-C})^{-1/2}` is no longer log-normal: its moments
    and tail probabilities are exact reductions to one dimension followed by panelled
    Gauss-Legendre rules in float64 (:func:`_log_gate_moment`,
    :func:`_prob_sum_below_one`).
    """

    @override
    def _gate_init(self) -> None:
        prior = cast("RegularizedHorseshoe", self.prior)
        g = self.spec.num_groups
        # The slab variance starts at s^2; the global factor at its prior's scale (s_a at
        # tau0^2, s_b at 1/tau0^2, so tau^2 = 1, as the horseshoe's guide does); the local
        # factors where the gate is one, u = c^2 g0^2 / (c^2 - g0^2) with g0^2 = 1 (or c^2/2
        # when c^2 < 2: the gate never exceeds c).
        c2 = prior.slab_scale**2
        g2 = min(1.0, 0.5 * c2)
        log_u = math.log(c2 * g2 / (c2 - g2))
        log_t2 = 2.0 * math.log(prior.scale_global)
        for part, shape, loc in (
            ("global_a", (), log_t2),
            ("global_b", (), -log_t2),
            ("local_a", (g,), 0.5 * log_u),
            ("local_b", (g,), 0.5 * log_u),
            ("slab_var", (), math.log(c2)),
        ):
            self.declare(f"{part}_loc", loc + 0.01 * torch.randn(shape), role="loc")
            self.declare(
                f"{part}_log_var", LOG_VAR_INIT + 0.01 * torch.randn(shape), role="log_var"
            )

    def _lognormal(self, part: str) -> dist.LogNormal:
        """Return the log-normal guide factor of scale part ``part``."""
        return lognormal(getattr(self, f"{part}_loc"), getattr(self, f"{part}_log_var"))

    @override
    def _gate_guide(self) -> None:
        for part in _PARTS:
            q = self._lognormal(part)
            pyro.sample(self.spec.site(part), q.to_event(1) if part.startswith("local") else q)

    def log_scale_moments(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Return the guide's normal laws of :math:`U_g = \log\tau^2\lambda_g^2` and of :math:`C`.

        :math:`C = \log c^2`, the log slab variance.

        Returns
        -------
        mu_u, var_u : Tensor
            Mean and variance of :math:`U_g`, the sums over the four horseshoe parts, per
            group (float64).
        mu_c, var_c : Tensor
            Mean and variance of :math:`\log c^2` (0-dim, float64).
        """
        locs = [getattr(self, f"{p}_loc").double() for p in _HORSESHOE_PARTS]
        vars_ = [variance(getattr(self, f"{p}_log_var")).double() for p in _HORSESHOE_PARTS]
        g = self.spec.num_groups
        mu_u = (locs[0] + locs[1] + locs[2] + locs[3]).expand(g)
        var_u = (vars_[0] + vars_[1] + vars_[2] + vars_[3]).expand(g)
        mu_c = self.slab_var_loc.double()
        var_c = variance(self.slab_var_log_var).double()
        return mu_u, var_u, mu_c, var_c

    def _log_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(log E g, log E g^2)`` per group, float64."""
        mu_u, var_u, mu_c, var_c = self.log_scale_moments()
        mu_c, var_c = mu_c.expand_as(mu_u), var_c.expand_as(mu_u)
        return (
            _log_gate_moment(1, mu_u, var_u, mu_c, var_c),
            _log_gate_moment(2, mu_u, var_u, mu_c, var_c),
        )

    @override
    def gate_quadrature(self, num_nodes: int = HERMITE_NODES):
        r"""Return product Gauss-Hermite nodes and weights of the gate, ``[G, K^2]``.

        Over the guide's independent normal laws of :math:`U = \log\tau^2\lambda^2` and
        :math:`C = \log c^2` (:meth:`log_scale_moments`): :math:`g = (e^{-U} +
        e^{-C})^{-1/2}`. For the conditional weights' KL and moments (smooth integrands).
        """
        mu_u, var_u, mu_c, var_c = self.log_scale_moments()
        dtype = self.weight_loc.dtype
        u, wu = normal_quadrature(mu_u, var_u.sqrt(), num_nodes)  # [G, K]
        c, wc = normal_quadrature(mu_c.expand_as(mu_u), var_c.sqrt().expand_as(mu_u), num_nodes)
        log_g2 = -torch.logaddexp(-u.unsqueeze(-1), -c.unsqueeze(-2))  # [G, K, K]
        nodes = (0.5 * log_g2).exp().flatten(-2)
        weights = (wu.unsqueeze(-1) * wc.unsqueeze(-2)).flatten(-2)
        return nodes.to(dtype), weights.to(dtype)

    @override
    def gate_moments(self, *, conditional: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Return :math:`(E g_g, E g_g^2)` per group under the guide.

        Computed as :func:`_log_gate_moment` (an exact reduction to one dimension, then a
        panelled 64-node Gauss-Legendre rule in float64, relative error below 1e-13 in
        the range training reaches) and returned in the parameters' dtype.
        ``conditional`` is ignored (the gate has no point mass).
        """
        log_m1, log_m2 = self._log_moments()
        dtype = self.local_a_loc.dtype
        return log_m1.exp().to(dtype), log_m2.exp().to(dtype)

    @override
    def group_log_alpha(self) -> torch.Tensor:
        r"""Return :math:`\log\alpha_g = \log(\mathrm{Var}\,g_g / (E g_g)^2)` per group.

        Computed in the log domain, :math:`\log(\exp(\log E g^2 - 2\log E g) - 1)`, so that
        a sharply known gate (relative variance near :math:`e^{-9}`) keeps its precision.
        """
        log_m1, log_m2 = self._log_moments()
        rel = torch.expm1(log_m2 - 2.0 * log_m1)
        return torch.log(rel.clamp_min(1e-300)).to(self.local_a_loc.dtype)

    @override
    def gate_exceedance(self, threshold: torch.Tensor | None = None) -> torch.Tensor:
        r"""Return :math:`q(g_g > t_g)`, the guide's probability that each gate exceeds ``t``.

        A diagnostic of the guide's gate factor (see
        :meth:`~pyrocompress.priors.LayerGuide.gate_exceedance`); the posterior inclusion
        probabilities read the effective weights through the prior's
        :meth:`~RegularizedHorseshoe.gate_log_prior`.

        :math:`g > t \iff t^2 e^{-U} + t^2 e^{-C} < 1`, i.e. :math:`c > t` and
        :math:`\tau^2\lambda^2 > t^2c^2/(c^2 - t^2)`; :math:`\log(t^2e^{-U})` and
        :math:`\log(t^2e^{-C})` are independent normals under the mean-field guide, and the
        probability is :func:`_prob_sum_below_one`: the region is split where its boundary
        has slope -1 in standardised coordinates, each part is integrated over the
        variable along which the other's conditional probability is smooth, by a 64-node
        Gauss-Legendre rule in float64 (absolute error below 1e-9). ``t = inf`` gives 0
        and ``t <= 0`` gives 1.

        Parameters
        ----------
        threshold
            :math:`t_g`, shape ``[G]`` (or broadcastable to it); entries may be ``inf``. By
            default :meth:`~pyrocompress.priors.LayerGuide.relevance_threshold`.

        Returns
        -------
        Tensor
            The probabilities, shape ``[G]``, in the parameters' dtype.

        Raises
        ------
        ValueError
            If ``threshold`` has NaN entries or does not broadcast to ``[G]``, or is not
            given and no Fisher information has been recorded.
        """
        g = self.spec.num_groups
        t = self._threshold(threshold)
        try:
            t = t.expand(g)
        except RuntimeError:
            raise ValueError(
                f"threshold must have shape [{g}] (one per group of layer "
                f"{self.spec.name!r}), got {tuple(t.shape)}"
            ) from None
        if torch.isnan(t).any():
            raise ValueError("threshold must not contain NaN (use inf for 'never included')")
        mu_u, var_u, mu_c, var_c = self.log_scale_moments()
        positive = (t > 0) & torch.isfinite(t)
        log_t2 = 2.0 * torch.where(positive, t, 1.0).log()
        p = _prob_sum_below_one(log_t2 - mu_u, var_u.sqrt(), log_t2 - mu_c, var_c.sqrt().expand(g))
        p = torch.where(positive, p, (t <= 0).to(p.dtype))
        return p.to(self.local_a_loc.dtype)


@register_prior("regularized-horseshoe")
class RegularizedHorseshoe(Prior):
    r"""Regularised (group) horseshoe prior of :cite:t:`piironen2017sparsity{§2.3}`.

    Per Bayesian layer, with groups :math:`g = 1..G` as for
    :class:`~pyrocompress.priors.GroupHorseshoe` (their eq. 2.8):

    .. math::

        \tau \sim C^+(0, \tau_0), \quad \lambda_g \sim C^+(0, 1), \quad
        c^2 \sim \mathrm{InvGamma}(\nu/2,\; \nu s^2/2), \\
        \tilde\lambda_g^2 = \frac{c^2\lambda_g^2}{c^2 + \tau^2\lambda_g^2}, \quad
        g_g = \tau\tilde\lambda_g, \quad \tilde w \sim N(0, 1), \quad w = g_g\,\tilde w.

    **Why c regularises.** For a group with :math:`\tau^2\lambda_g^2 \ll c^2`,
    :math:`\tilde\lambda_g \approx \lambda_g` and the prior is the horseshoe's: small
    weights are shrunk as before. For :math:`\tau^2\lambda_g^2 \gg c^2`,
    :math:`g_g^2 \to c^2` and the prior of those weights tends to :math:`N(0, c^2)`: the slab
    bounds the scale of the large coefficients, where the horseshoe's Cauchy tail leaves
    them unregularised (and, with a weak likelihood, e.g. separable classes or a network
    that can grow a weight without limit, lets them drift). :cite:t:`piironen2017sparsity` show the
    prior is the continuous counterpart of a spike-and-slab with a slab of finite width :math:`c`;
    the inverse-Gamma on :math:`c^2` makes the slab a Student-:math:`t_\nu(0, s^2)` marginally
    (their §2.3). :math:`c \to \infty` recovers :class:`GroupHorseshoe`.

    Each half-Cauchy is written through its Gamma / inverse-Gamma parts
    (:func:`~pyrocompress.distributions.half_cauchy_scale_parts`, as the group horseshoe):
    :math:`\tau^2 = s_a s_b` (sites ``global_a``, ``global_b``), :math:`\lambda_g^2 = a_g b_g`
    (``local_a``, ``local_b``), and :math:`c^2` is the site ``slab_var``. Every site has a
    log-normal guide with an analytic KL (log-normal against Gamma and against
    inverse-Gamma, :mod:`pyrocompress.distributions.core`), so the mean-field ELBO
    samples no KL.

    Parameters
    ----------
    scale_global
        :math:`\tau_0`, in :data:`~pyrocompress.priors.SCALE_RANGE`; default ``1e-5`` as
        :class:`GroupHorseshoe` :cite:p:`louizos2017bayesian{§5}`, for the same reason: it states
        that most groups are irrelevant, and the Cauchy tail lets the data pull a useful
        layer's scale up. :meth:`from_expected_relevant` sets it from a prior guess of the
        number of relevant groups instead :cite:p:`piironen2017sparsity{eq. 3.12}`.
    slab_scale
        :math:`s`, the scale of the largest weights a priori; default 2.0.
        :cite:t:`piironen2017sparsity` put a Student-:math:`t_\nu(0, s^2)` slab on the large
        coefficients and choose :math:`s` from what is known of their size; for standardised inputs
        and outputs of unit scale, weights beyond a few units are implausible, and ``s = 2`` is the
        default of ``brms::horseshoe`` (``scale_slab = 2``), the implementation of the paper by its
        co-authors' group. The non-centred weights are :math:`N(0, 1)` (``weight_scale`` 1), so
        :math:`s` is directly the scale of :math:`w`.
    slab_df
        :math:`\nu > 0`, the degrees of freedom of the slab; default 4, as ``brms``
        (``df_slab = 4``): heavy enough a tail that data can override :math:`s`, light
        enough that the slab regularises.

    Examples
    --------
    >>> from pyrocompress.priors import RegularizedHorseshoe
    >>> prior = RegularizedHorseshoe.from_expected_relevant(3, num_groups=30, num_data=400)
    >>> round(prior.scale_global, 6)
    0.005556
    """

    hyper_parameters = ("scale_global", "slab_scale", "slab_df")
    guide_family = RegularizedHorseshoeGuide
    _PARTS = _PARTS

    def __init__(self, scale_global: float = 1e-5, slab_scale: float = 2.0, slab_df: float = 4.0):
        super().__init__()
        self.scale_global = check_positive("scale_global", scale_global)
        self.slab_scale = check_positive("slab_scale", slab_scale)
        if (
            isinstance(slab_df, bool)
            or not isinstance(slab_df, int | float)
            or not (math.isfinite(slab_df) and 0 < slab_df <= 1e6)
        ):
            raise ValueError(
                f"slab_df must be a positive finite number of degrees of freedom (at most "
                f"1e6), got {slab_df!r}; use e.g. 4, the default (P&V 2017)"
            )
        self.slab_df = float(slab_df)

    @classmethod
    def from_expected_relevant(
        cls,
        p0: float,
        num_groups: int,
        num_data: int,
        noise: float = 1.0,
        **kw: float,
    ) -> RegularizedHorseshoe:
        r"""Return the prior whose :math:`\tau_0` matches ``p0`` relevant groups of ``num_groups``.

        .. math:: \tau_0 = \frac{p_0}{D - p_0}\,\frac{\sigma}{\sqrt n}

        :cite:p:`piironen2017sparsity{eq. 3.12}`: the global scale that puts the prior mean of the
        effective number of non-zero coefficients :math:`m_\text{eff}` near :math:`p_0`, for
        :math:`D` groups, :math:`n` examples and noise :math:`\sigma` (for a non-Gaussian likelihood
        a pseudo-noise, as :cite:t:`piironen2017sparsity` do, e.g. :math:`1/\sqrt{\mu(1-\mu)}` for
        logistic regression with mean :math:`\mu`). It is derived for one regression layer; for a
        network, use it for the input layer (the selected features) and give the other layers their
        own prior.

        Parameters
        ----------
        p0
            Prior guess of the number of relevant groups, in :math:`(0, D)`.
        num_groups
            :math:`D`, the layer's number of groups (input features of a Linear layer), at
            least 2.
        num_data
            :math:`n`, the number of training examples, at least 1.
        noise
            :math:`\sigma > 0`.
        **kw
            ``slab_scale``, ``slab_df``.

        Returns
        -------
        RegularizedHorseshoe
            The prior.

        Raises
        ------
        ValueError
            If an argument is out of range (the message names it), or the resulting
            :math:`\tau_0` is outside :data:`~pyrocompress.priors.SCALE_RANGE`.
        TypeError
            If ``kw`` holds ``scale_global`` or an unknown name.
        """
        if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 2:
            raise ValueError(f"num_groups must be an integer of at least 2, got {num_groups!r}")
        if isinstance(num_data, bool) or not isinstance(num_data, int) or num_data < 1:
            raise ValueError(f"num_data must be a positive integer, got {num_data!r}")
        if isinstance(p0, bool) or not isinstance(p0, int | float) or not 0 < p0 < num_groups:
            raise ValueError(
                f"p0 (the expected number of relevant groups) must be a number in "
                f"(0, num_groups) = (0, {num_groups}), got {p0!r}"
            )
        noise = check_positive("noise", noise)
        extra = set(kw) - {"slab_scale", "slab_df"}
        if extra:
            raise TypeError(
                f"from_expected_relevant sets scale_global itself; it takes slab_scale and "
                f"slab_df only, got {sorted(extra)}"
            )
        tau0 = p0 / (num_groups - p0) * noise / math.sqrt(num_data)
        try:
            return cls(scale_global=tau0, **kw)
        except ValueError as e:
            if "scale_global" not in str(e):
                raise
            raise ValueError(
                f"p0={p0!r}, num_groups={num_groups}, num_data={num_data}, noise={noise!r} "
                f"give scale_global = {tau0:g}: {e}"
            ) from None

    def _gate_priors(self, spec: LayerSpec, zero: torch.Tensor) -> dict[str, dist.Distribution]:
        ga, gb = half_cauchy_scale_parts(self.scale_global, (), like=zero)
        la, lb = half_cauchy_scale_parts(1.0, (spec.num_groups,), like=zero)
        half_df = zero.new_tensor(0.5 * self.slab_df)
        slab = dist.InverseGamma(half_df, half_df * self.slab_scale**2)
        return {
            "global_a": ga,
            "global_b": gb,
            "local_a": la.to_event(1),
            "local_b": lb.to_event(1),
            "slab_var": slab,
        }

    @override
    def gate(self, spec: LayerSpec, values: dict[str, torch.Tensor]) -> torch.Tensor:
        r"""Return :math:`g = (1/(\tau^2\lambda^2) + 1/c^2)^{-1/2}` per group (eq. 2.8)."""
        u = values["global_a"] * values["global_b"] * values["local_a"] * values["local_b"]
        return (u.reciprocal() + values["slab_var"].reciprocal()).rsqrt()

    @override
    def gate_log_upper(self, spec: LayerSpec, values: dict[str, torch.Tensor]) -> torch.Tensor:
        r"""Return :math:`\log c` of each draw: the gate stays below the slab width."""
        return 0.5 * values["slab_var"].double().log().reshape(-1)

    @override
    def global_scale_densities(self, spec: LayerSpec, values: dict[str, torch.Tensor]):
        r"""Return :math:`\log p(\log g \mid \tau, c)` and :math:`\log p(\log\tau)`.

        The first as in :meth:`gate_log_prior` with :math:`\tau` an argument and
        :math:`c` read from the draw (normalised in :math:`\log g` up to
        :math:`\log(2/\pi)`); :math:`\tau \sim C^+(0, \tau_0)`.
        """
        log_c2 = values["slab_var"].double().log().reshape(-1)
        log_tau0 = math.log(self.scale_global)

        def log_prior_given(log_g: torch.Tensor, log_tau: torch.Tensor, draw: int = 0):
            r = 2.0 * log_g - log_c2[draw]
            inside = r < 0.0
            big_l = torch.log(-torch.expm1(torch.where(inside, r, -1.0)))
            lp = log_g - log_tau - 1.5 * big_l - softplus_outer(2.0 * log_g - big_l, -2.0 * log_tau)
            return torch.where(inside, lp, -math.inf)

        def log_global_prior(log_tau: torch.Tensor) -> torch.Tensor:
            d = log_tau - log_tau0
            return d - torch.nn.functional.softplus(2.0 * d)

        return log_prior_given, log_global_prior

    @override
    def gate_log_prior(
        self, spec: LayerSpec, values: dict[str, torch.Tensor]
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        r"""Return :math:`\log p(\log g \mid \tau, c)`, up to a constant, for each draw.

        Given :math:`\tau` and :math:`c`, :math:`h = \tau\lambda \sim C^+(0, \tau)` and
        :math:`g^{-2} = h^{-2} + c^{-2}` (eq. 2.8), so :math:`g \in (0, c)`,
        :math:`h^2 = g^2/(1 - g^2/c^2)` and :math:`d\log h/d\log g = 1/(1 - g^2/c^2)`.
        With :math:`x = \log g` and :math:`L = \log(1 - g^2/c^2)`,

        .. math::

            \log p(x \mid \tau, c) = x - \log\tau - \tfrac32 L
                - \log\big(1 + e^{2x - L}/\tau^2\big), \qquad x < \log c,

        and :math:`-\infty` above :math:`\log c`. As :math:`c \to \infty` it is the group
        horseshoe's :math:`x - \log\tau - \log(1 + g^2/\tau^2)`; near :math:`g = c` the
        density grows like :math:`(c - g)^{-1/2}` (integrable): the Cauchy tail of
        :math:`h` piled up under the slab width.
        """
        tau2 = (values["global_a"] * values["global_b"]).double().reshape(-1, 1, 1)
        log_c2 = values["slab_var"].double().log().reshape(-1, 1, 1)
        log_tau2 = tau2.log()

        def log_prior(log_g: torch.Tensor) -> torch.Tensor:
            r = 2.0 * log_g - log_c2
            inside = r < 0.0
            big_l = torch.log(-torch.expm1(torch.where(inside, r, -1.0)))
            lp = (
                log_g
                - 0.5 * log_tau2
                - 1.5 * big_l
                - torch.nn.functional.softplus(2.0 * log_g - big_l - log_tau2)
            )
            return torch.where(inside, lp, -math.inf)

        return log_prior

    @override
    def local_gate(
        self, spec: LayerSpec, batch_size: int, qs: dict[str, dist.Distribution]
    ) -> Gate:
        r"""Return per-example gate draws ``[batch, G]`` from the guide's factors.

        :math:`\log\tau^2` (one per example, shared by the groups), :math:`\log\lambda_g^2`
        (per example and group) and :math:`\log c^2` (one per example) are drawn as
        normals, reparametrised, each pair of horseshoe parts as one sum; the gate is
        :math:`g^2 = c^2\,\sigma(\log\tau^2\lambda_g^2 - \log c^2)`.
        """
        ga, gb, la, lb, sv = (cast(dist.LogNormal, qs[part]) for part in self._PARTS)
        loc = ga.loc
        g_loc = ga.loc + gb.loc
        g_std = (ga.scale**2 + gb.scale**2).sqrt()
        l_loc = la.loc + lb.loc
        l_std = (la.scale**2 + lb.scale**2).sqrt()
        eps_g = example_noise((batch_size, 1), loc)
        eps_l = example_noise((batch_size, *l_loc.shape), loc)
        eps_c = example_noise((batch_size, 1), loc)
        log_u = (g_loc + g_std * eps_g) + (l_loc + l_std * eps_l)
        log_c2 = sv.loc + sv.scale * eps_c
        log_g2 = log_c2 + torch.nn.functional.logsigmoid(log_u - log_c2)
        return (0.5 * log_g2).exp()
