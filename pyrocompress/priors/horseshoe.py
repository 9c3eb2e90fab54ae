"""The group horseshoe prior :cite:p:`louizos2017bayesian{§3.2}`."""

from __future__ import annotations

import math
from typing import cast, override

import pyro
import pyro.distributions as dist
import torch

from pyrocompress.distributions import half_cauchy_scale_parts
from pyrocompress.effects import example_noise
from pyrocompress.priors.base import (
    LOG_VAR_INIT,
    QUADRATURE_NODES,
    Gate,
    LayerSpec,
    Prior,
    check_positive,
    lognormal,
    normal_quadrature,
)
from pyrocompress.priors.guides import LayerGuide
from pyrocompress.priors.registry import register_prior
from pyrocompress.priors.relevance import softplus_outer

#: The four scale factors of each gate: global (shared by a layer's groups) and local.
_PARTS = ("global_a", "global_b", "local_a", "local_b")


class GroupHorseshoeGuide(LayerGuide):
    r"""The guide family of :class:`GroupHorseshoe`: log-normal scale factors.

    One log-normal factor for each of the four scale parts (:math:`s_a, s_b` per layer,
    :math:`a_g, b_g` per group), with the base family's weights and bias.
    """

    @override
    def _gate_init(self) -> None:
        g = self.spec.num_groups
        # Start at a gate of one with the global factor at its prior's scale: s_a at
        # tau0^2, s_b at 1/tau0^2, local factors at one.
        log_t2 = 2.0 * math.log(cast("GroupHorseshoe", self.prior).scale_global)
        for part, shape, loc in (
            ("global_a", (), log_t2),
            ("global_b", (), -log_t2),
            ("local_a", (g,), 0.0),
            ("local_b", (g,), 0.0),
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

    def log_gate_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Return the mean and variance of :math:`\log g` under the guide, per group.

        Returns
        -------
        m, v : Tensor
            :math:`m = \tfrac12\sum\mu` and :math:`v = \tfrac14\sum\sigma^2` over the four
            scale factors, one value per group.
        """
        ga, gb, la, lb = (self._lognormal(part) for part in _PARTS)
        m = 0.5 * ga.loc + 0.5 * gb.loc + 0.5 * la.loc + 0.5 * lb.loc
        v = 0.25 * ga.scale**2 + 0.25 * gb.scale**2 + 0.25 * la.scale**2 + 0.25 * lb.scale**2
        return m, v

    @override
    def gate_moments(self, *, conditional: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the log-normal gate's :math:`(e^{m + v/2}, e^{2m + 2v})` per group."""
        m, v = self.log_gate_moments()
        return (m + 0.5 * v).exp(), (2.0 * m + 2.0 * v).exp()

    @override
    def gate_quadrature(self, num_nodes: int = QUADRATURE_NODES):
        """Return Gauss-Hermite nodes and weights of the log-normal gate, ``[G, K]``."""
        m, v = self.log_gate_moments()
        nodes, weights = normal_quadrature(
            m.expand(self.spec.num_groups), v.sqrt().expand(self.spec.num_groups), num_nodes
        )
        return nodes.exp(), weights

    @override
    def gate_exceedance(self, threshold: torch.Tensor | None = None) -> torch.Tensor:
        r"""Return :math:`P(g_g > t_g) = \Phi((m_g - \log t_g) / \sqrt{v_g})`.

        The gate is log-normal under the guide, :math:`\log g \sim N(m, v)`
        (:meth:`log_gate_moments`); see :meth:`LayerGuide.gate_exceedance` for
        the threshold.
        """
        t = self._threshold(threshold)
        m, v = (x.double() for x in self.log_gate_moments())
        return torch.special.ndtr((m - t.log()) / v.sqrt()).to(self.local_a_loc.dtype)

    @override
    def group_log_alpha(self) -> torch.Tensor:
        r"""Return :math:`\log\alpha = \log(\mathrm{Var}\,g / (\mathrm{E}\,g)^2) = \log(e^{v} - 1)`.

        The relative posterior variance of the gate, as a public port of BC-GHS prunes on.
        It reflects the gate's uncertainty, not its size: a group the likelihood switches
        off first gets a small gate and only later, as its log-normal factors revert to
        their Gamma / inverse-Gamma priors (:math:`v \to \tfrac12\psi'(\tfrac12) \approx
        2.47`, :math:`\alpha \approx 11`), a large :math:`\alpha`. Short runs therefore
        overstate the inclusion probabilities of irrelevant groups; the automatic pruning
        rule ranks by group SNR, which sees the size of the effective weights.
        """
        _, v = self.log_gate_moments()
        return torch.log(torch.expm1(v).clamp_min(1e-30))


@register_prior("group-horseshoe")
class GroupHorseshoe(Prior):
    r"""Group horseshoe prior of :cite:t:`louizos2017bayesian{§3.2}`.

    .. math::

        s \sim C^+(0, \tau_0), \quad \tilde z_g \sim C^+(0, 1), \quad
        \tilde w \sim N(0, 1), \quad w = s\,\tilde z_g\,\tilde w,

    with one global scale :math:`s` per layer. Each half-Cauchy is written through its
    Gamma / inverse-Gamma decomposition
    (:func:`~pyrocompress.distributions.half_cauchy_scale_parts`):
    :math:`s^2 = s_a s_b`, :math:`s_a \sim \mathrm{Gamma}(\tfrac12, \text{rate } \tau_0^{-2})`,
    :math:`s_b \sim \mathrm{InvGamma}(\tfrac12, 1)`, and likewise :math:`\tilde z_g^2 =
    a_g b_g` with :math:`\tau_0` replaced by 1. All four scale factors get log-normal guides,
    whose KLs against the Gamma and inverse-Gamma are analytic. The gate is
    :math:`g = \sqrt{s_a s_b a_g b_g}`, log-normal under the guide with
    :math:`\log g \sim N(m, v)`, :math:`m = \tfrac12\sum\mu`, :math:`v = \tfrac14\sum\sigma^2`.

    Parameters
    ----------
    scale_global
        :math:`\tau_0`, in :data:`SCALE_RANGE` (``1e-6`` to ``1e6``; under ``1e-19`` the
        Gamma rate :math:`\tau_0^{-2}` is infinite in float32). The
        default ``1e-5`` is the value of :cite:t:`louizos2017bayesian{§5}`. A
        small :math:`\tau_0` states that most groups are irrelevant (:cite:t:`piironen2017sparsity`
        relate it to the expected number of relevant groups); the Cauchy tail still lets the data
        pull the scale of a useful layer to order one at the cost of a few nats, negligible against
        the likelihood of thousands of examples.

    Examples
    --------
    >>> import torch, pyrocompress as pc
    >>> prior = pc.GroupHorseshoe(scale_global=1e-3)
    >>> prior, prior.key
    (GroupHorseshoe(scale_global=0.001), 'group-horseshoe')
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), prior, seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
    >>> post = pc.Posterior(bnn)  # its inclusion_probabilities() are the groups' PIPs
    >>> {name: tuple(a.shape) for name, a in post.log_alpha().items()}  # one per group
    {'1': (4,), '3': (8,)}
    >>> plan = pc.make_plan(bnn, "sparsity", sparsity=0.25, score="log_alpha")
    >>> sum(plan.kept().values())  # 9 of the 12 groups
    9
    """

    hyper_parameters = ("scale_global",)
    guide_family = GroupHorseshoeGuide

    def __init__(self, scale_global: float = 1e-5):
        super().__init__()
        self.scale_global = check_positive("scale_global", scale_global)

    _PARTS = _PARTS

    def _gate_priors(self, spec: LayerSpec, zero: torch.Tensor) -> dict[str, dist.Distribution]:
        ga, gb = half_cauchy_scale_parts(self.scale_global, (), like=zero)
        la, lb = half_cauchy_scale_parts(1.0, (spec.num_groups,), like=zero)
        return {
            "global_a": ga,
            "global_b": gb,
            "local_a": la.to_event(1),
            "local_b": lb.to_event(1),
        }

    @override
    def gate(self, spec: LayerSpec, values: dict[str, torch.Tensor]) -> torch.Tensor:
        prod = values["global_a"] * values["global_b"] * values["local_a"] * values["local_b"]
        return prod.sqrt()

    @override
    def gate_log_prior(self, spec: LayerSpec, values: dict[str, torch.Tensor]):
        r"""Return :math:`\log p(\log g \mid s) = \log g - \log s - \log(1 + g^2/s^2)`.

        The gate :math:`g = s\tilde z` is :math:`C^+(0, s)` given the global scale
        :math:`s = \sqrt{s_a s_b}` of each draw (constants dropped).
        """
        s2 = (values["global_a"] * values["global_b"]).double().reshape(-1, 1, 1)

        def log_prior(log_g: torch.Tensor) -> torch.Tensor:
            return log_g - 0.5 * s2.log() - torch.log1p(torch.exp(2.0 * log_g) / s2)

        return log_prior

    @override
    def global_scale_densities(self, spec: LayerSpec, values: dict[str, torch.Tensor]):
        r"""Return :math:`\log p(\log g \mid s)` and :math:`\log p(\log s)`.

        :math:`g \mid s \sim C^+(0, s)` and :math:`s \sim C^+(0, \tau_0)`: in
        :math:`\log` space :math:`\log\tfrac2\pi + d - \log(1 + e^{2d})` with
        :math:`d = \log g - \log s` (respectively :math:`\log s - \log\tau_0`).
        """
        log_tau0 = math.log(self.scale_global)

        def log_prior_given(
            log_g: torch.Tensor, log_s: torch.Tensor, draw: int = 0
        ) -> torch.Tensor:
            d = log_g - log_s
            # softplus(2d), its exponentials factored over the grids of g and s
            return math.log(2.0 / math.pi) + d - softplus_outer(2.0 * log_g, -2.0 * log_s)

        def log_global_prior(log_s: torch.Tensor) -> torch.Tensor:
            d = log_s - log_tau0
            return d - torch.nn.functional.softplus(2.0 * d)

        return log_prior_given, log_global_prior

    @override
    def local_gate(
        self, spec: LayerSpec, batch_size: int, qs: dict[str, dist.Distribution]
    ) -> Gate:
        # the factors _gate_guide samples the four scale parts from
        ga, gb, la, lb = (cast(dist.LogNormal, qs[part]) for part in self._PARTS)
        # log g^2 is a sum of independent normals: the two global parts (shared by the
        # groups of an example) and the two local parts of each group. Draw each sum once,
        # reparametrised: the same joint law as four draws, with half the random numbers.
        loc = ga.loc
        g_loc = ga.loc + gb.loc
        g_std = (ga.scale**2 + gb.scale**2).sqrt()
        l_loc = la.loc + lb.loc
        l_std = (la.scale**2 + lb.scale**2).sqrt()
        eps_g = example_noise((batch_size, 1), loc)
        eps_l = example_noise((batch_size, *l_loc.shape), loc)
        log_g2 = (g_loc + g_std * eps_g) + (l_loc + l_std * eps_l)
        return (0.5 * log_g2).exp()
