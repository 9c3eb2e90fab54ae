"""Conversion of an ordinary torch model into a :class:`~pyrocompress.nn.BayesianNetwork`.

:func:`bayesianize` deep-copies the model, replaces every ``nn.Linear`` and ``nn.Conv2d``
by a Bayesian layer with its prior (one prior for all, or one per layer) and keeps the
rest of the module tree, its ``forward`` included.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

from torch import nn

from pyrocompress.distributions import Likelihood, get_likelihood
from pyrocompress.nn.layers import BayesianConv2d, BayesianLayer, BayesianLinear
from pyrocompress.nn.network import BayesianNetwork
from pyrocompress.nn.rules import get_rule, registered_ops
from pyrocompress.priors import Prior, get_prior
from pyrocompress.rng import seeded

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_WEIGHTED = (nn.Linear, nn.Conv2d)

__all__ = ["PriorSpec", "bayesianize", "supported_modules"]


def supported_modules() -> tuple[type[nn.Module], ...]:
    """Return the module types :func:`bayesianize` keeps as they are.

    Those are the modules with an op rule (:func:`~pyrocompress.nn.register_op`),
    besides Linear and Conv2d.

    Returns
    -------
    tuple of type
        The module classes.
    """
    return tuple(
        k
        for k in registered_ops()
        if isinstance(k, type) and issubclass(k, nn.Module) and not issubclass(k, _WEIGHTED)
    )


def _check_module(path: str, module: nn.Module) -> None:
    """Refuse a module :func:`bayesianize` cannot convert or keep (naming it and its path)."""
    where = f"'{path}'" if path else "the model"
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.padding_mode != "zeros":
            raise TypeError(
                f"unsupported layer at {where}: Conv2d with groups={module.groups}, "
                f"padding_mode={module.padding_mode!r}; only groups=1 and zero padding "
                "are supported"
            )
        return
    if isinstance(module, (nn.Linear, *_CONTAINERS)) or get_rule(type(module)) is not None:
        return
    own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
    has_children = any(True for _ in module.children())
    if has_children and not own:
        return  # a user-defined container with its own forward: its children are checked
    supported = ", ".join(sorted(t.__name__ for t in supported_modules()))
    raise TypeError(
        f"unsupported layer at {where}: {type(module).__name__}. bayesianize supports "
        f"Linear, Conv2d (groups=1) and these modules without parameters: {supported}. "
        "Replace or remove it, keep it outside the network you convert, or register an op "
        "rule for it (pyrocompress.nn.register_op)."
    )


#: What :func:`bayesianize` takes as ``prior``: one prior (or its key) for every layer, a
#: mapping from layer path to prior, or a function of the layer's path and module.
PriorSpec = Prior | str | Mapping[str, Prior | str] | Callable[[str, nn.Module], Prior | str]


def _prior_for(
    prior: PriorSpec, paths: list[str], modules: Mapping[str, nn.Module]
) -> dict[str, Prior]:
    """Resolve ``prior`` into one :class:`Prior` per layer path (validated)."""
    if isinstance(prior, Prior | str):
        one = get_prior(prior)
        return dict.fromkeys(paths, one)
    if isinstance(prior, Mapping):
        unknown = sorted(set(prior) - set(paths))
        missing = [p for p in paths if p not in prior]
        if unknown or missing:
            raise ValueError(
                f"prior, as a mapping, must name every Linear/Conv2d layer exactly: {paths}"
                + (f"; unknown {unknown}" if unknown else "")
                + (f"; missing {missing}" if missing else "")
            )
        cache: dict[object, Prior] = {}
        return {p: cache.setdefault(prior[p], get_prior(prior[p])) for p in paths}
    if callable(prior):
        out: dict[str, Prior] = {}
        for p in paths:
            chosen = prior(p, modules[p])
            if not isinstance(chosen, Prior | str):
                raise TypeError(
                    f"prior, as a function, must return a Prior or a prior key for layer "
                    f"{p!r}; it returned {type(chosen).__name__}"
                )
            out[p] = get_prior(chosen)
        return out
    raise TypeError(
        "prior must be a Prior, a prior key, a mapping from layer path to prior, or a "
        f"function (path, module) -> prior; got {type(prior).__name__}"
    )


def bayesianize(
    module: nn.Module,
    prior: PriorSpec = "group-horseshoe",
    *,
    likelihood: Likelihood | str = "categorical",
    feature_names: list[str] | None = None,
    seed: int | None = None,
) -> BayesianNetwork:
    """Turn a torch model into a Bayesian Pyro model with a matching guide.

    Every ``nn.Linear`` and ``nn.Conv2d`` becomes a Bayesian layer with ``prior``; the
    rest of the module tree (its ``forward`` included) is kept. The original module is
    not modified (it is deep-copied); its weights are not used.

    Parameters
    ----------
    module
        An ``nn.Sequential`` or module tree of Linear, Conv2d, activations, pooling,
        Flatten and Dropout (see :func:`supported_modules`).
    prior
        A :class:`~pyrocompress.priors.Prior` or its registered key (``"gaussian"``,
        ``"group-nj"``, ``"group-horseshoe"``, ``"spike-slab"``, or any key added with
        :func:`~pyrocompress.priors.register_prior`) for every layer; or a prior per
        layer: a mapping from each Linear/Conv2d layer's path (``"0"``,
        ``"features.3"``) to a prior, or a function ``(path, module) -> prior``.
    likelihood
        ``"categorical"`` (classification, the default), ``"gaussian"`` (regression),
        ``"bernoulli"`` or a :class:`~pyrocompress.distributions.Likelihood`.
    feature_names
        Names of the input features (used in reports, plots and diagnostics).
    seed
        Seed for the initialisation of the guide; the caller's global random state is
        left as it was (:func:`pyrocompress.rng.seeded`).

    Returns
    -------
    BayesianNetwork
        The Pyro model (``bnn(x, y)``) with its guide (``bnn.guide``), ready for
        :func:`~pyrocompress.fit`.

    Raises
    ------
    TypeError
        When ``module`` is not an ``nn.Module`` or contains an unsupported layer (the
        message names it and its path), or ``prior`` is of no accepted kind.
    ValueError
        When the model has no Linear or Conv2d layer, a mapping of priors does not name
        every layer exactly, or ``feature_names`` does not match the first layer's inputs.

    Examples
    --------
    A small classifier, one prior for every layer (layers are named by their path in the
    module tree):

    >>> import torch
    >>> import pyrocompress as pc
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 3]), "group-horseshoe", seed=0)
    >>> list(bnn.bayesian_layers())
    ['1', '3']
    >>> bnn.prior
    GroupHorseshoe(scale_global=1e-05)

    A prior per layer, by path:

    >>> mixed = pc.bayesianize(
    ...     pc.mlp([4, 8, 3]), {"1": "group-horseshoe", "3": pc.Gaussian(scale=0.5)}, seed=0
    ... )
    >>> mixed.priors
    {'1': GroupHorseshoe(scale_global=1e-05), '3': Gaussian(scale=0.5)}

    Fit it for two epochs on made-up data, then predict with the posterior-mean network:

    >>> generator = torch.manual_seed(0)
    >>> X = torch.randn(64, 4)
    >>> y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    >>> history = pc.fit(bnn, (X, y), epochs=2, batch_size=32, progress=False)
    >>> history.epoch
    [1, 2]
    >>> bnn.predict_point(X[:5]).shape
    torch.Size([5, 3])
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"bayesianize expects a torch.nn.Module, got {type(module).__name__}")
    likelihood = get_likelihood(likelihood)
    for path, sub in module.named_modules():
        _check_module(path, sub)
    weighted = {
        path or "layer": m for path, m in module.named_modules() if isinstance(m, _WEIGHTED)
    }
    if not weighted:
        raise ValueError("the model has no Linear or Conv2d layer to make Bayesian")
    priors = _prior_for(prior, list(weighted), weighted)
    with seeded(seed):
        return _convert(module, priors, likelihood, feature_names)


def _convert(
    module: nn.Module,
    priors: dict[str, Prior],
    likelihood: Likelihood,
    feature_names: list[str] | None,
) -> BayesianNetwork:
    """Return a deep copy of ``module`` with Bayesian layers, wrapped as a network."""
    net = copy.deepcopy(module)

    def convert(path: str, m: nn.Module) -> nn.Module:
        name = path or "layer"
        if isinstance(m, nn.Linear):
            return BayesianLinear(
                m.in_features, m.out_features, m.bias is not None, name=name, prior=priors[name]
            )
        if isinstance(m, nn.Conv2d):
            return BayesianConv2d(m, name=name, prior=priors[name])
        for child_name, child in list(m.named_children()):
            setattr(m, child_name, convert(f"{path}.{child_name}" if path else child_name, child))
        return m

    net = convert("", net)
    first = next(m for m in net.modules() if isinstance(m, BayesianLayer))
    if feature_names is not None:
        feature_names = [str(f) for f in feature_names]
        n_in = first.spec.weight_shape[1]
        if first.spec.kind == "linear" and len(feature_names) != n_in:
            raise ValueError(
                f"feature_names has {len(feature_names)} names but the first layer has "
                f"{n_in} inputs"
            )
    return BayesianNetwork(net, likelihood, feature_names=feature_names)
