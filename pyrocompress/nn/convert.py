"""Conversion of an ordinary torch model into a :class:`~pyrocompress.nn.BayesianNetwork`.

:func:`bayesianize` deep-copies the model, replaces every module with a registered
Bayesian counterpart (``nn.Linear``, ``nn.Conv2d``; :func:`register_layer` adds more) by
that Bayesian layer with its prior (one prior for all, or one per layer) and keeps the
rest of the module tree, its ``forward`` included: the modules with an op rule
(:func:`~pyrocompress.nn.register_op`) and containers.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from torch import nn

from pyrocompress.constraints import check_layer_names
from pyrocompress.distributions import Likelihood, get_likelihood
from pyrocompress.nn.layers import BayesianConv2d, BayesianLayer, BayesianLinear
from pyrocompress.nn.network import BayesianNetwork, _data_order
from pyrocompress.nn.rules import get_rule, registered_ops
from pyrocompress.priors import LayerSpec, Prior, get_prior
from pyrocompress.rng import seeded

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)

__all__ = ["LayerFactory", "PriorSpec", "bayesianize", "register_layer", "supported_modules"]

#: Builds the Bayesian layer of a torch module: ``factory(name, module, prior)``.
LayerFactory = Callable[[str, nn.Module, Prior], BayesianLayer]


@dataclass(frozen=True)
class _LayerEntry:
    factory: LayerFactory
    check: Callable[[nn.Module], str | None]


_LAYERS: dict[type[nn.Module], _LayerEntry] = {}


def register_layer(
    module_type: type[nn.Module],
    factory: LayerFactory,
    *,
    check: Callable[[nn.Module], str | None] = lambda m: None,
) -> None:
    """Register the Bayesian counterpart of a torch module type.

    :func:`bayesianize` then replaces every module of that type (or a subclass) by
    ``factory(name, module, prior)``. Pruning, export, moment propagation and FLOP counts
    work through the layer's own methods (:class:`~pyrocompress.nn.BayesianLayer`:
    ``_op``, ``to_plain``, ``input_axis``, ``output_axis``, ``flops``); register an op rule
    for the plain module too (:func:`~pyrocompress.nn.register_op`, with ``args`` and
    ``flops``) so that compact networks holding it can be saved and costed.

    Parameters
    ----------
    module_type
        The torch module class.
    factory
        ``factory(name, module, prior)`` returns the Bayesian layer.
    check
        ``check(module)`` returns why a module of this type cannot be converted (a
        ``TypeError`` names it and its path), or ``None``.
    """
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"module_type must be an nn.Module subclass, got {module_type!r}")
    _LAYERS[module_type] = _LayerEntry(factory, check)


def _entry(module: nn.Module) -> _LayerEntry | None:
    for cls in type(module).__mro__:
        if cls in _LAYERS:
            return _LAYERS[cls]
    return None


def _conv2d_check(module: nn.Module) -> str | None:
    assert isinstance(module, nn.Conv2d)
    if module.groups != 1 or module.padding_mode != "zeros":
        return (
            f"Conv2d with groups={module.groups}, padding_mode={module.padding_mode!r}; only "
            "groups=1 and zero padding are supported"
        )
    return None


def _linear_layer(name: str, m: nn.Module, prior: Prior) -> BayesianLayer:
    assert isinstance(m, nn.Linear)
    return BayesianLinear(m.in_features, m.out_features, m.bias is not None, name=name, prior=prior)


def _conv2d_layer(name: str, m: nn.Module, prior: Prior) -> BayesianLayer:
    assert isinstance(m, nn.Conv2d)
    return BayesianConv2d(m, name=name, prior=prior)


register_layer(nn.Linear, _linear_layer)
register_layer(nn.Conv2d, _conv2d_layer, check=_conv2d_check)


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
        if isinstance(k, type) and issubclass(k, nn.Module) and k not in _LAYERS
    )


def _check_module(path: str, module: nn.Module) -> None:
    """Refuse a module :func:`bayesianize` cannot convert or keep (naming it and its path)."""
    where = f"'{path}'" if path else "the model"
    entry = _entry(module)
    if entry is not None:
        problem = entry.check(module)
        if problem is not None:
            raise TypeError(f"unsupported layer at {where}: {problem}")
        return
    if isinstance(module, _CONTAINERS) or get_rule(type(module)) is not None:
        return
    own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
    has_children = any(True for _ in module.children())
    if has_children and not own:
        return  # a user-defined container with its own forward: its children are checked
    supported = ", ".join(sorted(t.__name__ for t in supported_modules()))
    raise TypeError(
        f"unsupported layer at {where}: {type(module).__name__}. bayesianize supports "
        f"{', '.join(t.__name__ for t in _LAYERS)} and these modules without parameters: "
        f"{supported}. Replace or remove it, keep it outside the network you convert, or "
        "register a rule for it (pyrocompress.nn.register_op for an op without weights, "
        "pyrocompress.nn.register_layer for a layer with weights)."
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
        check_layer_names("prior, as a mapping,", prior, paths)
        shared = {spec: get_prior(spec) for spec in set(prior.values())}  # one per key
        return {p: shared[prior[p]] for p in paths}
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
    groups: Sequence[int] | None = None,
    guide: str = "mean-field",
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
    groups
        Ties input columns of the first layer (a Linear layer) into groups that share one
        gate and are kept or pruned together: the group id of each input column, ``in``
        integers using every id in ``0..G-1`` (the one-hot columns of a categorical
        feature, a spline basis, dummy codes). The layer then has ``G`` groups: one
        inclusion probability per group, and pruning drops all columns of a dropped group
        (:attr:`~pyrocompress.priors.LayerSpec.column_groups`). ``None`` (default): each
        column is its own group.
    guide
        The variational family of the weights: ``"mean-field"`` (default), independent of
        their group's gate; or ``"conditional"``, Gaussian given the gate in the form of
        the posterior's funnel (:mod:`pyrocompress.priors.conditional`) — closer to the
        exact posterior of shrinkage priors (their inclusion probabilities follow NUTS's
        more closely) for one more parameter per group, at about twice the time per step
        (docs/results/guide-cost.md). It needs priors with a continuous gate (group
        normal-Jeffreys, horseshoes).
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
        every layer exactly, ``feature_names`` does not match the first layer's inputs, or
        ``groups`` is not a map of the first layer's input columns onto ``0..G-1``, or
        that layer is not a Linear layer.

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

    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
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
    weighted = {path or "layer": m for path, m in module.named_modules() if _entry(m) is not None}
    if not weighted:
        names = " or ".join(t.__name__ for t in _LAYERS)
        raise ValueError(f"the model has no {names} layer to make Bayesian")
    priors = _prior_for(prior, list(weighted), weighted)
    if groups is not None and isinstance(groups, str | bytes | Mapping):
        raise TypeError(
            "groups must be a sequence of integer group ids, one per input column of the "
            f"first layer; got {type(groups).__name__}"
        )
    with seeded(seed):
        return _convert(module, priors, likelihood, feature_names, groups, guide)


def _tie_columns(net: nn.Module, groups: object) -> None:
    """Give the layer that reads the inputs of ``net`` the column groups ``groups``."""
    first = _data_order(net)[0]
    if first.spec.kind != "linear" or first.input_axis != -1:
        raise ValueError(
            f"groups ties input columns of a Linear first layer; the first layer "
            f"{first.spec.name!r} is {type(first).__name__}, whose groups are its output "
            "channels: leave groups=None"
        )
    ids = LayerSpec.check_column_groups(groups, first.spec.weight_shape[1], label="groups")
    first.spec = dataclasses.replace(first.spec, column_groups=ids)


def _convert(
    module: nn.Module,
    priors: dict[str, Prior],
    likelihood: Likelihood,
    feature_names: list[str] | None,
    groups: object = None,
    guide: str = "mean-field",
) -> BayesianNetwork:
    """Return a deep copy of ``module`` with Bayesian layers, wrapped as a network."""
    net = copy.deepcopy(module)

    def convert(path: str, m: nn.Module) -> nn.Module:
        name = path or "layer"
        entry = _entry(m)
        if entry is not None:
            return entry.factory(name, m, priors[name])
        for child_name, child in list(m.named_children()):
            setattr(m, child_name, convert(f"{path}.{child_name}" if path else child_name, child))
        return m

    net = convert("", net)
    if groups is not None:
        _tie_columns(net, groups)
    return BayesianNetwork(net, likelihood, feature_names=feature_names, guide=guide)
