r"""Posterior analysis: inclusion probabilities, log-alpha, SNR, effective weights, bits.

Everything here reads the guide's parameters (the fitted variational posterior); nothing
is sampled. For a layer with gate :math:`g` per group and non-centred weights
:math:`\tilde w \sim N(\mu, \sigma^2)` under the guide, the effective weight
:math:`w = g\tilde w` has

.. math::

    E[w] = E[g]\,\mu, \qquad
    \mathrm{Var}[w] = E[g^2](\sigma^2 + \mu^2) - E[g]^2\mu^2,

which for the group normal-Jeffreys guide is :cite:t:`louizos2017bayesian`'s
:math:`\mu_z^2\sigma_w^2 + \sigma_z^2\mu_w^2 + \sigma_z^2\sigma_w^2`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pyro.poutine as poutine
import torch

from pyrocompress.analysis import diagnostics
from pyrocompress.constraints import check
from pyrocompress.infer.information import glm_layer
from pyrocompress.infer.mcmc import site_variable
from pyrocompress.nn import BayesianLayer, BayesianNetwork
from pyrocompress.priors import Prior
from pyrocompress.priors.relevance import relevance_given_layer, relevance_given_weights
from pyrocompress.rng import DEFAULT_THREADS, intra_op_threads, seeded

if TYPE_CHECKING:
    from pyrocompress.priors import LayerGuide

__all__ = ["BitPrecision", "Posterior", "mantissa_bits", "exponent_bits"]

_MAX_MANTISSA = 23


def mantissa_bits(variance: torch.Tensor) -> torch.Tensor:
    r"""Return the mantissa bits each weight needs given its posterior variance.

    :cite:t:`louizos2017bayesian{§4}`: the largest :math:`t \in \{1, \dots, 23\}` whose unit
    round-off :math:`u_t = \tfrac12 2^{1-t}` still exceeds :math:`2V`, i.e. the number of
    such :math:`t` (0 when even :math:`u_1 = 1/2` is below the noise).

    Parameters
    ----------
    variance
        Posterior variances :math:`V` of the weights, any shape.

    Returns
    -------
    Tensor
        Integer bit counts, the shape of ``variance``.
    """
    t = torch.arange(1, _MAX_MANTISSA + 1, dtype=torch.float64, device=variance.device)
    unit_round_off = 0.5 * 2.0 ** (1.0 - t)
    return (2.0 * variance.double().unsqueeze(-1) < unit_round_off).sum(-1)


def exponent_bits(max_abs: float) -> int:
    r"""Return the exponent bits for weights whose largest magnitude is ``max_abs``.

    :cite:t:`louizos2017bayesian{§4}`: :math:`\lceil \log_2(\log_2 m + 1) + 1 \rceil` for
    :math:`m = \max|w|`, with the inner argument clamped at 1, so that at least one bit is
    used when :math:`m < 1`.

    Parameters
    ----------
    max_abs
        The largest magnitude :math:`m` of the weights.

    Returns
    -------
    int
        The number of exponent bits, at least 1.
    """
    inner = max(math.log2(max(max_abs, 1e-30)) + 1.0, 1.0)
    return max(1, math.ceil(math.log2(inner) + 1.0))


#: The estimators of :meth:`Posterior.inclusion_probabilities`.
_ESTIMATORS = ("auto", "draws", "normal-means")
#: Points of the normal-means quadrature in log g (its grid spans the prior's left tail).
_NORMAL_MEANS_GRID = 512


@dataclass(frozen=True)
class BitPrecision:
    """Fixed-point precision of one layer's kept weights: sign + exponent + mantissa.

    Parameters
    ----------
    mantissa
        Mantissa bits (:func:`mantissa_bits`).
    exponent
        Exponent bits (:func:`exponent_bits`).

    Examples
    --------
    >>> import pyrocompress as pc
    >>> bits = pc.BitPrecision(mantissa=7, exponent=3)
    >>> bits.total  # sign + exponent + mantissa
    11

    :meth:`Posterior.bit_precision` gives one per layer, from the posterior variances:

    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> precision = pc.Posterior(bnn).bit_precision()
    >>> list(precision), all(isinstance(b, pc.BitPrecision) for b in precision.values())
    (['1', '3'], True)
    """

    mantissa: int
    exponent: int

    @property
    def total(self) -> int:
        """Total bits per weight: one sign bit, the exponent and the mantissa."""
        return 1 + self.exponent + self.mantissa


def _has_gate_density(prior: Prior) -> bool:
    """Whether ``prior`` gives its gate's conditional density (:meth:`Prior.gate_log_prior`)."""
    return type(prior).gate_log_prior is not Prior.gate_log_prior


def _has_global_scale(prior: Prior) -> bool:
    """Whether ``prior`` gives its gate's density given a global scale, and the scale's.

    (:meth:`Prior.global_scale_densities`: the horseshoes, whose gates have proper priors.)
    """
    return type(prior).global_scale_densities is not Prior.global_scale_densities


class Posterior:
    """Posterior summaries of a fitted :class:`~pyrocompress.nn.BayesianNetwork`.

    Every method returns a dict from layer name to a tensor, in network order.

    Parameters
    ----------
    bnn
        The network; its guide's parameters are read when a method is called, so a
        ``Posterior`` follows further fitting.

    Raises
    ------
    TypeError
        If ``bnn`` is not a :class:`~pyrocompress.nn.BayesianNetwork`.

    Examples
    --------
    Fit a small classifier for two epochs on made-up data, then summarise its posterior
    (a group of a Linear layer is one of its inputs):

    >>> import torch
    >>> import pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-horseshoe", seed=0)
    >>> history = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
    >>> post = pc.Posterior(bnn)
    >>> post.layer_names
    ['1', '3']
    >>> pips = post.inclusion_probabilities()
    >>> {name: tuple(p.shape) for name, p in pips.items()}
    {'1': (4,), '3': (8,)}
    >>> all(bool(((p > 0) & (p < 1)).all()) for p in pips.values())
    True
    >>> {name: tuple(m.shape) for name, m in post.weight_mean().items()}
    {'1': (8, 4), '3': (2, 8)}
    >>> post.bit_precision()  # doctest: +ELLIPSIS
    {'1': BitPrecision(mantissa=..., exponent=...), '3': BitPrecision(...)}
    """

    def __init__(self, bnn: BayesianNetwork):
        if not isinstance(bnn, BayesianNetwork):
            raise TypeError(
                f"Posterior expects the BayesianNetwork returned by pyrocompress.bayesianize, "
                f"got {type(bnn).__name__}"
            )
        self.bnn = bnn
        self._layers = bnn.bayesian_layers()

    @property
    def layer_names(self) -> list[str]:
        """Names of the Bayesian layers, in network order."""
        return list(self._layers)

    def __repr__(self) -> str:
        layers = ", ".join(f"{n!r}: {m.spec.num_groups} groups" for n, m in self._layers.items())
        priors = "+".join(dict.fromkeys(p.key for p in self.bnn.distinct_priors()))
        return f"Posterior({priors}; {layers})"

    def to_dataframe(self, masks: dict[str, torch.Tensor] | None = None) -> Any:
        """Return one row per group: its layer, name, PIP, log α, SNR and (with masks) kept.

        Parameters
        ----------
        masks
            Boolean group masks per layer (True = kept), e.g. ``prune(...).plan.masks``;
            the ``kept`` column is left out without them.

        Returns
        -------
        pandas.DataFrame
            Columns ``layer``, ``group`` (index in the layer), ``name`` (the feature name
            for the groups of the first layer's inputs when the network has them, else
            ``layer[group]``), ``pip`` (when every prior has inclusion probabilities,
            :meth:`inclusion_probabilities`), ``log_alpha`` (:meth:`log_alpha`), ``snr``
            (group SNR, :meth:`snr`) and ``kept``.

        Examples
        --------
        >>> import torch, pyrocompress as pc
        >>> g = torch.Generator().manual_seed(0)
        >>> X = torch.randn(64, 3, generator=g)
        >>> bnn = pc.bayesianize(
        ...     pc.mlp([3, 4, 2]), "group-nj", feature_names=["a", "b", "c"], seed=0
        ... )
        >>> _ = pc.fit(bnn, (X, (X[:, 0] > 0).long()), epochs=2, tol=None, progress=False)
        >>> table = pc.Posterior(bnn).to_dataframe()
        >>> list(table.columns), table["name"].tolist()[:4]
        (['layer', 'group', 'name', 'pip', 'log_alpha', 'snr'], ['a', 'b', 'c', '3[0]'])
        """
        import pandas as pd

        log_alpha, snr = self.log_alpha(), self.snr("group")
        with_pip = all(p.has_inclusion_probabilities for p in self.bnn.distinct_priors())
        pips = self.inclusion_probabilities() if with_pip else None
        features = self.bnn.feature_names
        first = self.layer_names[0]
        rows = []
        for layer, spec_layer in self._layers.items():
            n = int(log_alpha[layer].numel())
            named = (
                layer == first
                and features is not None
                and not spec_layer.groups_on_outputs
                and len(features) == n
            )
            for g in range(n):
                row: dict[str, Any] = {
                    "layer": layer,
                    "group": g,
                    "name": features[g] if named and features is not None else f"{layer}[{g}]",
                }
                if pips is not None:
                    row["pip"] = float(pips[layer][g])
                row["log_alpha"] = float(log_alpha[layer][g])
                row["snr"] = float(snr[layer][g])
                if masks is not None:
                    row["kept"] = bool(masks[layer][g])
                rows.append(row)
        return pd.DataFrame(rows)

    def _each(self, method: str, layers: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Return ``guide.<method>()`` of every layer (or of ``layers``).

        Each layer's guide family (its prior's) answers for it.
        """
        names = self.layer_names if layers is None else layers
        with torch.no_grad():
            return {
                name: getattr(self.bnn.guide[name], method)().detach().clone() for name in names
            }

    def to_datatree(
        self,
        X: torch.Tensor,
        y: torch.Tensor | None = None,
        *,
        num_samples: int = 200,
        all_weights: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Return this posterior as an ArviZ 1.x ``xarray.DataTree``.

        See :func:`pyrocompress.analysis.diagnostics.to_datatree` for the groups and
        keyword arguments (``history``, ``seed``).

        Parameters
        ----------
        X, y
            Data for the log-likelihood and posterior-predictive groups; without ``y``
            (new inputs), the posterior predictive at ``X`` alone (no log-likelihood,
            observed data or sample stats).
        num_samples
            Number of draws from the guide.
        all_weights
            Include every weight, not only the gates and first-layer weights.
        **kwargs
            Passed on (``history``, ``seed``).

        Returns
        -------
        xarray.DataTree
            The ArviZ data.
        """
        return diagnostics.to_datatree(
            self, X, y, num_samples=num_samples, all_weights=all_weights, **kwargs
        )

    def _each_layer(
        self, fn: Callable[[BayesianLayer, LayerGuide], torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Return ``fn(layer, guide)`` of every layer, detached, by layer name."""
        with torch.no_grad():
            return {
                name: fn(layer, self.bnn.guide[name]).detach().clone()
                for name, layer in self._layers.items()
            }

    # ------------------------------------------------------------------- group level
    def log_alpha(self) -> dict[str, torch.Tensor]:
        r"""Return the per-group :math:`\log\alpha`, the log relative posterior variance of a gate.

        Group normal-Jeffreys: :math:`\log\sigma_z^2 - \log\mu_z^2`
        :cite:p:`louizos2017bayesian{§3.1}`; horseshoe: :math:`\log(e^{v} - 1)` with
        :math:`v = \mathrm{Var}\log g`; spike-and-slab: :math:`\log((1-\pi)/\pi)`; Gaussian (no
        gate): the group's :math:`\log(\sum \mathrm{Var}\,w / \sum (E w)^2)`. Large values mark
        groups to prune.

        Returns
        -------
        dict of str to Tensor
            One value per group, by layer name.
        """
        return self._each("group_log_alpha")

    def dropout_rates(self) -> dict[str, torch.Tensor]:
        r"""Return the Gaussian-dropout rate of each group, :math:`p = \alpha / (1 + \alpha)`.

        Returns
        -------
        dict of str to Tensor
            One rate per group, by layer name.
        """
        return {k: torch.sigmoid(v) for k, v in self.log_alpha().items()}

    def information(self) -> dict[str, torch.Tensor]:
        """Return each group's mean Fisher information per weight, as recorded by ``fit``.

        See :mod:`pyrocompress.infer.information`.

        Returns
        -------
        dict of str to Tensor
            One value per group (NaN where none was recorded), by layer name.
        """
        return {name: self.bnn.guide[name].information.detach().clone() for name in self._layers}

    def relevance_thresholds(self) -> dict[str, torch.Tensor]:
        r"""Return the gate :math:`t_g = 1/(s\sqrt{h_g})` above which each group is relevant.

        See :meth:`inclusion_probabilities`.

        Returns
        -------
        dict of str to Tensor
            One threshold per group, by layer name.
        """
        return self._each("relevance_threshold")

    def inclusion_probabilities(
        self,
        layers: list[str] | None = None,
        *,
        draws: Any = None,
        num_samples: int = 256,
        seed: int = 0,
        estimator: str = "auto",
        threads: int | None = DEFAULT_THREADS,
    ) -> dict[str, torch.Tensor]:
        r"""Return the posterior inclusion probability (PIP) of each group.

        One definition for every prior with a gate: the posterior probability that the
        group is *relevant*, that the prior leaves more than half of its weights' signal,

        .. math::

            \mathrm{PIP}_g = P\big(\kappa_g < \tfrac12 \mid \mathcal D\big)
                = P\big(|g_g| > t_g \mid \mathcal D\big), \qquad
            \kappa_g = \frac{1}{1 + g_g^2 s^2 h_g}, \quad t_g = \frac{1}{s\sqrt{h_g}},

        with :math:`g_g` the group's gate, :math:`s` the prior scale of its non-centred
        weights and :math:`h_g` the mean Fisher information per weight of the group
        (:meth:`information`). :math:`\kappa_g` is the shrinkage factor of
        :cite:t:`carvalho2010horseshoe{eq. 2}` and :cite:t:`piironen2017sparsity{eq. 2.5}`: the
        posterior mean of a weight is :math:`(1 - \kappa)` times its maximum-likelihood
        estimate, and :math:`\sum (1 - \kappa)` is the effective number of parameters;
        :math:`\kappa < \tfrac12` (Carvalho et al.'s selection rule) is the point where
        the prior variance :math:`g^2 s^2` exceeds the sampling variance :math:`1/h` of
        the estimate. For linear regression :math:`h_j = \sum_n x_{nj}^2/\sigma^2`,
        so :math:`t_j` is the coefficient's standard error in prior-scale units. The
        threshold comes from the data, not from a tuning constant.

        It is estimated from posterior draws of the group's weights :math:`w_g` and the
        layer's global variables :math:`\theta`, as the average of the exact conditional
        probability :math:`P(|g_g| > t_g \mid w_g, \theta)` (the gate depends on the data
        only through them; :mod:`pyrocompress.priors.relevance`): the guide's draws by
        default, or the draws of another sampler (``draws``: NUTS), so SVI and NUTS are
        summarised by one functional. This Rao-Blackwellised estimate has the expectation
        of the fraction of draws with :math:`|g_g| > t_g` under the exact posterior and a
        smaller variance, and under a mean-field guide it reads the effective weights,
        which the data identify, instead of the guide's factor of the gate, which the
        non-centred family leaves near its prior for groups the data switch off.
        **Generalised linear models** (a network that is one ``Linear`` layer with one
        output: :func:`~pyrocompress.infer.glm_layer`; each input its own group) with a
        proper gate prior (the horseshoes) are estimated in *normal-means* form by
        default: ``fit`` records the one-step estimate :math:`\hat b_j` of each weight
        given the others at their posterior means, whose likelihood is taken as
        :math:`N(\hat b_j; w_j, 1/h_j)` (for a Gaussian likelihood of known noise this is
        the exact conditional likelihood of :math:`w_j` given the others), so the weight
        is integrated out in closed form and :math:`P(|g_j| > t_j \mid \hat b)` is one
        quadrature over the gate and the global scale (a regularised horseshoe's slab
        width is averaged over the guide's draws;
        :mod:`pyrocompress.infer.information`, :mod:`pyrocompress.priors.relevance`). It
        leaves out the guide's approximation of the weights, which a mean-field guide
        makes too wide for every coefficient under a global scale (it cannot trade the
        local scale against the global one): on the linear problems of
        ``benchmarks/inference/svi_vs_nuts.py`` its PIPs are within 0.04 of exact
        posterior draws where the guide's draws were 0.06 to 0.64 off
        (docs/results/svi-vs-nuts.md). It conditions on the other weights' posterior
        means, so it is an approximation where the inputs are strongly correlated.
        Spike-and-slab: :math:`\pi_g = q(\gamma_g = 1)` :cite:p:`saha2024efficient` for
        groups whose slab the data can see (:math:`s^2 h_g > 1`), exactly.
        Log :math:`\alpha` and the dropout rate (:meth:`log_alpha`,
        :meth:`dropout_rates`) measure the gate's relative variance, not its size, and
        are no probabilities of inclusion.

        Parameters
        ----------
        layers
            Names of the layers to report; all when omitted.
        draws
            Posterior draws of the model's latent sites instead of the guide: a mapping
            from site name (``"0.local_a"``) to a tensor or array with the draws along
            its leading dimension(s) (chains and draws of one site are flattened), or
            the DataTree of :func:`pyrocompress.infer.run_nuts`.
        num_samples
            Number of guide draws (without ``draws``); the Monte Carlo standard error of
            each probability is at most :math:`0.5/\sqrt{\text{num\_samples}}` (0.031 by
            default). The cost grows with the draws times the groups: about 20 s for the
            784 input groups of LeNet-300-100 at 500 draws on one CPU core.
        seed
            Seed of the guide draws (the caller's random state is restored).
        estimator
            ``"auto"`` (default): ``"normal-means"`` where it applies (a generalised
            linear model with one output and a horseshoe prior, recorded by ``fit``, no
            ``draws``; ``num_samples`` and ``seed`` then only draw a regularised
            horseshoe's slab width), else
            ``"draws"``: the Rao-Blackwellised average over the guide's draws (or
            ``draws``). ``"normal-means"`` raises where it does not apply.
        threads
            torch intra-op threads while it runs, torch's setting restored after (the
            library's thread policy, :func:`pyrocompress.rng.intra_op_threads`: one; its
            many small operations gain little from more threads and lose when another
            process shares the cores). ``None`` keeps torch's setting.

        Returns
        -------
        dict of str to Tensor
            One probability per group, by layer name.

        Raises
        ------
        ValueError
            For a layer with the Gaussian prior (no inclusion variables), a network
            whose Fisher information was never recorded, an unknown ``estimator``, or
            ``"normal-means"`` where it does not apply (the message says why).
        """
        if estimator not in _ESTIMATORS:
            raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
        names = self.layer_names if layers is None else layers
        # the library's thread policy (pyrocompress.rng.intra_op_threads): many small ops,
        # which more threads slow down as soon as another process shares the cores
        with intra_op_threads(threads):
            return self._inclusion_probabilities(names, draws, num_samples, seed, estimator)

    def _inclusion_probabilities(
        self, names: list[str], draws: Any, num_samples: int, seed: int, estimator: str
    ) -> dict[str, torch.Tensor]:
        out = {}
        for name in names:
            layer, guide = self._layers[name], self.bnn.guide[name]
            if not layer.prior.has_inclusion_probabilities:
                guide.gate_exceedance()  # raises, naming the alternatives
            with torch.no_grad():
                threshold = guide.relevance_threshold().double().cpu()
                why = self._normal_means_unavailable(name, draws)
                if estimator == "normal-means" and why is not None:
                    raise ValueError(f"estimator='normal-means' does not apply: {why}")
                if draws is None and not _has_gate_density(layer.prior):
                    out[name] = guide.gate_exceedance(threshold).detach().float().cpu()
                    continue
                if estimator != "draws" and why is None:
                    out[name] = self._normal_means(name, threshold, num_samples, seed)
                    continue
                total = torch.zeros_like(threshold)
                count = 0
                for values in self._layer_draws(name, draws, num_samples, seed):
                    total += self._relevance(name, values, threshold).sum(0)
                    count += next(iter(values.values())).shape[0]
            out[name] = (total / count).float()
        return out

    def _normal_means_unavailable(self, name: str, draws: Any) -> str | None:
        """Why the normal-means estimator does not apply to layer ``name``, or ``None``."""
        layer = self._layers[name]
        if draws is not None:
            return "it reads the fit's own estimates, not draws"
        if not _has_global_scale(layer.prior):
            return (
                f"the {layer.prior.key} prior's gate has no proper density with its global "
                "scale (the horseshoes have one)"
            )
        recorded = bool(torch.isfinite(self.bnn.guide[name].newton_square).all())
        if glm_layer(self.bnn) != name or not recorded:
            return (
                f"layer {name!r} has no one-step estimates: fit records them for a network "
                "that is one Linear layer (pyrocompress.infer.glm_layer)"
            )
        spec = layer.spec
        if spec.weight_shape[0] != 1 or spec.column_groups is not None:
            return (
                f"layer {name!r} has groups of several weights (outputs {spec.weight_shape[0]}"
                + (", column groups" if spec.column_groups is not None else "")
                + "), whose one-step estimates are not independent given the others; the "
                "form applies to one weight per group (one output, no column groups)"
            )
        return None

    def _normal_means(
        self, name: str, threshold: torch.Tensor, num_samples: int, seed: int
    ) -> torch.Tensor:
        """Return the normal-means inclusion probabilities of layer ``name`` (``[G]``).

        The global scale is integrated out by quadrature; other global variables (a
        regularised horseshoe's slab width) are averaged over ``num_samples`` guide draws.
        """
        layer = self._layers[name]
        prior, spec = layer.prior, layer.spec
        squares = self.bnn.guide[name].newton_square.double().cpu()
        # groups the data do not inform (h = 0: removed, or a constant column) are not
        # relevant, and carry no evidence on the global scale: left out of the quadrature
        informed = torch.isfinite(threshold) & (threshold > 0)
        total = torch.zeros_like(threshold)
        if not bool(informed.any()):
            return total.float()
        t = threshold[informed]
        beta = squares[informed] / (2.0 * prior.layer_weight_scale(spec) ** 2)
        count = 0
        for values in self._layer_draws(name, None, num_samples, seed):
            upper = prior.gate_log_upper(spec, values)
            densities = prior.global_scale_densities(spec, values)
            assert densities is not None  # (_normal_means_unavailable)
            rows = 1 if upper is None else int(upper.shape[0])
            pip = relevance_given_layer(
                *densities, beta.expand(rows, -1), 1.0, t, upper=upper, noise=t.square(),
                grid=_NORMAL_MEANS_GRID,
            )  # fmt: skip
            total[informed] += pip.sum(0)
            count += rows
            if upper is None:  # nothing of the draws is read
                break
        return (total / count).float()

    def relevance(self, name: str, values: dict[str, torch.Tensor]) -> torch.Tensor:
        r"""Return :math:`P(|g| > t \mid w, \theta)` of each group for each draw of a layer.

        The conditional probabilities whose average over posterior draws is the inclusion
        probability (:meth:`inclusion_probabilities`;
        :mod:`pyrocompress.priors.relevance`): for a prior whose gate has no density
        (spike-and-slab), the indicators :math:`[|g| > t]`.

        Parameters
        ----------
        name
            The layer.
        values
            Draws of the layer's sites by part name (``"weight"``, ``"local_a"``, ...),
            the draws along the first dimension.

        Returns
        -------
        Tensor
            ``[S, G]``, float64.
        """
        threshold = self.bnn.guide[name].relevance_threshold().double().cpu()
        return self._relevance(name, values, threshold)

    def _relevance(
        self, name: str, values: dict[str, torch.Tensor], threshold: torch.Tensor
    ) -> torch.Tensor:
        layer = self._layers[name]
        prior, spec = layer.prior, layer.spec
        num = values["weight"].shape[0]
        gates = torch.stack(
            [
                cast(torch.Tensor, prior.gate(spec, {k: v[i] for k, v in values.items()}))
                for i in range(num)
            ]
        ).double()  # [S, G]  (fmt: skip)
        log_prior = prior.gate_log_prior(spec, values)
        if log_prior is None:
            return (gates.abs() > threshold).double()
        densities = prior.global_scale_densities(spec, values)
        w2 = torch.stack([spec.group_sum(w.double().square()) for w in values["weight"]])
        beta = w2 / (2.0 * prior.layer_weight_scale(spec) ** 2)
        size = spec.group_sum(torch.ones(spec.weight_shape, dtype=torch.float64))
        if spec.has_bias and spec.bias_gated:
            beta = beta + values["bias"].double().square() / (2.0 * prior.bias_scale**2)
            size = size + 1.0
        upper = prior.gate_log_upper(spec, values)
        beta = gates.square() * beta
        if densities is not None:  # the global scale integrated out, given the weights
            return relevance_given_layer(*densities, beta, size, threshold, upper=upper)
        return relevance_given_weights(log_prior, beta, size, threshold, upper=upper)

    def _layer_draws(
        self, name: str, draws: Any, num_samples: int, seed: int
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Yield draws of the layer's sites by part name, in chunks (draws first)."""
        layer = self._layers[name]
        spec = layer.spec
        like = torch.zeros((), dtype=torch.float64)
        parts = layer.prior.site_priors(spec, like)
        if draws is not None:
            posterior = draws["posterior"].to_dataset() if hasattr(draws, "children") else None
            values = {}
            for part, prior in parts.items():
                if part == "bias" and not spec.bias_gated:
                    continue  # never read: only gated biases enter the relevance
                site = spec.site(part)
                if posterior is not None and site_variable(site) in posterior:
                    raw = posterior[site_variable(site)].values
                elif posterior is None and site in draws:
                    raw = draws[site]
                else:
                    raise ValueError(f"draws has no values of site {site!r}")
                value = torch.as_tensor(raw).double().cpu()
                event = len(prior.event_shape)  # the draws run over the leading dimensions
                values[part] = value.reshape(-1, *value.shape[value.dim() - event :])
            yield values
            return
        check("num_samples", num_samples)
        guide = self.bnn.guide[name]
        sites = {part: spec.site(part) for part in parts}
        chunk = max(1, min(num_samples, 2**22 // max(1, math.prod(spec.weight_shape))))
        with seeded(seed):
            if guide.weights == "mean-field":  # independent sites: each drawn in one call
                nodes: dict[str, Any] = dict(poutine.trace(guide).get_trace().nodes)
                fns = {p: nodes[s]["fn"] for p, s in sites.items() if s in nodes}
                for start in range(0, num_samples, chunk):
                    size = (min(chunk, num_samples - start),)
                    yield {p: fn.sample(size).double().cpu() for p, fn in fns.items()}
                return
            # traced one draw at a time: the conditional weights depend on the gate drawn
            # before them
            for start in range(0, num_samples, chunk):
                rows = []
                for _ in range(min(chunk, num_samples - start)):
                    nodes = dict(poutine.trace(guide).get_trace().nodes)
                    rows.append({p: nodes[s]["value"] for p, s in sites.items() if s in nodes})
                yield {p: torch.stack([r[p] for r in rows]).double().cpu() for p in rows[0]}

    def snr(self, level: str = "group") -> dict[str, torch.Tensor]:
        r"""Return the signal-to-noise ratio :math:`|E w| / \mathrm{sd}\,w` of effective weights.

        Parameters
        ----------
        level
            ``"weight"``: per weight. ``"group"``:
            :math:`\lVert E w_g \rVert_2 / (\sum_j \mathrm{Var}\,w_{gj})^{1/2}` over the
            weights of each group.

        Returns
        -------
        dict of str to Tensor
            The ratios, by layer name.

        Raises
        ------
        ValueError
            If ``level`` is neither ``"group"`` nor ``"weight"``.
        """
        mean, var = self.weight_mean(), self.weight_var()
        if level == "weight":
            return {k: mean[k].abs() / var[k].sqrt() for k in mean}
        if level == "group":
            return {
                k: self._layers[k].spec.group_sum(mean[k] ** 2).sqrt()
                / self._layers[k].spec.group_sum(var[k]).sqrt()
                for k in mean
            }
        raise ValueError(f"level must be 'group' or 'weight', got {level!r}")

    # ------------------------------------------------------------------ weight level
    @staticmethod
    def _moments(
        layer: BayesianLayer, guide: LayerGuide, conditional: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior mean and variance of a layer's effective weights."""
        return guide.effective_moments(conditional=conditional)

    def weight_mean(self, *, conditional: bool = False) -> dict[str, torch.Tensor]:
        """Return the posterior mean of the effective weights ``E[g W~]``.

        Parameters
        ----------
        conditional
            Given that every group is kept (only spike-and-slab differs).

        Returns
        -------
        dict of str to Tensor
            The means, shaped as each layer's weight, by layer name.
        """
        return self._each_layer(lambda layer, g: self._moments(layer, g, conditional)[0])

    def weight_var(self, *, conditional: bool = False) -> dict[str, torch.Tensor]:
        """Return the posterior variance of the effective weights.

        Parameters
        ----------
        conditional
            Given that every group is kept (only spike-and-slab differs).

        Returns
        -------
        dict of str to Tensor
            The variances, shaped as each layer's weight, by layer name.
        """
        return self._each_layer(
            lambda layer, g: self._moments(layer, g, conditional)[1].clamp_min(0.0)
        )

    def weight_log_alpha(self) -> dict[str, torch.Tensor]:
        r"""Return the per-weight :math:`\log\alpha = \log(\mathrm{Var}\,w / (E w)^2)` (Sparse VD).

        Returns
        -------
        dict of str to Tensor
            The values, shaped as each layer's weight, by layer name.
        """
        snr = self.snr("weight")
        return {k: -2.0 * v.clamp_min(1e-30).log() for k, v in snr.items()}

    def bit_precision(
        self, masks: dict[str, torch.Tensor] | None = None
    ) -> dict[str, BitPrecision]:
        """Return each layer's fixed-point precision from the posterior variance.

        :cite:t:`louizos2017bayesian{§4}`. Mantissa bits: the mean over the layer's kept weights
        of :func:`mantissa_bits` of their posterior variance (given inclusion), rounded
        up. Exponent bits: :func:`exponent_bits` of the largest kept posterior-mean
        magnitude.

        Parameters
        ----------
        masks
            Boolean group masks (True = kept) per layer; all groups when omitted.

        Returns
        -------
        dict of str to BitPrecision
            The precision, by layer name.
        """
        means = self._kept(self.weight_mean(conditional=True), masks)
        variances = self._kept(self.weight_var(conditional=True), masks)
        out = {}
        for name in self._layers:
            v, m = variances[name], means[name]
            if v.numel() == 0:
                out[name] = BitPrecision(0, 1)
                continue
            mant = int(math.ceil(mantissa_bits(v).double().mean().item()))
            out[name] = BitPrecision(mant, exponent_bits(m.abs().max().item()))
        return out

    def _kept(
        self, values: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None
    ) -> dict[str, torch.Tensor]:
        """Return each layer's per-weight ``values`` at its kept weights, flattened."""
        out = {}
        for name, layer in self._layers.items():
            keep = torch.ones(layer.spec.num_groups, dtype=torch.bool)
            if masks is not None and name in masks:
                keep = masks[name].to(torch.bool).cpu()
            full = layer.spec.expand_groups(keep).expand(layer.spec.weight_shape)
            out[name] = values[name].cpu()[full]
        return out
