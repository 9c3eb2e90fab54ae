r"""Moment propagation for Gaussian mean-field networks, in closed form, without sampling.

It computes the mean and variance of every activation of a Gaussian mean-field network.

Under the guide the weights of a :class:`~pyrocompress.Gaussian`-prior network are
independent Gaussians, :math:`w \sim \mathcal N(M, S)`. Propagating the first two moments
of every unit through the layers — extended variational inference :cite:p:`dera2019extended` (the
mechanism behind self-compression in :cite:t:`carannante2020self{§3}`) and deterministic variational
inference :cite:p:`wu2019deterministic{§3}` — gives

* a sampling-free training objective: the ELBO with the expected log-likelihood computed
  from the output moments (:class:`MomentELBO`, ``fit(..., objective="moments")``);
* sampling-free predictive means and variances (:func:`predictive_moments`);
* unit scores for self-compression (:func:`unit_scores`).

By default the propagation keeps one mean and one variance per unit (a diagonal
covariance: units of a layer are treated as uncorrelated, the approximation of Wu et al.'s
diagonal variant); ``covariance="full"`` keeps each example's full covariance matrix
across the units of a layer, as extended variational inference does, for networks of
Linear layers and ReLUs (below):

Linear / Conv2d, input :math:`(m, v)`, weights :math:`(M, S)`, bias :math:`(m_b, s_b)`
    :math:`\mathrm E[a] = M m + m_b`, :math:`\mathrm{Var}[a] = (M^2 + S)\,v + S\,m^2 + s_b`
    — exact for independent inputs and weights :cite:p:`wu2019deterministic{eq. 9}`.
ReLU
    rectified-Gaussian moments, exact for a Gaussian input: with :math:`\alpha = m/\sqrt v`,
    :math:`\mathrm E = m\Phi(\alpha) + \sqrt v\,\varphi(\alpha)` and
    :math:`\mathrm E[y^2] = (m^2 + v)\Phi(\alpha) + m\sqrt v\,\varphi(\alpha)`
    :cite:p:`frey1999variational`; :cite:p:`wu2019deterministic{eq. 10}`.
AvgPool2d
    a linear map: the mean pools, and the variance pools and is divided by the divisor
    (the window size) — exact for uncorrelated inputs, so exact within the diagonal
    approximation (neighbouring outputs of a convolution share its weights and are
    correlated; the diagonal propagation drops that, here as everywhere).
MaxPool2d
    approximate: the maximum of a window taken pairwise with :cite:t:`clark1961greatest`'s
    moment-matched maximum of two independent Gaussians, each intermediate maximum treated as
    Gaussian.
Flatten, Dropout (evaluation: identity)
    reshape / identity.

With ``covariance="full"`` (input covariance :math:`\Sigma`):

Linear
    :math:`\mathrm{Cov}[a] = M\Sigma M^\top + \mathrm{diag}\big(S(\mathrm{diag}\,\Sigma
    + m^2) + s_b\big)` — exact, since a layer's weights are independent of its input and of
    each other (the second term is the weight noise, which each output unit draws alone).
ReLU
    exact rectified-Gaussian variances on the diagonal; off the diagonal the first-order
    term of the expansion in the correlation (Price's theorem),
    :math:`\mathrm{Cov}[\mathrm{relu}(a_i), \mathrm{relu}(a_j)] \approx
    \Phi(\alpha_i)\Phi(\alpha_j)\Sigma_{ij}` — exact for uncorrelated units, and the
    matrix stays positive semi-definite because
    :math:`\mathrm{Var}[\mathrm{relu}(a_i)] \ge \Phi(\alpha_i)^2\Sigma_{ii}` (Stein's
    lemma with Cauchy–Schwarz). :cite:t:`wu2019deterministic` approximate these terms to higher
    order; this is the cheaper first-order variant.

The cost is :math:`O(d^2)` memory and :math:`O(d^2 d_{in})` time per example and layer,
for small layers. The diagonal propagation is exact through the first two layers of a
multilayer perceptron (the second layer's inputs are still independent) and drops the
covariance from there on; the full one keeps it, exactly through Linear layers.

The expected log-likelihood is exact for a Gaussian likelihood,
:math:`\mathrm E\log\mathcal N(y\mid f,\sigma^2) = -\log(\sqrt{2\pi}\sigma)
- ((y-m)^2 + v)/(2\sigma^2)`. For categorical and Bernoulli likelihoods the log-normaliser
is bounded with Jensen's inequality and the Gaussian moment-generating function,
:math:`\mathrm E\,\mathrm{LSE}(f) \le \log\sum_k \mathrm E e^{f_k} = \mathrm{LSE}(m + v/2)`,
so :math:`\mathrm E\log\mathrm{softmax}(f)_y \ge m_y - \mathrm{LSE}(m + v/2)` (and
:math:`\mathrm E\,\mathrm{softplus}(f) \le \mathrm{softplus}(m + v/2)` for Bernoulli): the
objective stays a lower bound of the ELBO, and the gap is at most :math:`\max_k v_k / 2`.
The second-order (delta-method) expansion of the log-softmax is not used: its variance
penalty :math:`\tfrac12\sum_k v_k p_k(1-p_k)` vanishes for confident predictions, and a
network trained on it learns confident mean logits with huge logit variances.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from pyrocompress.distributions import Likelihood
from pyrocompress.nn.graph import describe_op, network_graph
from pyrocompress.nn.layers import BayesianLayer
from pyrocompress.nn.network import BayesianNetwork
from pyrocompress.nn.rules import (
    MC,
    MV,
    avgpool2d_moments,
    get_rule,
    maxpool2d_moments,
    relu_moments,
)

__all__ = [
    "COVARIANCES",
    "avgpool2d_moments",
    "check_supported",
    "expected_log_likelihood",
    "maxpool2d_moments",
    "propagate",
    "relu_moments",
]

COVARIANCES = ("diagonal", "full")


def check_supported(bnn: BayesianNetwork) -> None:
    """Raise unless every layer's prior gives independent Gaussian weights."""
    if not isinstance(bnn, BayesianNetwork):
        raise TypeError("expected the BayesianNetwork returned by pyrocompress.bayesianize")
    unsupported = [p for p in bnn.distinct_priors() if not p.supports_moments]
    if unsupported:
        raise ValueError(
            f"moment propagation needs independent Gaussian weights (the 'gaussian' prior); "
            f"this network has {unsupported[0]!r}, whose gates make the weights of a group "
            "dependent and non-Gaussian"
        )


def propagate(
    bnn: BayesianNetwork, x: torch.Tensor, *, record: bool = False, covariance: str = "diagonal"
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, dict]:
    """Propagate ``x`` (deterministic inputs) through ``bnn`` under its guide.

    Returns the mean and variance of the network's output (logits or regression mean),
    per example and unit; with ``record=True`` also a dict mapping each Bayesian layer's
    name to the ``(mean, var)`` of its *input*, for
    :func:`~pyrocompress.analysis.unit_scores`. With ``covariance="full"`` the second
    output is each example's covariance matrix of the output units, ``[n, d, d]`` (Linear
    and ReLU networks; module docstring). Differentiable in the guide's parameters.

    The network is walked by :meth:`~pyrocompress.nn.graph.NetworkGraph.run`: Bayesian
    layers answer :meth:`~pyrocompress.nn.BayesianLayer.output_moments`, every other op
    its rule's ``moments`` (:mod:`pyrocompress.nn.rules`).

    Examples
    --------
    The output moments of a network with the Gaussian prior, for 64 examples and 3
    outputs:

    >>> import torch, pyrocompress as pc
    >>> X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 3]), "gaussian", seed=0)
    >>> mean, var = pc.propagate(bnn, X)
    >>> mean.shape, var.shape, bool((var > 0).all())
    (torch.Size([64, 3]), torch.Size([64, 3]), True)
    >>> mean, cov = pc.propagate(bnn, X, covariance="full")  # one matrix per example
    >>> cov.shape
    torch.Size([64, 3, 3])
    >>> mean, var, inputs = pc.propagate(bnn, X, record=True)  # each layer's input moments
    >>> {name: tuple(m.shape) for name, (m, v) in inputs.items()}
    {'1': (64, 4), '3': (64, 8)}
    >>> bool((inputs["1"][1] == 0).all())  # the data have no variance
    True
    """
    check_supported(bnn)
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    x = x.to(bnn.device)
    if covariance == "full":
        if record:
            raise ValueError("record=True records diagonal moments: use covariance='diagonal'")
        return _propagate_full(bnn, x)
    names = {id(m): n for n, m in bnn.bayesian_layers().items()}
    inputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def call(node: fx.Node, op: object, args: tuple, kwargs: dict):
        if isinstance(op, BayesianLayer):
            (x_in,) = args
            name = names[id(op)]
            mean, var = op.mask_input(x_in.mean), op.mask_input(x_in.var)
            if record:
                inputs[name] = (mean, var)
            weight, bias = op.posterior_moments(bnn.guide[name])
            out_mean, out_var = op.output_moments(mean, var, weight, bias)
            return MV(op.mask_output(out_mean), op.mask_output(out_var))
        rule = get_rule(type(op) if isinstance(op, torch.nn.Module) else op)
        if rule is None or rule.moments is None:
            raise TypeError(
                f"moment propagation does not support {describe_op(op)} (at {node.name!r}); "
                "supported: the Bayesian layers and the ops with a moments rule in "
                "pyrocompress.nn.rules (ReLU, MaxPool2d, AvgPool2d, Flatten, Dropout, ...)"
            )
        return rule.moments(op, *args, **kwargs)

    out = network_graph(bnn.net).run(MV(x, torch.zeros_like(x)), call)
    return (out.mean, out.var, inputs) if record else (out.mean, out.var)


def _propagate_full(bnn: BayesianNetwork, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the mean ``[n, d]`` and covariance ``[n, d, d]`` of the outputs.

    It is the same walker, with each op's ``covariance`` rule and the layers'
    :meth:`~BayesianLayer.output_covariance`.
    """
    names = {id(m): n for n, m in bnn.bayesian_layers().items()}

    def call(node: fx.Node, op: object, args: tuple, kwargs: dict):
        if isinstance(op, BayesianLayer):
            (x_in,) = args
            mean, cov = x_in.mean, x_in.cov
            mask = op.group_mask
            if mask is not None and not op.groups_on_outputs:  # restrict: removed inputs are 0
                mean = mean * mask
                cov = None if cov is None else cov * mask.unsqueeze(-1) * mask
            weight, bias = op.posterior_moments(bnn.guide[names[id(op)]])
            return MC(*op.output_covariance(mean, cov, weight, bias))
        rule = get_rule(type(op) if isinstance(op, nn.Module) else op)
        if rule is None or rule.covariance is None:
            raise TypeError(
                f"full-covariance propagation supports Bayesian Linear layers, ReLU, Dropout "
                f"and a Flatten of the inputs, not {describe_op(op)}; use "
                "covariance='diagonal' for convolutional networks"
            )
        return rule.covariance(op, *args, **kwargs)

    out = network_graph(bnn.net).run(MC(x, None), call)
    mean, cov = out.mean, out.cov
    if cov is None:
        cov = torch.zeros(*mean.shape, mean.shape[-1], dtype=mean.dtype, device=mean.device)
    return mean, cov


def expected_log_likelihood(
    likelihood: Likelihood, mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    r"""Return :math:`\mathrm E_{f\sim\mathcal N(mean, var)}\log p(y\mid f)` per example.

    It is exact for the Gaussian likelihood, a lower bound (Jensen, module docstring) for
    categorical and Bernoulli.
    """
    return likelihood.expected_log_prob(mean, var, y)
