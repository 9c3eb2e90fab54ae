r"""Weights Gaussian *given their group's gate*: the guide that follows the funnel.

A mean-field guide :math:`q(g)\,q(\tilde w)` of the non-centred weights :math:`w =
g\tilde w` cannot represent the posterior's funnel: given the data, the effective weight of
a group is pinned down, so a large gate goes with a small :math:`\tilde w` and a small gate
with a :math:`\tilde w` at its prior. In the conjugate case (a linear-Gaussian likelihood
with information :math:`h` about :math:`w` and estimate :math:`\hat w`) the exact
conditional is

.. math::

    \tilde w \mid g, \mathcal D \sim N\Big(\frac{g h \hat w}{s^{-2} + g^2 h},\;
        \frac{1}{s^{-2} + g^2 h}\Big).

The family here has that form, with free parameters: for group :math:`j` and each of its
weights,

.. math::

    q(\tilde w \mid g_j) = N\Big(\frac{g_j\,\mu}{D_j(g_j)},\; \frac{v}{D_j(g_j)}\Big),
    \qquad D_j(g) = (1 - r_j) + r_j g^2, \quad r_j \in (0, 1),

so that at :math:`g = 1` it is :math:`N(\mu, v)` (the mean-field parameters keep their
meaning there) and the effective weight :math:`w = g\tilde w` given the gate is
:math:`N(\varphi_j \mu, \varphi_j v)` with :math:`\varphi_j(g) = g^2 / D_j(g)`: zero for a
switched-off group, :math:`(\mu, v)/r_j` for a wide-open one. :math:`r_j` (one per group,
``gate_coupling_logit``) is the coupling the posterior's funnel needs — in the conjugate
case :math:`r/(1 - r) = s^2 h`. Because the coupling is per group, the locally
reparametrised pre-activations need no per-example weight tensor (the per-example
:math:`\varphi` multiplies the inputs of a group, or the outputs of a channel); the
quadrature over the gate and the traced gate draw make a step about twice as long as a
mean-field one (``benchmarks/speed/guide_cost.py``).

The KL of the weights is the expectation over the guide's gate of the conditional KL,

.. math::

    E_{q(g)}\,\mathrm{KL}\big(q(\tilde w \mid g)\,\|\,N(0, s^2)\big)
    = \tfrac12\Big[\frac{v\,E[D^{-1}] + \mu^2 E[g^2 D^{-2}]}{s^2} - 1
      - \log\frac{v}{s^2} + E[\log D]\Big],

computed by Gauss-Hermite quadrature over the gate's guide factor
(:meth:`~pyrocompress.priors.LayerGuide.gate_quadrature`), deterministic and exact to the
quadrature's precision; the KL of the gate is unchanged. The ELBO stays a sum of the
gate's analytic KLs, this one, and the expected log-likelihood.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints, register_kl

from pyrocompress.distributions import IsotropicNormal

__all__ = ["GUIDES", "GateConditionalNormal", "effective_factor", "factor_moments"]

#: Guide families of :func:`~pyrocompress.bayesianize`'s ``guide`` argument: the weights
#: independent of the gate, or Gaussian given it (this module).
GUIDES = ("mean-field", "conditional")


class GateConditionalNormal(TorchDistribution):
    r"""The weights' guide factor :math:`q(\tilde w \mid g)` of the module docstring.

    Parameters
    ----------
    loc, log_var
        :math:`\mu` and :math:`\log v`, shaped as the weights (the law at :math:`g = 1`).
    coupling
        :math:`r` expanded to the weights' shape.
    gate
        The gate expanded to the weights' shape, as sampled by the guide in this step
        (the law is conditional on it), or ``None`` where no gate was drawn.
    quadrature
        ``(nodes, weights)`` of the gate's guide law, each ``[..., K]`` and broadcastable
        to the weights' shape plus ``K``: :math:`E f(g) \approx \sum_k \omega_k f(g_k)`.
    """

    arg_constraints: dict = {}
    support: constraints.Constraint = constraints.real
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        log_var: torch.Tensor,
        coupling: torch.Tensor,
        gate: torch.Tensor | None,
        quadrature: tuple[torch.Tensor, torch.Tensor],
        group_coupling: torch.Tensor | None = None,
    ):
        self.loc_at_one, self.log_var = loc, log_var
        self.coupling = coupling
        #: :math:`r` once per group, ``[G]`` (for per-example factors under the local
        #: reparametrisation)
        self.group_coupling = coupling if group_coupling is None else group_coupling
        self.gate = gate
        self.quadrature = quadrature
        super().__init__(loc.shape, validate_args=False)

    def _given(self, gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = (1.0 - self.coupling) + self.coupling * gate.square()
        return gate * self.loc_at_one / d, self.log_var.exp() / d

    @property
    def mean(self) -> torch.Tensor:  # pyright: ignore[reportIncompatibleMethodOverride]
        """The conditional mean given the drawn gate (at :math:`g = 1` without one)."""
        return self.loc_at_one if self.gate is None else self._given(self.gate)[0]

    @property
    def variance(self) -> torch.Tensor:  # pyright: ignore[reportIncompatibleMethodOverride]
        """The conditional variance given the drawn gate (at :math:`g = 1` without one)."""
        return self.log_var.exp() if self.gate is None else self._given(self.gate)[1]

    def _conditional(self) -> dist.Normal:
        if self.gate is None:
            raise ValueError(
                "GateConditionalNormal needs the gate drawn in this step to sample or score "
                "the weights"
            )
        m, v = self._given(self.gate)
        return dist.Normal(m, v.sqrt())

    def rsample(self, sample_shape=()) -> torch.Tensor:
        """Draw the weights given the drawn gate (reparametrised)."""
        return self._conditional().rsample(torch.Size(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Return the log density of ``value`` given the drawn gate."""
        return self._conditional().log_prob(value)

    def expand(self, batch_shape, _instance=None):
        """Not needed by the guides (the factor is built at the weights' shape)."""
        raise NotImplementedError("GateConditionalNormal is built at its full shape")

    def expectation(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        r"""Return :math:`E_{q(g)} f(g)` by the gate's quadrature, elementwise."""
        nodes, weights = self.quadrature
        return (fn(nodes) * weights).sum(-1)

    def factor_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Return :math:`E\varphi` and :math:`E\varphi^2`, :math:`\varphi = g^2 / D(g)`."""
        return factor_moments(*self.quadrature, self.coupling)


def factor_moments(
    nodes: torch.Tensor, weights: torch.Tensor, coupling: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return :math:`E\varphi` and :math:`E\varphi^2` by the quadrature ``(nodes, weights)``.

    ``nodes`` and ``weights`` end in the quadrature dimension ``K``; ``coupling`` broadcasts
    against them without it.
    """
    phi = effective_factor(nodes, coupling.unsqueeze(-1))
    return (phi * weights).sum(-1), (phi.square() * weights).sum(-1)


def effective_factor(gate: torch.Tensor, coupling: torch.Tensor) -> torch.Tensor:
    r"""Return :math:`\varphi = g^2 / ((1 - r) + r g^2)`, the gate's multiplier of the weights."""
    g2 = gate.square()
    return g2 / ((1.0 - coupling) + coupling * g2)


@register_kl(GateConditionalNormal, IsotropicNormal)
def _kl_conditional_isotropic(q: GateConditionalNormal, p: IsotropicNormal) -> torch.Tensor:
    if p.loc_value != 0.0:
        raise NotImplementedError("the conditional weights' KL is for a prior centred at 0")
    s2 = p.scale_value**2
    r = q.coupling.unsqueeze(-1)

    def d(g: torch.Tensor) -> torch.Tensor:
        return (1.0 - r) + r * g.square()

    inv_d = q.expectation(lambda g: 1.0 / d(g))
    g2_d2 = q.expectation(lambda g: g.square() / d(g).square())
    log_d = q.expectation(lambda g: torch.log(d(g)))
    loc = q.loc_at_one
    return 0.5 * (
        (q.log_var.exp() * inv_d + loc.square() * g2_d2) / s2
        - 1.0
        - q.log_var
        + torch.log(torch.as_tensor(s2, dtype=loc.dtype))
        + log_d
    )
