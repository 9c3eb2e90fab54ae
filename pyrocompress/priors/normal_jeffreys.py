"""The group normal-Jeffreys prior :cite:p:`louizos2017bayesian{§3.1}`."""

from __future__ import annotations

from typing import cast, override

import pyro
import pyro.distributions as dist
import torch

from pyrocompress.distributions import LogUniform, LogVarNormal
from pyrocompress.effects import example_noise
from pyrocompress.priors.base import (
    LOG_VAR_INIT,
    LOG_VAR_RANGE,
    QUADRATURE_NODES,
    Gate,
    LayerSpec,
    Prior,
    normal,
    normal_quadrature,
    variance,
)
from pyrocompress.priors.guides import LayerGuide
from pyrocompress.priors.registry import register_prior


class GroupNormalJeffreysGuide(LayerGuide):
    r"""The guide family of :class:`GroupNormalJeffreys`: a normal scale per group.

    :math:`q(z_g) = N(\mu_g, \sigma_g^2)` for each group's scale, with the base family's
    weights and bias.
    """

    @override
    def _gate_init(self) -> None:
        g = self.spec.num_groups
        self.declare("scale_loc", 1.0 + 0.01 * torch.randn(g), role="loc")
        self.declare("scale_log_var", LOG_VAR_INIT + 0.01 * torch.randn(g), role="log_var")

    @override
    def _gate_guide(self) -> None:
        q = normal(self.scale_loc, self.scale_log_var)
        pyro.sample(self.spec.site("scale"), q.to_event(1))

    @override
    def gate_moments(self, *, conditional: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Return :math:`(E z, E z^2) = (\mu, \mu^2 + \sigma^2)` per group."""
        mu = self.scale_loc
        var = variance(self.scale_log_var)
        return mu, mu**2 + var

    @override
    def gate_quadrature(self, num_nodes: int = QUADRATURE_NODES):
        """Return Gauss-Hermite nodes and weights of the normal scale, ``[G, K]``."""
        return normal_quadrature(self.scale_loc, variance(self.scale_log_var).sqrt(), num_nodes)

    @override
    def gate_exceedance(self, threshold: torch.Tensor | None = None) -> torch.Tensor:
        r"""Return :math:`P(|z_g| > t_g) = \Phi((\mu - t)/\sigma) + \Phi((-\mu - t)/\sigma)`.

        Under :math:`q(z_g) = N(\mu_g, \sigma_g^2)`; see
        :meth:`LayerGuide.gate_exceedance` for the threshold.
        """
        t = self._threshold(threshold)
        mu = self.scale_loc.double()
        sd = variance(self.scale_log_var).double().sqrt()
        prob = torch.special.ndtr((mu - t) / sd) + torch.special.ndtr((-mu - t) / sd)
        return prob.clamp(0.0, 1.0).to(self.scale_loc.dtype)

    @override
    def group_log_alpha(self) -> torch.Tensor:
        r"""Return :math:`\log\alpha_g = \log\sigma^2_{z,g} - \log\mu^2_{z,g}` (eq. 10)."""
        log_var = self.scale_log_var.clamp(*LOG_VAR_RANGE)
        return log_var - torch.log((self.scale_loc**2).clamp_min(1e-30))


@register_prior("group-nj")
class GroupNormalJeffreys(Prior):
    r"""Group normal-Jeffreys (log-uniform) prior of :cite:t:`louizos2017bayesian{§3.1}`.

    .. math::

        p(z_g) \propto |z_g|^{-1}, \qquad \tilde w \sim N(0, 1), \qquad w = z_g \tilde w,

    so that :math:`w \mid z_g \sim N(0, z_g^2)`. Guide :math:`q(z_g) = N(\mu_g, \mu_g^2
    \alpha_g)` and :math:`q(\tilde w) = N(\mu_w, \sigma_w^2)`, i.e. :math:`q(w \mid z) =
    N(z\mu_w, z^2\sigma_w^2)` (eqs. 8–9). The KL of :math:`z` uses the
    :cite:t:`molchanov2017variational` approximation (eq. 10); the conditional KL of the
    weights reduces to the standard-normal KL of :math:`\tilde w`. :math:`\log\alpha_g =
    \log\sigma^2_{z,g} - \log\mu^2_{z,g}`; large values mark groups to prune.

    Examples
    --------
    It has no hyper-parameters. Fit, read :math:`\log\alpha_g`, and prune the groups with
    :math:`\log\alpha_g \ge 3` (none, after two epochs):

    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), pc.GroupNormalJeffreys(), seed=0)
    >>> bnn.prior == pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj").prior
    True
    >>> _ = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
    >>> {name: tuple(a.shape) for name, a in pc.Posterior(bnn).log_alpha().items()}
    {'1': (4,), '3': (8,)}
    >>> pc.make_plan(bnn, "log_alpha", threshold=3.0).kept()
    {'1': 4, '3': 8}
    """

    nuts_unsupported = (
        "the normal-Jeffreys prior p(z) ∝ 1/|z| makes the posterior improper (it is not "
        "integrable at z = 0), so there is nothing for NUTS to converge to; variational "
        "inference is well defined only through the approximate KL. Use the group "
        "horseshoe or Gaussian prior for a gold-standard comparison"
    )

    guide_family = GroupNormalJeffreysGuide

    def __init__(self):
        super().__init__()

    def _gate_priors(self, spec: LayerSpec, zero: torch.Tensor) -> dict[str, dist.Distribution]:
        return {"scale": LogUniform((spec.num_groups,)).to_event(1)}

    @override
    def gate(self, spec: LayerSpec, values: dict[str, torch.Tensor]) -> torch.Tensor:
        return values["scale"]

    @override
    def gate_log_prior(self, spec: LayerSpec, values: dict[str, torch.Tensor]):
        r"""Return 0: :math:`p(z) \propto 1/|z|` is uniform in :math:`\log|z|`."""
        return torch.zeros_like

    @override
    def local_gate(
        self, spec: LayerSpec, batch_size: int, qs: dict[str, dist.Distribution]
    ) -> Gate:
        q = cast(LogVarNormal, qs["scale"])  # the factor _gate_guide samples the scale from
        return torch.addcmul(q.loc, q.scale, example_noise((batch_size, *q.loc.shape), q.loc))
