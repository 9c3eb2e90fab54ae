"""Conversion of an ordinary torch model into a :class:`~pyrocompress.nn.BayesianNetwork`.

:func:`bayesianize` deep-copies the model, replaces every module with a registered
Bayesian counterpart (``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d``, ``nn.Embedding``;
:func:`register_layer` adds more) by that Bayesian layer with its prior (one prior for
all, or one per layer), attaches each BatchNorm that follows a layer to it
(:func:`register_norm`), and keeps the rest of the module tree, its ``forward``
included: the modules with an op rule (:func:`~pyrocompress.nn.register_op`) and
containers. A functional op or tensor method of the forward that no rule covers is
refused with its name.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from torch import fx, nn

from pyrocompress.constraints import check_layer_names
from pyrocompress.distributions import Likelihood, get_likelihood
from pyrocompress.nn.layers import (
    BayesianConv1d,
    BayesianConv2d,
    BayesianEmbedding,
    BayesianLayer,
    BayesianLinear,
)
from pyrocompress.nn.network import BayesianNetwork, _data_order
from pyrocompress.nn.rules import get_rule, registered_ops
from pyrocompress.priors import LayerSpec, Prior, get_prior
from pyrocompress.rng import seeded

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)

__all__ = [
    "LayerFactory",
    "PriorSpec",
    "bayesianize",
    "norm_pairs",
    "register_layer",
    "register_norm",
    "supported_modules",
]

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
    if module.padding_mode != "zeros":
        return f"Conv2d with padding_mode={module.padding_mode!r}; only zero padding is supported"
    return None


def _linear_layer(name: str, m: nn.Module, prior: Prior) -> BayesianLayer:
    assert isinstance(m, nn.Linear)
    return BayesianLinear(m.in_features, m.out_features, m.bias is not None, name=name, prior=prior)


def _conv2d_layer(name: str, m: nn.Module, prior: Prior) -> BayesianLayer:
    assert isinstance(m, nn.Conv2d)
    return BayesianConv2d(m, name=name, prior=prior)


register_layer(nn.Linear, _linear_layer)
register_layer(nn.Conv2d, _conv2d_layer, check=_conv2d_check)


def _conv1d_check(module: nn.Module) -> str | None:
    assert isinstance(module, nn.Conv1d)
    if module.padding_mode != "zeros":
        return f"Conv1d with padding_mode={module.padding_mode!r}; only zero padding is supported"
    return None


def _embedding_check(module: nn.Module) -> str | None:
    assert isinstance(module, nn.Embedding)
    if module.max_norm is not None:
        return (
            f"Embedding with max_norm={module.max_norm}: it renormalises rows in place at "
            "lookup; use max_norm=None"
        )
    return None


def _conv1d_layer(name: str, m: nn.Module, prior: Prior) -> BayesianLayer:
    assert isinstance(m, nn.Conv1d)
    return BayesianConv1d(m, name=name, prior=prior)


def _embedding_layer(name: str, m: nn.Module, prior: Prior) -> BayesianLayer:
    assert isinstance(m, nn.Embedding)
    return BayesianEmbedding(m, name=name, prior=prior)


register_layer(nn.Conv1d, _conv1d_layer, check=_conv1d_check)
register_layer(nn.Embedding, _embedding_layer, check=_embedding_check)


_NORMS: set[type[nn.Module]] = set()


def register_norm(module_type: type[nn.Module]) -> None:
    """Register a normalisation that :func:`bayesianize` attaches to the layer before it.

    A module of this type whose input is the output of a Bayesian layer (and the only
    use of it) becomes part of that layer (:meth:`~pyrocompress.nn.BayesianLayer.attach_norm`):
    the layer's output gate then follows the norm, which would otherwise undo it.
    The type must have ``num_features``, ``eps``, ``running_mean``, ``running_var``,
    ``weight`` and ``bias`` as torch's BatchNorm does.

    Parameters
    ----------
    module_type
        The norm's module class.
    """
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"module_type must be an nn.Module subclass, got {module_type!r}")
    _NORMS.add(module_type)


register_norm(nn.BatchNorm1d)
register_norm(nn.BatchNorm2d)


def _is_norm(module: nn.Module) -> bool:
    return any(cls in _NORMS for cls in type(module).__mro__)


class _LeafTracer(fx.Tracer):
    """fx tracer whose leaves are layers, norms and modules with an op rule."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if _entry(m) is not None or _is_norm(m) or get_rule(type(m)) is not None:
            return True
        return super().is_leaf_module(m, module_qualified_name)


def norm_pairs(module: nn.Module) -> dict[str, str]:
    """Return ``{layer path: norm path}`` of each registered norm that follows a layer.

    A pair is a layer (Linear, Conv2d, ...) whose output is read only by a norm
    (:func:`register_norm`), found in the graph torch.fx traces of ``module``'s forward.

    Parameters
    ----------
    module
        The user's model.

    Returns
    -------
    dict of str to str
        The pairs; empty when the model has no norm.

    Raises
    ------
    TypeError
        If the model has a norm but torch.fx cannot trace its forward (without the
        graph the norm cannot be paired with its layer).
    """
    if not any(_is_norm(m) for m in module.modules()):
        return {}
    try:
        graph = _LeafTracer().trace(module)
    except Exception as err:  # fx raises many types; the reason is in the message
        raise TypeError(
            f"the model has a BatchNorm and torch.fx cannot trace its forward "
            f"({type(err).__name__}: {err}); pyrocompress pairs each norm with the layer "
            "before it from the traced graph"
        ) from err
    modules = dict(module.named_modules())
    calls: dict[str, int] = {}  # a layer or norm called twice is shared: never paired
    for node in graph.nodes:
        if node.op == "call_module":
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    pairs: dict[str, str] = {}
    for node in graph.nodes:
        if node.op != "call_module" or not _is_norm(modules[str(node.target)]):
            continue
        source = node.args[0] if node.args else None
        if (
            isinstance(source, fx.Node)
            and source.op == "call_module"
            and _entry(modules[str(source.target)]) is not None
            and calls[str(source.target)] == 1
            and calls[str(node.target)] == 1
            and len(source.users) == 1
            and str(source.target) not in pairs
        ):
            pairs[str(source.target)] = str(node.target)
    return pairs


def supported_modules() -> tuple[type[nn.Module], ...]:
    """Return the module types :func:`bayesianize` keeps as they are.

    Those are the modules with an op rule (:func:`~pyrocompress.nn.register_op`),
    besides the layers with a Bayesian counterpart (:func:`register_layer`).

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
    if _is_norm(module) and not getattr(module, "track_running_stats", True):
        raise TypeError(
            f"unsupported layer at {where}: {type(module).__name__} with "
            "track_running_stats=False; pyrocompress evaluates the posterior-mean network "
            "with a norm's running statistics: use track_running_stats=True"
        )
    if isinstance(module, _CONTAINERS) or get_rule(type(module)) is not None or _is_norm(module):
        return
    own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
    has_children = any(True for _ in module.children())
    if has_children and not own:
        return  # a user-defined container with its own forward: its children are checked
    supported = ", ".join(sorted(t.__name__ for t in supported_modules()))
    raise TypeError(
        f"unsupported layer at {where}: {type(module).__name__}. bayesianize supports "
        f"{', '.join(t.__name__ for t in _LAYERS)} (as Bayesian layers) and these modules: "
        f"{supported}. Replace or remove it, keep it outside the network you convert, or "
        "register a rule for it (pyrocompress.nn.register_op for an op without weights, "
        "pyrocompress.nn.register_layer for a layer with weights)."
    )


def _check_ops(net: nn.Module) -> None:
    """Refuse a functional op or tensor method of the forward that no rule covers.

    Models torch.fx cannot trace are left to fitting (their ops are not known here);
    pruning and export then say why they cannot go on.
    """
    from pyrocompress.nn.graph import describe_op, network_graph

    try:
        graph = network_graph(net)
    except TypeError:
        return
    for node in graph.graph.nodes:
        if node.op not in ("call_function", "call_method"):
            continue
        op = graph.op(node)
        if get_rule(op) is None:
            raise TypeError(
                f"unsupported op {describe_op(op)} at {node.name!r} in the model's forward: "
                "no rule says how it computes moments, passes channel masks or is exported. "
                "Rewrite it with supported ops, or register a rule for it "
                "(pyrocompress.nn.register_op)"
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

    Every module with a registered Bayesian counterpart (``nn.Linear``, ``nn.Conv1d``,
    ``nn.Conv2d``, ``nn.Embedding``) becomes a Bayesian layer with ``prior``, a BatchNorm
    right after one is attached to it (its gate then follows the norm), and the rest of
    the module tree (its ``forward`` included) is kept. The original module is not
    modified (it is deep-copied); its weights are not used.

    Parameters
    ----------
    module
        An ``nn.Sequential`` or any module tree torch.fx can trace: layers with weights,
        BatchNorms, and the modules and ops with a rule (:func:`supported_modules`;
        residual additions, concatenations, pooling, activations, reshapes).
    prior
        A :class:`~pyrocompress.priors.Prior` or its registered key (``"gaussian"``,
        ``"group-nj"``, ``"group-horseshoe"``, ``"spike-slab"``, or any key added with
        :func:`~pyrocompress.priors.register_prior`) for every layer; or a prior per
        layer: a mapping from each Bayesian layer's path (``"0"``,
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
        When the model has no layer with a Bayesian counterpart, a mapping of priors does not name
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
    >>> history = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
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
    _check_unshared(module)
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


def _check_unshared(module: nn.Module) -> None:
    """Refuse a layer with weights that the model holds twice or calls twice.

    Its groups would be one set of gates for two uses, and the compact network would have
    to prune both uses alike: a tied layer is converted once, trains, and then cannot be
    exported. The calls are counted on the traced graph when torch.fx can trace the model
    (an untraceable one is refused later, by the op check).
    """
    paths: dict[int, list[str]] = {}
    for path, m in module.named_modules(remove_duplicate=False):
        if _entry(m) is not None:
            paths.setdefault(id(m), []).append(path or "the model")
    for where in paths.values():
        if len(where) > 1:
            raise TypeError(
                f"the layer at {where[0]!r} is also at {', '.join(map(repr, where[1:]))}: a "
                "tied (shared) layer cannot be pruned per use; give each use its own layer"
            )
    try:
        graph = _LeafTracer().trace(module)
    except Exception:  # noqa: BLE001 - untraceable models are refused by _check_ops
        return
    modules = dict(module.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        target = modules.get(str(node.target)) if node.op == "call_module" else None
        if target is not None and _entry(target) is not None:
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    twice = [path for path, n in calls.items() if n > 1]
    if twice:
        raise TypeError(
            f"the layer {twice[0]!r} is called {calls[twice[0]]} times in forward: a reused "
            "layer cannot be pruned per use; give each use its own layer"
        )


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
    pairs = norm_pairs(net)
    norms = {path: net.get_submodule(path) for path in pairs.values()}

    def convert(path: str, m: nn.Module) -> nn.Module:
        name = path or "layer"
        entry = _entry(m)
        if entry is not None:
            layer = entry.factory(name, m, priors[name])
            if path in pairs:
                layer.attach_norm(norms[pairs[path]], pairs[path])
            return layer
        if path in norms:
            return nn.Identity()  # the norm lives in its layer now
        for child_name, child in list(m.named_children()):
            setattr(m, child_name, convert(f"{path}.{child_name}" if path else child_name, child))
        return m

    net = convert("", net)
    _check_ops(net)
    normed = [m.spec.name for m in net.modules() if isinstance(m, BayesianLayer) and m.norm]
    if guide == "conditional" and normed:
        raise ValueError(
            f"guide='conditional' is not defined for layers followed by a BatchNorm "
            f"({', '.join(normed)}); use guide='mean-field'"
        )
    if groups is not None:
        _tie_columns(net, groups)
    return BayesianNetwork(net, likelihood, feature_names=feature_names, guide=guide)
