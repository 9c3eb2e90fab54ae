r"""The Fisher information of each group's weights: what makes an inclusion probability.

A group is *relevant* when its prior does not shrink it away: for a weight :math:`w` with
prior :math:`N(0, g^2 s^2)` (gate :math:`g`, slab scale :math:`s`) and likelihood
information :math:`h` the posterior mean of :math:`w` is shrunk towards zero by the factor

.. math:: \kappa = \frac{1}{1 + g^2 s^2 h},

(:cite:t:`carvalho2010horseshoe{eq. 2}`; :cite:p:`piironen2017sparsity{eq. 2.5}`, where
:math:`h = n s_x^2 / \sigma^2` for a regression coefficient), and :math:`1 - \kappa` is the
weight's share of the effective number of parameters :math:`m_{\mathrm{eff}} = \sum_j (1 -
\kappa_j)`. Its information :math:`h` is what this module measures, for every weight of a
network, as the diagonal of the Fisher information of the log-likelihood of the training
data at the posterior-mean network — the generalised Gauss-Newton diagonal

.. math:: h_{ij} = \sum_n \big(J_n^\top \Lambda_n J_n\big)_{ij,ij},
   \qquad J_n = \partial f(x_n) / \partial w,

with :math:`\Lambda_n` the Fisher information of the output (:math:`1/\sigma^2` for a
Gaussian likelihood, :math:`\mathrm{diag}(p) - pp^\top` for a softmax;
:cite:p:`martens2020new{§9}`). It is computed exactly by back-propagating the columns of a factor of
:math:`\Lambda_n` (:meth:`~pyrocompress.distributions.Likelihood.fisher_factor`) and summing the
per-example squared weight gradients (:meth:`~pyrocompress.nn.BayesianLayer.weight_information`), on
at most ``max_examples`` examples scaled up to the data set. A group's information is the mean over
its weights.

:func:`pyrocompress.fit` records it at the end of training in each layer guide's
``information`` buffer (so it is saved with the network), where
:meth:`pyrocompress.Posterior.inclusion_probabilities` reads it.

**Generalised linear models.** For a network that is one Bayesian ``Linear`` layer (a
linear, logistic or multinomial regression), :func:`record_information` also records, per
group, the sum of squares of the one-step estimates of its weights given the others,

.. math:: \hat b_k = \bar w_k + \frac{\partial \ell(\bar w)/\partial w_k}{h_k},
    \qquad B_g = \sum_{k \in g} \hat b_k^2,

a Newton (Fisher-scoring) step from the posterior-mean weights :math:`\bar w` with the
diagonal information :math:`h_k`: for a Gaussian likelihood exactly the least-squares
estimate of :math:`w_k` on the partial residual :math:`y - \sum_{l \neq k} x_l \bar w_l`,
with standard error :math:`1/\sqrt{h_k}`. Given the other weights, the likelihood of the
group's weights is then :math:`N(\hat b; w, 1/h)`, so that their prior can be integrated out
in closed form: the normal-means form of the inclusion probability
(:mod:`pyrocompress.priors.relevance`).
"""

from __future__ import annotations

import torch

from pyrocompress.distributions.likelihoods import Likelihood
from pyrocompress.infer.training import prepare_data
from pyrocompress.nn import BayesianNetwork

__all__ = [
    "fisher_information",
    "glm_layer",
    "group_information",
    "information_budget",
    "newton_square",
    "record_information",
]

#: Modules that only reshape, allowed beside the layer of a generalised linear model.
_SHAPE_ONLY = (torch.nn.Flatten, torch.nn.Identity)
#: Default number of examples the information is computed on (a random subset beyond it).
MAX_EXAMPLES = 4096


def fisher_information(
    bnn: BayesianNetwork,
    data,
    *,
    max_examples: int = MAX_EXAMPLES,
    batch_size: int = 512,
    seed: int = 0,
    projections: int | None = None,
) -> dict[str, torch.Tensor]:
    r"""Return the diagonal Fisher information of every layer's effective weights.

    The generalised Gauss-Newton diagonal of the log-likelihood of all ``N`` examples at the
    posterior-mean network (see the module docstring), estimated on a uniform random subset
    of ``max_examples`` examples (all when ``N`` is not larger) and multiplied by
    ``N / max_examples``.

    Exactly, it takes one backward pass per column of the output's Fisher factor
    :math:`L_n` (:math:`K` for :math:`K` classes). With ``projections=r`` it back-propagates
    :math:`r` random cotangents :math:`L_n z`, :math:`z \sim N(0, I_K)`, instead: since
    :math:`E[(J^\top L z)^2] = \mathrm{diag}(J^\top L L^\top J)`, the estimate is unbiased
    (the sketch of :cite:t:`hutchinson1990stochastic` applied per weight). Each example's term has a
    relative variance of at most 2 (a weighted :math:`\chi^2_1`), so the relative standard deviation
    per weight is between :math:`\sqrt{2/(r n)}` (examples contributing alike) and
    :math:`\sqrt{2/r}` (one example dominating), and smaller for a group's mean over its weights;
    the cost is :math:`r/K` of the exact one, which convolutional networks need.

    Parameters
    ----------
    bnn
        The fitted network.
    data
        ``(X, y)`` tensors or a :class:`~pyrocompress.data.Dataset` (the targets are not
        used: the information is an expectation over targets drawn from the model).
    max_examples
        Largest number of examples used.
    batch_size
        Examples per forward pass.
    seed
        Seed of the subset's (and the projections') local generator (global random state
        untouched).
    projections
        ``None`` (exact, one backward pass per Fisher-factor column) or the number of
        random projections per example (see above).

    Returns
    -------
    dict of str to Tensor
        Shaped as each layer's weight, by layer name.

    Raises
    ------
    ValueError
        If ``max_examples`` or ``batch_size`` is not a positive integer.
    """
    checked = [("max_examples", max_examples), ("batch_size", batch_size)]
    if projections is not None:
        checked.append(("projections", projections))
    for name, value in checked:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    X, _ = prepare_data(bnn, data, "data")
    n = len(X)
    if n > max_examples:
        gen = torch.Generator().manual_seed(seed)
        X = X[torch.randperm(n, generator=gen)[:max_examples]]
    layers = bnn.bayesian_layers()
    info = {
        name: torch.zeros(
            layer.spec.weight_shape, device=bnn.device, dtype=bnn.guide[name].information.dtype
        )
        for name, layer in layers.items()
    }
    was_training = bnn.training
    bnn.eval()
    try:
        gen = torch.Generator().manual_seed(seed + 1)
        for xb in X.split(batch_size):
            _accumulate(bnn, xb.to(bnn.device), info, projections, gen)
    finally:
        bnn.train(was_training)
    scale = n / len(X)
    return {name: h * scale for name, h in info.items()}


def _accumulate(
    bnn: BayesianNetwork,
    x: torch.Tensor,
    info: dict[str, torch.Tensor],
    projections: int | None = None,
    gen: torch.Generator | None = None,
) -> None:
    """Add one batch's per-example squared gradients to ``info``."""
    layers = bnn.bayesian_layers()
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(name: str):
        def record(module, args, output):
            if not output.requires_grad:  # a layer reading indices (Embedding): a leaf
                output = output.detach().requires_grad_()
            seen[name] = (args[0], output)
            return output

        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers.items()]
    try:
        with torch.enable_grad(), bnn.point_estimate():
            out = bnn.net(x.detach().requires_grad_())
    finally:
        for h in handles:
            h.remove()
    names = [name for name in layers if name in seen and seen[name][1].requires_grad]
    factor = bnn.likelihood.fisher_factor(out.detach())
    if projections is not None and projections < factor.shape[-1]:
        z = torch.randn(factor.shape[0], factor.shape[-1], projections, generator=gen)
        factor = factor @ z.to(factor)
    flat = out.reshape(len(out), -1)
    for k in range(factor.shape[-1]):
        cotangent = factor[:, : flat.shape[1], k].reshape(out.shape)
        grads = torch.autograd.grad(
            out, [seen[name][1] for name in names], grad_outputs=cotangent, retain_graph=True
        )
        for name, delta in zip(names, grads, strict=True):
            layer = layers[name]
            x_in = layer.mask_input(seen[name][0].detach())
            info[name] += layer.weight_information(x_in, delta.detach())


def information_budget(bnn: BayesianNetwork) -> dict[str, int]:
    """Return the settings :func:`pyrocompress.fit` records the information with.

    Exact on :data:`MAX_EXAMPLES` examples for networks of Linear layers (a pass costs
    about a training epoch's share of those examples); for a network with convolutions,
    whose per-example gradients cost a matrix product per position, one random projection
    (:func:`fisher_information`) on 1024 examples — about ten training steps of 128.

    Parameters
    ----------
    bnn
        The network.

    Returns
    -------
    dict
        Keyword arguments of :func:`fisher_information`.
    """
    if all(layer.spec.kind == "linear" for layer in bnn.bayesian_layers().values()):
        return {}
    return {"max_examples": 1024, "projections": 1}


def group_information(bnn: BayesianNetwork, data, **kwargs) -> dict[str, torch.Tensor]:
    """Return each group's mean Fisher information per weight, by layer name.

    Parameters
    ----------
    bnn, data
        As for :func:`fisher_information`.
    **kwargs
        Passed to :func:`fisher_information`.

    Returns
    -------
    dict of str to Tensor
        ``[G]`` per layer.
    """
    return _group_means(bnn, fisher_information(bnn, data, **kwargs))


def _group_means(bnn: BayesianNetwork, info: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each group's mean over its weights of a per-weight quantity (0 for removed groups)."""
    layers = bnn.bayesian_layers()
    out = {}
    for name, h in info.items():
        spec = layers[name].spec
        out[name] = spec.group_sum(h) / spec.group_sum(torch.ones_like(h))
        mask = layers[name].group_mask
        if mask is not None:  # a removed group is seen by no data
            out[name] = out[name] * mask.to(out[name])
    return out


def glm_layer(bnn: BayesianNetwork) -> str | None:
    """Return the name of the layer of a generalised linear model, else ``None``.

    A generalised linear model here is a network that is one Bayesian ``Linear`` layer
    and nothing else (no norm; besides it only a ``Flatten`` or ``Identity``, as in
    :func:`~pyrocompress.mlp` without hidden layers) whose likelihood has an exact
    log-likelihood (:meth:`~pyrocompress.distributions.Likelihood.expected_log_prob` at
    zero variance).

    Parameters
    ----------
    bnn
        The network.

    Returns
    -------
    str or None
        The layer's name.
    """
    layers = bnn.bayesian_layers()
    if len(layers) != 1:
        return None
    name, layer = next(iter(layers.items()))
    own = set(layer.modules())
    if layer.spec.kind != "linear" or layer.norm is not None:
        return None
    others = [m for m in bnn.net.modules() if m is not bnn.net and m not in own]
    if any(not isinstance(m, _SHAPE_ONLY) for m in others):
        return None
    if bnn.net is not layer and not isinstance(bnn.net, torch.nn.Sequential):
        return None
    if type(bnn.likelihood).expected_log_prob is Likelihood.expected_log_prob:
        return None
    return name


def newton_square(bnn: BayesianNetwork, data, *, batch_size: int = 4096) -> torch.Tensor:
    r"""Return :math:`B_g = \sum_{k \in g} \hat b_k^2` of a generalised linear model's groups.

    :math:`\hat b = \bar w + \nabla \ell(\bar w) / h` (the module docstring): the gradient
    of the log-likelihood of all the data at the posterior-mean weights, divided by the
    per-weight Fisher information of the same data, both summed over every example in
    one pass (the information of :func:`fisher_information` may be a scaled subset).

    Parameters
    ----------
    bnn
        A network for which :func:`glm_layer` is not ``None``.
    data
        ``(X, y)`` or a :class:`~pyrocompress.data.Dataset`: every example is used.
    batch_size
        Examples per pass.

    Returns
    -------
    Tensor
        ``[G]``; zero for removed groups and weights the data do not inform.
    """
    name = glm_layer(bnn)
    if name is None:
        raise ValueError("newton_square applies to a generalised linear model (glm_layer)")
    layer = bnn.bayesian_layers()[name]
    X, y = prepare_data(bnn, data, "data")
    guide = bnn.guide[name]
    weight = torch.zeros(layer.spec.weight_shape, dtype=torch.float64, device=bnn.device)
    grad = torch.zeros_like(weight)
    info = torch.zeros_like(weight)
    was_training = bnn.training
    bnn.eval()
    try:
        with torch.no_grad():
            weight += layer.point_weights(guide)[0].double()
        seen: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda module, args, output: seen.append(args[0]))
        try:
            for xb, yb in zip(X.split(batch_size), y.split(batch_size), strict=True):
                xb, yb = xb.to(bnn.device), yb.to(bnn.device)
                seen.clear()
                with torch.no_grad(), bnn.point_estimate():
                    out = bnn.net(xb)
                out = out.detach().requires_grad_()
                with torch.enable_grad():
                    log_lik = bnn.likelihood.expected_log_prob(out, torch.zeros_like(out), yb)
                    (delta,) = torch.autograd.grad(log_lik.sum(), out)
                x_in = layer.mask_input(seen[0]).double()  # the layer's own input
                grad += delta.double().reshape(len(xb), -1).T @ x_in.reshape(len(xb), -1)
                factor = bnn.likelihood.fisher_factor(out.detach()).double()
                for k in range(factor.shape[-1]):  # the exact diagonal of the Fisher
                    cotangent = factor[:, : out.shape[-1], k].reshape(out.shape)
                    info += layer.weight_information(x_in, cotangent).double()
        finally:
            handle.remove()
    finally:
        bnn.train(was_training)
    h = info
    step = torch.where(h > 0, grad / h.clamp_min(1e-300), torch.zeros_like(grad))
    b_hat = torch.where(h > 0, weight + step, torch.zeros_like(weight))
    out = layer.spec.group_sum(b_hat.square())
    mask = layer.group_mask
    return out if mask is None else out * mask.to(out)


@torch.no_grad()
def record_information(bnn: BayesianNetwork, data, **kwargs) -> dict[str, torch.Tensor]:
    """Compute :func:`group_information` and store it in each layer guide's ``information``.

    For a generalised linear model (:func:`glm_layer`) it also stores
    :func:`newton_square` in the layer guide's ``newton_square`` (zero for the layers of
    any other network; ``NaN`` until recorded), from which the inclusion probabilities
    integrate the weights out.
    :func:`pyrocompress.fit` calls it at the end of training; call it yourself for a
    network trained otherwise (or on other data) before asking for inclusion
    probabilities.

    Parameters
    ----------
    bnn, data
        As for :func:`fisher_information`.
    **kwargs
        Passed to :func:`fisher_information`.

    Returns
    -------
    dict of str to Tensor
        The recorded per-group information, by layer name.
    """
    per_weight = fisher_information(bnn, data, **kwargs)
    info = _group_means(bnn, per_weight)
    for name, h in info.items():
        if not bool(torch.isfinite(h).all()):
            bad = int((~torch.isfinite(h)).sum())
            raise FloatingPointError(
                f"the Fisher information of layer {name!r} is not finite for {bad} groups; "
                "the posterior-mean network overflows on the data"
            )
    glm = glm_layer(bnn)
    squares = None
    if glm is not None:
        squares = newton_square(bnn, data)
    for name, h in info.items():
        guide = bnn.guide[name]
        guide.information.copy_(h.to(guide.information))
        # zero for the layers of other networks (recorded, not used: the state of a fitted
        # network compares equal with itself, which NaN would not)
        guide.newton_square.zero_()
        if name == glm and squares is not None:
            guide.newton_square.copy_(squares.to(guide.newton_square))
    return info
