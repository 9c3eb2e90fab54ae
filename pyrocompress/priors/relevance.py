r"""The relevance of a group given its weights: the conditional law of a gate.

In every group prior the gate :math:`g` of a group touches the data only through the
group's effective weights :math:`w_g = g\,\tilde w_g` (and the bias of a gated output
channel), :math:`\tilde w \sim N(0, s^2)`. Given those weights and the layer's global
variables :math:`\theta` (the horseshoe's global scale, the slab width of the regularised
horseshoe), the gate is independent of the data, with the one-dimensional density

.. math::

    p(\log g \mid w_g, \theta) \;\propto\; p(\log g \mid \theta)\;
        g^{-m_g} \exp\!\Big(-\frac{\beta_g}{g^2}\Big), \qquad
    \beta_g = \frac{\lVert w_g \rVert^2}{2 s^2},

for the :math:`m_g` weights of the group (the normal densities of :math:`w = g\tilde w`
in :math:`g`). The probability that the group is relevant, that its shrinkage factor
:math:`\kappa_g = 1/(1 + g^2 s^2 h_g)` is below one half (:math:`|g| > t_g`,
:meth:`~pyrocompress.priors.LayerGuide.relevance_threshold`), therefore satisfies

.. math::

    P(|g| > t \mid \mathcal D) = E\big[\,P(|g| > t \mid w_g, \theta)\;\big|\;\mathcal D\big],

the Rao-Blackwellisation of the indicator :math:`[|g| > t]` :cite:p:`casella1996rao`: an
average over posterior draws of :math:`(w_g, \theta)` of a probability computed exactly
here, by quadrature of the one-dimensional density on a grid in :math:`\log g` placed
around the likelihood factor's peak (:math:`g^2 = 2\beta/m`, width
:math:`1/\sqrt{2m}` in :math:`\log g`). For draws of an exact sampler it has the same
expectation as the fraction of draws with :math:`|g| > t` and a smaller variance; for the
draws of a mean-field guide it reads the effective weights, which the likelihood
identifies, and not the guide's factor of the gate, which a non-centred mean-field guide
leaves near its prior for a group the data switch off (only the product
:math:`g\tilde w` is pinned down, not its split).

**A gate bounded above** (the regularised horseshoe's :math:`g < c`,
:cite:p:`piironen2017sparsity{eq. 2.8}`) has a density in :math:`\log g` that grows like
:math:`(c - g)^{-1/2}` at the bound: integrable, but no grid uniform in :math:`\log g` integrates
it (a grid point just under :math:`c` carries a density of order :math:`10^{13}` for a cell of
mass near zero, and inflated the inclusion probabilities of null groups by up to 0.2). The
quadrature then runs in the unbounded coordinate

.. math:: x = \log h, \qquad \frac1{g^2} = \frac1{h^2} + \frac1{c^2}
    \;\Longleftrightarrow\; h = \frac{g}{\sqrt{1 - g^2/c^2}}, \qquad
    \log\frac{d\log g}{dx} = -\log\Big(1 + \frac{h^2}{c^2}\Big),

an exact change of variables for any prior bounded by :math:`c`; for the regularised
horseshoe :math:`h = \tau\lambda` is the half-Cauchy scale, whose density is smooth.
"""

from __future__ import annotations

import math
from functools import partial

import torch

__all__ = ["relevance_given_layer", "relevance_given_weights"]

#: Margin below the largest finite ``exp`` argument of the dtype (709.78 in float64, 88.72 in
#: float32) that :func:`softplus_outer` keeps its factored exponentials under.
_EXP_MARGIN = 10.0
#: Number of grid points of the quadrature in log g.
GRID = 256
#: Grid points in log g for a group's marginal likelihood (the posterior of tau).
_COARSE = 48


def softplus_outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Return :math:`\log(1 + e^{a + b})` for a grid ``a`` and an outer offset ``b``.

    The priors' densities on the quadrature grids (``a``: ``[G, K]``, from the grid in
    :math:`\log g`; ``b``: ``[T, 1, 1]``, from the global scales) are evaluated on every
    ``[T, G, K]`` triple. :math:`e^{a + b} = e^{a + r}\,e^{b - r}` takes one exponential per
    entry of ``a`` and of ``b`` instead of one per triple (:math:`r` centres ``b``, so both
    factors stay representable), ``logaddexp`` of the sum where a factor or the product
    could overflow (in float64, never for scales within :math:`e^{\pm 300}` of each other).
    A factor that underflows to 0 gives 0 where the exact value is below
    :math:`e^{\ell - 745}` in float64 (:math:`\ell`: the overflow bound the factors are
    kept under, 699.8), an absolute error under 1e-19. Otherwise the values agree with
    :math:`\log(1 + e^{a + b})` to rounding (``torch.nn.functional.softplus``, which
    returns ``x`` above 20, is off by up to 2.1e-9). The dtype is that of ``a + b``.
    """
    b = torch.as_tensor(b, device=a.device)
    dtype = torch.promote_types(a.dtype, b.dtype)  # as a + b would be
    a, b = a.to(dtype), b.to(dtype)
    a_hi, b_lo, b_hi = (float(v) for v in (a.amax(), b.amin(), b.amax()))
    r = 0.5 * (b_lo + b_hi)
    limit = math.log(torch.finfo(dtype).max) - _EXP_MARGIN
    if max(a_hi + r, b_hi - r, a_hi + b_hi) < limit:  # no factor, no product overflows
        return torch.log1p(torch.exp(a + r) * torch.exp(b - r))
    return torch.logaddexp(a + b, torch.zeros((), dtype=dtype, device=a.device))


def relevance_given_weights(
    log_prior,
    beta: torch.Tensor,
    size: torch.Tensor | float,
    threshold: torch.Tensor,
    *,
    grid: int = GRID,
    upper: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Return :math:`P(|g| > t \mid w, \theta)` for each draw and group, by quadrature.

    Parameters
    ----------
    log_prior
        Callable taking ``log_g`` (``[S, G, K]``, float64) and returning the log density
        of :math:`\log|g|` given the layer's global variables of each draw, up to a
        constant, broadcastable to ``log_g`` (``-inf`` outside the support).
    beta
        :math:`\beta = \lVert w_g\rVert^2 / (2s^2)` per draw and group, ``[S, G]``.
    size
        :math:`m_g`, the number of weights (and gated biases) of each group, ``[G]`` or a
        number.
    threshold
        :math:`t_g`, ``[G]`` (``inf`` allowed: probability 0).
    grid
        Number of quadrature points.
    upper
        The largest ``log g`` of each draw's prior (``[S]``; a regularised horseshoe's
        :math:`\log c`), or ``None`` (unbounded).

    Returns
    -------
    Tensor
        ``[S, G]`` probabilities (float64).
    """
    x, log_g, log_lik, delta, log_jac, _ = _grid(beta, size, grid, upper)
    # the density in the grid's coordinate x (the spacing cancels)
    weights = torch.softmax(log_lik + log_prior(log_g) + log_jac, dim=-1)
    return _above(weights, x, delta, _coordinate(threshold, upper, x.dim()))


def _grid(
    beta: torch.Tensor,
    size: torch.Tensor | float,
    grid: int,
    upper: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:
    r"""Return the quadrature grid ``[..., G, K]`` and what lives on it.

    Returns ``(x, log_g, log_lik, delta, log_jac, center)``: the grid, uniform in its
    coordinate ``x`` (``log g``; for a gate bounded by ``upper``, ``[S]`` per draw, the
    unbounded ``log h`` of the module docstring); ``log g`` at its points; the likelihood
    factor :math:`-m\log g - \beta/g^2`, or with ``noise`` :math:`v` (``[G]``)
    :math:`-\tfrac m2\log(g^2 + v) - \beta/(g^2 + v)`; the spacing of ``x``;
    :math:`\log(d\log g/dx)` (zero without a bound), to add to a log density in
    :math:`\log g`; and the factor's peak in ``x`` ``[..., G]``.
    """
    beta = beta.double().clamp_min(1e-300)
    m = torch.as_tensor(size, dtype=torch.float64, device=beta.device)
    # the likelihood factor g^-m exp(-beta/g^2) peaks at log g = log(2 beta / m) / 2, with
    # sd 1/sqrt(2m) in log g; its left tail falls like exp(-beta/g^2) (fast), its right
    # tail like g^-m (slowly for small m), so the grid reaches further to the right
    # (12 sd either side; the prior's slope in log g, at most a few units, moves the peak
    # by slope / (2m), well inside). Below a bound h = g to within 1e-6 where the left
    # tail lies, so the same span serves x = log h.
    sd = 1.0 / torch.sqrt(2.0 * m)
    if noise is None:
        center = 0.5 * torch.log(2.0 * beta / m)
        low = center - 12.0 * sd
    else:
        # with the weights integrated out the factor is flat below g^2 = v, where the
        # prior's own left tail (a slope of at least one in log g) must be covered
        v = torch.as_tensor(noise, dtype=torch.float64, device=beta.device).expand_as(beta)
        center = 0.5 * torch.log(torch.maximum(2.0 * beta / m, v))
        low = torch.minimum(center - 12.0 * sd, 0.5 * torch.log(v) - 30.0)
    high = center + 12.0 * sd + 40.0 / (m + 1.0)
    u = torch.linspace(0.0, 1.0, grid, dtype=torch.float64, device=beta.device)
    x = low.unsqueeze(-1) + (high - low).unsqueeze(-1) * u
    if upper is None:
        log_g, log_jac = x, torch.zeros((), dtype=torch.float64, device=x.device)
    else:
        log_c = upper.double().reshape(-1, *([1] * (x.dim() - 1)))
        log_g = -0.5 * torch.logaddexp(-2.0 * x, -2.0 * log_c)  # g^-2 = h^-2 + c^-2
        log_jac = -torch.nn.functional.softplus(2.0 * (x - log_c))  # -log(1 + h^2/c^2)
    if noise is None:
        log_lik = -m.unsqueeze(-1) * log_g - beta.unsqueeze(-1) * torch.exp(-2.0 * log_g)
    else:
        total = torch.exp(2.0 * log_g) + v.unsqueeze(-1)
        log_lik = -0.5 * m.unsqueeze(-1) * torch.log(total) - beta.unsqueeze(-1) / total
    return x, log_g, log_lik, ((high - low) / (grid - 1)).unsqueeze(-1), log_jac, center


def _coordinate(threshold: torch.Tensor, upper: torch.Tensor | None, dim: int) -> torch.Tensor:
    r"""Return the threshold :math:`t` in the grid's coordinate, ``[G]`` or ``[S, G]``.

    :math:`\log t`, or :math:`\log h_t = \log t - \tfrac12\log(1 - t^2/c^2)` below a bound
    (``+inf`` at or above it: a gate never exceeds :math:`c`).
    """
    log_t = torch.log(torch.as_tensor(threshold, dtype=torch.float64))
    if upper is None:
        return log_t
    log_c = upper.double().reshape(-1, *([1] * (dim - 2)))
    r = 2.0 * (log_t - log_c)
    inside = r < 0.0
    log_h = log_t - 0.5 * torch.log(-torch.expm1(torch.where(inside, r, -1.0)))
    return torch.where(inside, log_h, math.inf)


def _above(
    weights: torch.Tensor, x: torch.Tensor, delta: torch.Tensor, log_t: torch.Tensor
) -> torch.Tensor:
    """Return the mass of the grid's distribution above ``log_t`` (in the grid's coordinate).

    Each point carries the mass of its cell (width ``delta``); the cell holding the
    threshold counts the part of it above (a piecewise-constant density).
    """
    above = ((x + 0.5 * delta - log_t.unsqueeze(-1)) / delta).clamp(0.0, 1.0)
    return (weights * above).sum(-1).clamp(0.0, 1.0)


def relevance_given_layer(
    log_prior_given,
    log_global_prior,
    beta: torch.Tensor,
    size: torch.Tensor | float,
    threshold: torch.Tensor,
    *,
    grid: int = GRID // 2,
    global_grid: int = 64,
    upper: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Return :math:`P(|g| > t \mid w)` with the layer's global scale integrated out.

    For a prior whose only layer-level variable is a global scale :math:`\tau` (the group
    horseshoe), :math:`\tau` too depends on the data only through the layer's weights:

    .. math::

        p(\log\tau \mid w) \propto p(\log\tau) \prod_g \int p(\log g \mid \tau)\,
            g^{-m_g} e^{-\beta_g / g^2}\, d\log g,
        \qquad
        P(|g| > t \mid w) = \int p(\log\tau \mid w)\, P(|g| > t \mid w_g, \tau)\,
            d\log\tau,

    so the inclusion probability is a functional of the posterior of the effective weights
    alone, and a guide's factor of :math:`\tau` (which a mean-field guide leaves near its
    initial value) is not read. Both integrals are quadratures: in :math:`\log g` as in
    :func:`relevance_given_weights`, and in :math:`\log\tau` on a grid of
    ``global_grid`` points spanning the groups' scales, refined around its mode when the
    posterior of :math:`\tau` is narrower than the grid's spacing (many groups).

    Parameters
    ----------
    log_prior_given
        ``(log_g, log_tau, draw=s) -> log p(log g | tau, ...)`` for draw ``s`` (other
        layer variables, such as a slab width, are read from the draw), normalised in
        ``log g`` (a constant may be dropped only if it does not depend on ``tau``).
    log_global_prior
        ``log_tau -> log p(log tau)`` up to a constant.
    beta, size, threshold
        As for :func:`relevance_given_weights` (``beta`` is ``[S, G]``).
    grid, global_grid
        Quadrature points in ``log g`` and in ``log tau``.
    upper
        The largest ``log g`` of each draw's prior (``[S]``), or ``None``.
    noise
        ``None``: ``beta`` holds the weights of each draw. Else :math:`v_g = t_g^2`
        (``[G]``) and ``beta`` holds :math:`B_g/(2s^2)` of the one-step estimates
        :math:`\hat b` of the group's weights given the others, whose likelihood
        :math:`N(\hat b; w, 1/h)` integrates the weights :math:`w \sim N(0, s^2g^2)` out:
        :math:`\prod_k N(\hat b_k; 0, s^2(g^2 + v))` (the normal-means form of
        :meth:`pyrocompress.Posterior.inclusion_probabilities`).

    Returns
    -------
    Tensor
        ``[S, G]`` probabilities (float64).
    """
    x, log_g, log_lik, delta, log_jac, peak = _grid(beta, size, grid, upper, noise)
    log_t = _coordinate(threshold, upper, x.dim()).expand(x.shape[:-1])  # x: [S, G, K]
    # the posterior of tau needs only each group's marginal likelihood, a smooth integral:
    # a coarse grid in log g is enough for it; the probabilities use the fine one
    coarse = _grid(beta, size, _COARSE if noise is None else 4 * _COARSE, upper, noise)
    jac_c, jac = (j.expand(t.shape) for j, t in ((coarse[4], coarse[0]), (log_jac, x)))
    out = []
    for s in range(log_g.shape[0]):
        lg_c, ll_c, dl_c = (t[s] for t in coarse[1:4])
        ll_c = ll_c + jac_c[s]  # the change of variables, with the likelihood factor
        centers = peak[s]  # the groups' likelihood peaks, g^2 = 2 beta / m
        low, high = float(centers.min()) - 12.0, float(centers.max()) + 4.0
        log_tau = torch.linspace(low, high, global_grid, dtype=torch.float64, device=lg_c.device)
        given = partial(log_prior_given, draw=s)
        post = _global_posterior(given, log_global_prior, lg_c, ll_c, dl_c, log_tau)
        mode = float(log_tau[post.argmax()])
        spacing = (high - low) / (global_grid - 1)
        if float(post[(log_tau - mode).abs() <= 2.0 * spacing].sum()) > 0.99:
            # narrower than the grid (many groups): refine around the mode
            log_tau = torch.linspace(mode - 2.0 * spacing, mode + 2.0 * spacing,
                                     global_grid // 2, dtype=torch.float64,
                                     device=lg_c.device)  # fmt: skip
            post = _global_posterior(given, log_global_prior, lg_c, ll_c, dl_c, log_tau)
        if not bool(torch.isfinite(post).all()):
            raise FloatingPointError(
                "the posterior of the global scale is not finite: a group's weights lie "
                "where its prior has no mass (above a regularised horseshoe's slab width?)"
            )
        keep = post > 1e-6 * post.max()  # the scales that carry the posterior mass
        log_tau, post = log_tau[keep], post[keep] / post[keep].sum()
        joint = log_lik[s] + jac[s] + log_prior_given(log_g[s], log_tau.reshape(-1, 1, 1), draw=s)
        above = _above(torch.softmax(joint, -1), x[s], delta[s], log_t[s])  # [T, G]
        out.append((post.unsqueeze(-1) * above).sum(0))
    return torch.stack(out).clamp(0.0, 1.0)


def _global_posterior(log_prior_given, log_global_prior, log_g, log_lik, delta, log_tau):
    r"""Return :math:`p(\log\tau_k \mid w)` on the grid ``log_tau``."""
    joint = log_lik + log_prior_given(log_g, log_tau.reshape(-1, 1, 1))  # [T, G, K]
    log_marginal = torch.logsumexp(joint, -1) + torch.log(delta.squeeze(-1))  # [T, G]
    return torch.softmax(log_global_prior(log_tau) + log_marginal.sum(-1), 0)
