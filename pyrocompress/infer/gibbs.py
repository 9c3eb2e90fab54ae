r"""Exact posterior draws for linear regression under a horseshoe prior: a Gibbs sampler.

NUTS (:func:`~pyrocompress.infer.run_nuts`) samples any model but mixes slowly on the
horseshoe's funnels: on the linear problems of ``benchmarks/inference/svi_vs_nuts.py`` one
chain of 600 iterations took 40 minutes and left effective sample sizes of 3 to 107. For
the one model where the weights are conjugate, a linear layer with a Gaussian likelihood
of known noise, the posterior has a Gibbs sampler whose every step is exact:

.. math::

    y = X\beta + b + \varepsilon,\quad \varepsilon \sim N(0, \sigma^2),\quad
    \beta_j \mid g_j \sim N(0, s^2 g_j^2),\quad b \sim N(0, s_b^2),

with the gate :math:`g_j` of the layer's prior: :math:`g_j = \tau\lambda_j` for the group
horseshoe, :math:`g_j^2 = \tau^2 c^2\lambda_j^2 / (c^2 + \tau^2\lambda_j^2)` for the
regularised horseshoe :cite:p:`piironen2017sparsity{eq. 2.8}`, :math:`\lambda_j \sim C^+(0, 1)`,
:math:`\tau \sim C^+(0, \tau_0)`, :math:`c^2 \sim \mathrm{InvGamma}(\nu/2, \nu s_c^2/2)`.
One sweep draws

1. :math:`(\beta, b) \mid g, y`: Gaussian with precision
   :math:`A = Z^\top Z/\sigma^2 + \mathrm{diag}(1/(s^2g^2), 1/s_b^2)`, :math:`Z = [X, 1]`,
   and mean :math:`A^{-1}Z^\top y/\sigma^2` (the conjugate block of
   :cite:t:`makalic2016simple{eq. 7}`);
2. each :math:`\log\lambda_j \mid \beta_j, \tau, c`, then :math:`\log\tau \mid \beta,
   \lambda, c`, then :math:`\log c^2 \mid \beta, \lambda, \tau`: one-dimensional
   conditionals, drawn exactly up to the resolution of a grid (the "griddy Gibbs" step of
   :cite:t:`ritter1992facilitating`) of ``grid`` points placed from where the likelihood factor
   :math:`\exp(-\beta^2/2v)` vanishes to 36 log units beyond (where the priors' tails, falling at
   least like :math:`e^{-\nu x/2}` in :math:`x = \log c^2` and :math:`e^{-x}` in
   :math:`\log\lambda`, :math:`\log\tau`, leave a negligible mass for the defaults), with a uniform
   draw within the chosen cell.

Makalic & Schmidt's inverse-Gamma auxiliary variables would make step 2 conjugate for
the group horseshoe only; the grid serves both priors with one code path. The draws are
returned in the sites of ``bnn``'s own model (:math:`\tau^2` as ``global_a`` with
``global_b`` one, :math:`\lambda^2` as ``local_a``, :math:`c^2` as ``slab_var``,
:math:`\tilde w = \beta/g` as ``weight``), so that every summary of the package reads them
as it reads NUTS draws, e.g. ``Posterior(bnn).inclusion_probabilities(draws=tree)``.
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from pyrocompress.distributions.likelihoods import GaussianLikelihood
from pyrocompress.infer.information import glm_layer
from pyrocompress.infer.mcmc import site_variable
from pyrocompress.infer.training import prepare_data
from pyrocompress.nn import BayesianNetwork

if TYPE_CHECKING:
    from xarray import DataTree

__all__ = ["GIBBS_PRIORS", "linear_gibbs"]

#: The priors :func:`linear_gibbs` samples, by registry key.
GIBBS_PRIORS = ("group-horseshoe", "regularized-horseshoe")
#: Points of each one-dimensional grid.
GRID = 2048
#: Span of a grid in log units beyond the likelihood's cut-off (the tails' e^-30).
_SPAN = 36.0


def linear_gibbs(
    bnn: BayesianNetwork,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    num_samples: int = 2000,
    warmup_steps: int = 500,
    num_chains: int = 4,
    seed: int = 0,
    grid: int = GRID,
) -> DataTree:
    r"""Return exact posterior draws of a horseshoe linear regression, as :func:`run_nuts` does.

    Parameters
    ----------
    bnn
        A network whose only layer is one Bayesian ``Linear`` with one output, each input
        its own group, a prior of :data:`GIBBS_PRIORS` and a
        :class:`~pyrocompress.distributions.GaussianLikelihood` with fixed noise
        (``learn_noise=False``).
    X, y
        The data (validated as by :func:`~pyrocompress.fit`).
    num_samples, warmup_steps
        Sweeps kept and discarded per chain.
    num_chains
        Independent chains, for R-hat and effective sizes.
    seed
        Chain ``c`` draws from a local generator seeded ``seed + c`` (as :func:`run_nuts`);
        the caller's random state is not touched.
    grid
        Points of the grid of each one-dimensional step.

    Returns
    -------
    xarray.DataTree
        Its ``posterior`` group: the model's sites (``layer<name>_<part>``, chains first)
        and the effective weights ``layer<name>_effective_weight``.

    Raises
    ------
    ValueError
        If ``bnn`` is not such a model (the message says what differs), or for a
        non-positive count.
    """
    from arviz_base import from_dict

    name, layer = _check_model(bnn)
    for label, value, low in (
        ("num_samples", num_samples, 1),
        ("warmup_steps", warmup_steps, 0),
        ("num_chains", num_chains, 1),
        ("grid", grid, 64),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{label} must be an integer >= {low}, got {value!r}")
    X, y = prepare_data(bnn, (X, y), "data", torch.device("cpu"))
    prior = cast(Any, layer.prior)  # a GroupHorseshoe or RegularizedHorseshoe (checked)
    likelihood = bnn.likelihood
    assert isinstance(likelihood, GaussianLikelihood)
    sampler = _Sampler(
        X.double(),
        y.double().reshape(-1),
        noise=float(likelihood.noise),
        weight_scale=prior.layer_weight_scale(layer.spec),
        bias_scale=float(prior.bias_scale),
        tau0=float(prior.scale_global),
        slab=(float(prior.slab_df), float(prior.slab_scale))
        if prior.key == "regularized-horseshoe"
        else None,
        grid=grid,
    )
    chains: dict[str, list[np.ndarray]] = {}
    for c in range(num_chains):
        gen = torch.Generator().manual_seed(seed + c)  # local: the caller's state untouched
        for part, draws in sampler.chain(num_samples, warmup_steps, gen).items():
            chains.setdefault(part, []).append(draws.numpy())
    spec = layer.spec
    p = spec.weight_shape[1]
    posterior = {}
    for part, values in chains.items():
        arr = np.stack(values)  # [chain, draw, ...]
        if part in ("weight", "effective_weight"):
            arr = arr.reshape(*arr.shape[:2], 1, p)
        key = f"{name}.effective_weight" if part == "effective_weight" else spec.site(part)
        posterior[site_variable(key)] = arr
    return from_dict({"posterior": posterior})


def _check_model(bnn: BayesianNetwork):
    """Return the name and layer of ``bnn``'s one linear layer, or say what differs."""
    if not isinstance(bnn, BayesianNetwork):
        raise TypeError(f"bnn must be a BayesianNetwork, got {type(bnn).__name__}")
    layers = bnn.bayesian_layers()
    if len(layers) != 1:
        raise ValueError(
            f"linear_gibbs samples one linear layer; this network has {len(layers)} Bayesian "
            "layers: use run_nuts"
        )
    name, layer = next(iter(layers.items()))
    spec = layer.spec
    if glm_layer(bnn) is None and spec.kind == "linear" and layer.norm is None:
        raise ValueError(
            "linear_gibbs samples a network that is one Linear layer (y = Xw + b); this one "
            "has other modules: use run_nuts"
        )
    if layer.group_mask is not None:
        raise ValueError(
            f"layer {name!r} is restricted (BayesianNetwork.restrict), a model with fewer "
            "inputs: sample the network without the restriction, or use run_nuts"
        )
    if spec.kind != "linear" or spec.weight_shape[0] != 1 or spec.column_groups is not None:
        raise ValueError(
            "linear_gibbs needs a Linear layer with one output and one group per input "
            f"column; layer {name!r} is {spec.kind} {tuple(spec.weight_shape)}"
            + (" with column groups" if spec.column_groups is not None else "")
            + ": use run_nuts"
        )
    if layer.prior.key not in GIBBS_PRIORS:
        raise ValueError(
            f"linear_gibbs samples the priors {GIBBS_PRIORS}; layer {name!r} has "
            f"{layer.prior.key!r}: use run_nuts"
        )
    lik = bnn.likelihood
    if not isinstance(lik, GaussianLikelihood) or isinstance(lik.log_noise, torch.nn.Parameter):
        raise ValueError(
            "linear_gibbs needs a Gaussian likelihood with fixed noise "
            "(GaussianLikelihood(sigma, learn_noise=False)): use run_nuts otherwise"
        )
    if layer.norm is not None:
        raise ValueError(f"layer {name!r} has a norm after it: use run_nuts")
    return name, layer


class _Sampler:
    """The sweeps of one model (see the module docstring)."""

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        *,
        noise: float,
        weight_scale: float,
        bias_scale: float,
        tau0: float,
        slab: tuple[float, float] | None,
        grid: int,
    ):
        n, self.p = X.shape
        Z = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], dim=1)
        self.ZtZ = Z.T @ Z / noise**2
        self.Zty = Z.T @ y / noise**2
        self.s2, self.sb2 = weight_scale**2, bias_scale**2
        self.log_tau0 = math.log(tau0)
        self.slab = slab
        self.u = torch.linspace(0.0, 1.0, grid, dtype=torch.float64)

    # -- the prior variances s^2 g^2 of the weights -----------------------------------
    def variance(
        self, log_lam: torch.Tensor, log_tau: torch.Tensor, log_c2: torch.Tensor | None
    ) -> torch.Tensor:
        """:math:`s^2 g^2` (broadcast over the arguments' shapes)."""
        log_g2 = 2.0 * (log_tau + log_lam)
        if log_c2 is not None:  # 1/g^2 = 1/(tau^2 lam^2) + 1/c^2
            log_g2 = log_g2 + log_c2 - torch.logaddexp(log_c2, log_g2)
        return self.s2 * log_g2.exp()

    def _normal_terms(self, beta2: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        r""":math:`\log N(\beta; 0, v)` up to a constant."""
        return -0.5 * torch.log(v) - 0.5 * beta2 / v

    @staticmethod
    def _half_cauchy(d: torch.Tensor) -> torch.Tensor:
        """Return log p(log x) for x ~ C+(0, scale), d = log x - log scale (no constant)."""
        return d - torch.nn.functional.softplus(2.0 * d)

    def _draw(self, low: torch.Tensor, log_density, gen: torch.Generator) -> torch.Tensor:
        """One draw per row from the grid ``low + span * u`` of ``log_density`` (griddy Gibbs)."""
        span = _SPAN
        pts = low.unsqueeze(-1) + span * self.u  # [..., K]
        logp = log_density(pts)
        w = torch.softmax(logp, dim=-1)
        cdf = w.cumsum(-1)
        r = torch.rand(*cdf.shape[:-1], 1, generator=gen, dtype=torch.float64)
        idx = torch.searchsorted(cdf, r * cdf[..., -1:]).clamp(max=pts.shape[-1] - 1)
        step = span / (pts.shape[-1] - 1)
        jitter = (torch.rand(idx.shape, generator=gen, dtype=torch.float64) - 0.5) * step
        return (pts.gather(-1, idx) + jitter).squeeze(-1)

    def _lambda_density(self, x, *, beta2, log_tau, log_c2):
        """Log p(log lambda_j | beta_j, tau, c) on the grid ``x`` ``[p, K]``."""
        v = self.variance(x, log_tau, log_c2)
        return self._half_cauchy(x) + self._normal_terms(beta2.unsqueeze(-1), v)

    def _tau_density(self, x, *, beta2, log_lam, log_c2):
        """Log p(log tau | beta, lambda, c) on the grid ``x`` ``[K]``."""
        v = self.variance(log_lam.unsqueeze(-1), x, log_c2)  # [p, K]
        terms = self._normal_terms(beta2.unsqueeze(-1), v).sum(0)
        return self._half_cauchy(x - self.log_tau0) + terms

    def _c2_density(self, x, *, beta2, log_lam, log_tau):
        """Log p(log c^2 | beta, lambda, tau) on the grid ``x`` ``[K]``."""
        assert self.slab is not None
        nu, scale = self.slab
        rate = nu * scale * scale / 2.0
        v = self.variance(log_lam.unsqueeze(-1), log_tau, x)
        # c^2 ~ InvGamma(nu/2, rate): log density of log c^2 is -(nu/2) x - rate e^-x
        prior = -0.5 * nu * x - rate * torch.exp(-x)
        return prior + self._normal_terms(beta2.unsqueeze(-1), v).sum(0)

    def chain(self, num_samples: int, warmup: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Run one chain; return its kept draws of every site, by part name."""
        p = self.p
        log_lam = torch.zeros(p, dtype=torch.float64)
        log_tau = torch.tensor(self.log_tau0, dtype=torch.float64)
        log_c2 = None
        if self.slab is not None:
            nu, scale = self.slab
            log_c2 = torch.tensor(math.log(scale * scale), dtype=torch.float64)
        keep: dict[str, list[torch.Tensor]] = {}
        bias_precision = torch.full((1,), 1.0 / self.sb2, dtype=torch.float64)
        for it in range(warmup + num_samples):
            # (beta, b) | scales: Gaussian, by the Cholesky factor of its precision
            v = self.variance(log_lam, log_tau, log_c2)
            prec = self.ZtZ + torch.diag(torch.cat([1.0 / v, bias_precision]))
            chol = torch.linalg.cholesky(prec)
            mean = torch.cholesky_solve(self.Zty.unsqueeze(-1), chol).squeeze(-1)
            z = torch.randn(p + 1, 1, generator=gen, dtype=torch.float64)
            coef = mean + torch.linalg.solve_triangular(chol.T, z, upper=True).squeeze(-1)
            beta, bias = coef[:p], coef[p]
            beta2 = (beta * beta).clamp_min(1e-300)
            # the factor exp(-beta^2 / 2v) vanishes below v = beta^2 e^-12, so below
            # log lambda = log(|beta| / (s tau)) - 6 (and log tau = max_j of that - 6)
            floor = 0.5 * torch.log(beta2 / self.s2)
            log_lam = self._draw(
                floor - log_tau - 6.0,
                partial(self._lambda_density, beta2=beta2, log_tau=log_tau, log_c2=log_c2),
                gen,
            )
            log_tau = self._draw(
                (floor - log_lam).max() - 6.0,
                partial(self._tau_density, beta2=beta2, log_lam=log_lam, log_c2=log_c2),
                gen,
            )
            if self.slab is not None:
                nu, scale = self.slab
                low = torch.tensor(math.log(nu * scale * scale / 2.0) - 8.0, dtype=torch.float64)
                log_c2 = self._draw(
                    low,
                    partial(self._c2_density, beta2=beta2, log_lam=log_lam, log_tau=log_tau),
                    gen,
                )
            if it >= warmup:
                g = (self.variance(log_lam, log_tau, log_c2) / self.s2).sqrt()
                record = {
                    "global_a": (2.0 * log_tau).exp(),
                    "global_b": torch.ones((), dtype=torch.float64),
                    "local_a": (2.0 * log_lam).exp(),
                    "local_b": torch.ones(p, dtype=torch.float64),
                    "weight": beta / g,
                    "bias": bias.reshape(1),
                    "effective_weight": beta,
                }
                if log_c2 is not None:
                    record["slab_var"] = log_c2.exp()
                for k, val in record.items():
                    keep.setdefault(k, []).append(val.clone())
        return {k: torch.stack(v) for k, v in keep.items()}
