r"""Export of any traced architecture: the user's own class, with fewer channels.

A network that is not a plain chain of layers (residual additions, concatenations,
BatchNorms, depthwise convolutions, a torchvision model) is exported in three steps.

1. **Dense copy** (:func:`dense_module`): a copy of the user's module tree in which every
   Bayesian layer is the plain layer holding its masked posterior-mean weights and every
   norm attached to a layer (:meth:`~pyrocompress.nn.BayesianLayer.attach_norm`) is back at
   its path, its affine parameters multiplied by the gate's mean (zero for a removed
   channel). It *is* the masked posterior-mean network, as an instance of the user's class.
2. **Coupled groups** (:func:`coupled_groups`): the channels that must be removed together
   — the outputs of every convolution feeding one residual sum, a norm's channels and the
   convolution before it, the pieces of a concatenation, the blocks a flatten makes of a
   channel — from Torch-Pruning's dependency graph :cite:p:`fang2023depgraph`, built on the dense
   copy.
3. **Removal**: a coupled channel is removed when it is provably dead in the dense copy —
   every module producing it produces zero (its filter, bias and norm affine are zero),
   or every layer reading it reads it with zero weights — by Torch-Pruning's
   index-based pruning functions, which slice every coupled module in place. The output
   therefore equals the dense copy's, which is checked on the example input.

**How the gate of a coupled group is shared.** Each producer keeps its own gate: the prior,
the Pyro program and the guide stay per layer, so NUTS, the analytic KLs and every
inclusion probability are unchanged, and a residual channel can be switched off by one
block and used by another, as the posterior says. The *decision* is tied
(:func:`tie_masks`): a coupled channel is removed when all of its producers' gates remove
it (it is zero everywhere) or all of its readers' gates do (a Linear layer's input gates:
nobody reads it), and otherwise kept by every producer when any producer keeps it — a
residual channel one block needs is needed by the stream. A shared gate
(one scale multiplying every producer) would make the decision the
prior's, at the price of a prior that couples layers; the tied decision removes fewer
channels only where the producers disagree.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from pyrocompress.nn import BayesianLayer, BayesianNetwork

__all__ = [
    "ChannelRule",
    "CoupledGroup",
    "coupled_groups",
    "dense_module",
    "export_module",
    "needs_graph_export",
    "network_groups",
    "register_channel_rule",
    "tie_masks",
]


def needs_graph_export(bnn: BayesianNetwork) -> bool:
    """Whether ``bnn`` is exported by this module rather than as an ``nn.Sequential`` chain.

    Everything but an ``nn.Sequential`` whose data path is a chain of layers without norms
    or grouped convolutions.

    Parameters
    ----------
    bnn
        The network.

    Returns
    -------
    bool
        ``True`` for this module's export.
    """
    from pyrocompress.nn.graph import network_graph
    from pyrocompress.nn.rules import get_rule, mask_of

    if not isinstance(bnn.net, nn.Sequential):
        return True
    for layer in bnn.bayesian_layers().values():
        if layer.norm is not None or getattr(layer, "groups", 1) != 1:
            return True
        if layer.groups_on_outputs and layer.output_axis != 1:  # e.g. an Embedding
            return True
    try:
        chain = network_graph(bnn.net).chain()
    except TypeError:
        return True
    for module in chain:
        if isinstance(module, BayesianLayer):
            continue
        own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        rule = get_rule(type(module))
        if own or rule is None or mask_of(rule, module) is None:
            return True  # a norm, or an op the chain export cannot link across
    return False


def network_groups(bnn: BayesianNetwork, example: torch.Tensor) -> list[CoupledGroup]:
    """Return the coupled channel groups of ``bnn`` (:func:`coupled_groups` of its dense copy).

    Parameters
    ----------
    bnn
        The network.
    example
        An input batch.

    Returns
    -------
    list of CoupledGroup
        The groups; the output layer's outputs are in none.
    """
    example = example[:_CHECK_EXAMPLES].detach().cpu()
    return coupled_groups(dense_module(bnn), example, keep=_output_layers(bnn))


#: Examples of the given input the export traces and checks every removal on.
_CHECK_EXAMPLES = 16


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def _layer_masks(
    bnn: BayesianNetwork, masks: dict[str, torch.Tensor] | None
) -> dict[str, torch.Tensor | None]:
    """Combine the plan's masks with the network's fixed pruning (``restrict``)."""
    out: dict[str, torch.Tensor | None] = {}
    for name, layer in bnn.bayesian_layers().items():
        mask = None if masks is None else masks.get(name)
        fixed = layer.group_mask
        if fixed is not None:
            fixed = fixed.to(torch.bool)
            mask = fixed if mask is None else mask.to(torch.bool) & fixed.to(mask.device)
        out[name] = mask
    return out


def _plain_norm(norm: nn.Module, scale: torch.Tensor | None) -> nn.Module:
    """Return a copy of ``norm`` whose output is multiplied by ``scale`` per channel."""
    plain = copy.deepcopy(norm).cpu().eval()
    if scale is None:
        return plain
    scale = scale.detach().cpu().to(torch.get_default_dtype())
    weight, bias = getattr(plain, "weight", None), getattr(plain, "bias", None)
    with torch.no_grad():
        if weight is None:  # affine=False: give it an affine map holding the scale
            fresh = type(plain)(
                plain.num_features,  # type: ignore[arg-type]
                eps=plain.eps,  # type: ignore[arg-type]
                momentum=plain.momentum,  # type: ignore[arg-type]
                affine=True,
                track_running_stats=plain.track_running_stats,  # type: ignore[arg-type]
            )
            fresh.load_state_dict(plain.state_dict(), strict=False)
            cast(torch.Tensor, fresh.weight).copy_(scale)
            cast(torch.Tensor, fresh.bias).zero_()
            return fresh.eval()
        weight.mul_(scale)  # type: ignore[operator]
        if bias is not None:
            bias.mul_(scale)  # type: ignore[operator]
    return plain


@torch.no_grad()
def dense_module(
    bnn: BayesianNetwork,
    masks: dict[str, torch.Tensor] | None = None,
    *,
    conditional: bool = False,
) -> nn.Module:
    r"""Return the masked posterior-mean network as a plain copy of the user's module tree.

    Every Bayesian layer becomes its plain layer (``to_plain``) with the posterior-mean
    weights of :meth:`~pyrocompress.nn.BayesianNetwork.point_weights` (removed groups
    zeroed); a norm attached to a layer goes back to its path with its affine parameters
    multiplied by the layer's gate mean. The result is an instance of the user's class,
    on the CPU, in eval mode, and computes what ``bnn.predict_point(x, masks)`` computes.

    Parameters
    ----------
    bnn
        The fitted network.
    masks
        Boolean group masks by layer name (True = kept), or ``None``.
    conditional
        As for :meth:`~pyrocompress.nn.BayesianNetwork.point_weights`.

    Returns
    -------
    torch.nn.Module
        The dense plain network.
    """
    masks = {k: v for k, v in _layer_masks(bnn, masks).items() if v is not None}
    point = bnn.point_weights(masks, conditional=conditional)
    dense = copy.deepcopy(bnn.net).cpu()
    layers = {id(m): m for m in bnn.bayesian_layers().values()}
    originals = dict(bnn.net.named_modules())
    for path, module in list(originals.items()):
        layer = layers.get(id(module))
        if layer is None:
            continue
        entry = point[layer]
        weight, bias = entry[0].detach().cpu(), entry[1]
        bias = None if bias is None else bias.detach().cpu()
        plain = layer.to_plain(weight, bias).eval()
        if not path:
            dense = plain
            continue
        _set_submodule(dense, path, plain)
        if layer.norm is not None and layer.norm_path is not None:
            scale = entry[2] if len(entry) == 3 else None
            _set_submodule(dense, layer.norm_path, _plain_norm(layer.norm, scale))
    return dense.eval()


# ------------------------------------------------------------------- coupled groups
@dataclass
class CoupledGroup:
    """One set of channels removed together, as Torch-Pruning's dependency graph finds it.

    Attributes
    ----------
    root
        Path of the module whose output channels index the group.
    size
        Number of coupled channels.
    members
        For each coupled channel ``i`` (``0 <= i < size``), the ``(path, side, indices)``
        of every module with parameters it touches: ``side`` is ``"out"`` (the module
        produces it) or ``"in"`` (the module reads it, at ``indices`` of its input).
    """

    root: str
    size: int
    members: list[list[tuple[str, str, list[int]]]] = field(default_factory=list)


def _side(handler: Any) -> str | None:
    name = getattr(handler, "__name__", "")
    if "out_channels" in name:
        return "out"
    if "in_channels" in name:
        return "in"
    return None


def _dependency_graph(module: nn.Module, example: torch.Tensor):
    import torch_pruning as tp  # graph surgery, imported when it is needed

    return tp, tp.DependencyGraph().build_dependency(module, example_inputs=example)


def _output_layers(bnn: BayesianNetwork) -> list[str]:
    """Return the module paths of the layers that make the network's outputs (never pruned)."""
    order = list(bnn.bayesian_layers().values())
    paths = {id(m): p for p, m in bnn.net.named_modules()}
    return [paths[id(order[-1])]] if order else []


def coupled_groups(
    dense: nn.Module, example: torch.Tensor, *, keep: list[str] | tuple[str, ...] = ()
) -> list[CoupledGroup]:
    """Return the coupled channel groups of a plain network.

    Parameters
    ----------
    dense
        A plain network (:func:`dense_module`).
    example
        An input batch (for the dependency graph's trace).
    keep
        Paths of modules whose output channels must not be pruned (the output layer).

    Returns
    -------
    list of CoupledGroup
        One per group Torch-Pruning finds, rooted at a Linear or convolution.
    """
    tp, graph = _dependency_graph(dense, example)
    paths = {id(m): p for p, m in dense.named_modules()}
    ignored = [dense.get_submodule(p) if p else dense for p in keep]
    out = []
    for group in graph.get_all_groups(
        ignored_layers=ignored,
        root_module_types=tuple(t for t, r in _CHANNEL_RULES.items() if r.prune_out),
    ):
        root_dep = group.items[0].dep
        root = root_dep.target.module
        size = len(group.items[0].idxs)
        found = CoupledGroup(paths.get(id(root), "?"), size)
        for i in range(size):
            single = graph.get_pruning_group(root, root_dep.handler, idxs=[i])
            members = []
            for item in single.items:
                module = item.dep.target.module
                side = _side(item.dep.handler)
                if id(module) not in paths or side is None:
                    continue  # an op node (add, cat, reshape): no parameters
                members.append((paths[id(module)], side, [int(j) for j in item.idxs]))
            found.members.append(members)
        out.append(found)
    return out


@dataclass
class _Gates:
    """The gates on one coupled channel: of its producers and of its readers."""

    producers: list[tuple[str, int]]
    readers: list[tuple[str, int]]
    #: every module producing the channel is a layer gating it (else: not a producer side)
    all_producers_gated: bool
    #: every module reading the channel is a layer gating it (else: not a reader side)
    all_readers_gated: bool


def _gates_of(
    bnn: BayesianNetwork, members: list[tuple[str, str, list[int]]], paths: dict[str, str]
) -> _Gates:
    """Classify the ``(layer, group)`` gates on one coupled channel (``paths``: path -> name)."""
    layers = bnn.bayesian_layers()
    norm_paths = {layers[name].norm_path for name in paths.values() if layers[name].norm_path}
    producers: list[tuple[str, int]] = []
    readers: list[tuple[str, int]] = []
    producers_gated = readers_gated = True
    for path, side, idxs in members:
        name = paths.get(path)
        layer = None if name is None else layers[name]
        if side == "out":
            if path in norm_paths:
                continue  # the norm of a layer: that layer is the producer
            if layer is not None and layer.groups_on_outputs:
                producers += [(layer.spec.name, j) for j in idxs]
            else:
                producers_gated = False
        else:
            if layer is not None and not layer.groups_on_outputs and layer.input_axis == -1:
                column = layer.spec.column_groups
                readers += [
                    (layer.spec.name, int(column[j]) if column is not None else j) for j in idxs
                ]
            else:
                readers_gated = False
    return _Gates(sorted(set(producers)), sorted(set(readers)), producers_gated, readers_gated)


def tie_masks(
    bnn: BayesianNetwork, masks: dict[str, torch.Tensor], groups: list[CoupledGroup]
) -> dict[str, torch.Tensor]:
    """Tie the decisions of the gates on each coupled channel.

    A coupled channel is removed when every gate of its producers removes it (it is zero
    everywhere) or every gate of its readers does (nobody reads it); then all of its gates
    say so. Otherwise the producers' gates are tied: the channel is kept by all of them
    when any keeps it (module docstring), and the readers' gates stay as they are.

    Parameters
    ----------
    bnn
        The network.
    masks
        Boolean group masks by layer name (True = kept).
    groups
        The coupled groups (:func:`coupled_groups`).

    Returns
    -------
    dict of str to Tensor
        New masks.
    """
    out = {k: v.clone().to(torch.bool) for k, v in masks.items()}
    paths = {p: n for n, p in _layer_paths(bnn).items()}
    for group in groups:
        for members in group.members:
            gates = _gates_of(bnn, members, paths)
            producers = [(n, j) for n, j in gates.producers if n in out]
            readers = [(n, j) for n, j in gates.readers if n in out]
            off_by_producers = (
                gates.all_producers_gated
                and bool(producers)
                and not any(bool(out[n][j]) for n, j in producers)
            )
            off_by_readers = (
                gates.all_readers_gated
                and bool(readers)
                and not any(bool(out[n][j]) for n, j in readers)
            )
            if off_by_producers or off_by_readers:
                for n, j in producers + readers:
                    out[n][j] = False
            elif any(bool(out[n][j]) for n, j in producers):
                for n, j in producers:
                    out[n][j] = True
    return out


def _layer_paths(bnn: BayesianNetwork) -> dict[str, str]:
    """Return each Bayesian layer's module path in ``bnn.net``, by layer name."""
    paths = {id(m): p for p, m in bnn.net.named_modules()}
    return {name: paths[id(layer)] for name, layer in bnn.bayesian_layers().items()}


# ------------------------------------------------------------------------ removal
def _zero(t: torch.Tensor | None) -> bool:
    return t is None or not bool(t.ne(0).any())


@dataclass(frozen=True)
class ChannelRule:
    """How a plain module with weights holds its channels, for the export's surgery.

    Attributes
    ----------
    out_axis
        The axis of ``weight`` that indexes its output channels.
    in_axis
        The axis of ``weight`` that indexes its input channels, or ``None`` (it reads none
        with weights of its own, or they are coupled to its outputs: a grouped convolution).
    prune_out
        The name of Torch-Pruning's function that removes its output channels when it roots
        a coupled group, or ``None`` (never a root).
    bias_per_output
        Whether ``bias`` has one entry per output channel (a zero channel needs it zero).
    """

    out_axis: int
    in_axis: int | None
    prune_out: str | None
    bias_per_output: bool = True


_CHANNEL_RULES: dict[type[nn.Module], ChannelRule] = {}


def register_channel_rule(module_type: type[nn.Module], rule: ChannelRule) -> None:
    """Register how the export's surgery reads the channels of a plain module type.

    A type without a rule is never found dead (its channels are kept), and never roots a
    coupled group.

    Parameters
    ----------
    module_type
        The module class (subclasses are covered).
    rule
        Its :class:`ChannelRule`.
    """
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"module_type must be an nn.Module subclass, got {module_type!r}")
    _CHANNEL_RULES[module_type] = rule


def _channel_rule(module: nn.Module) -> ChannelRule | None:
    for cls in type(module).__mro__:
        if cls in _CHANNEL_RULES:
            return _CHANNEL_RULES[cls]
    return None


register_channel_rule(nn.Linear, ChannelRule(0, 1, "prune_linear_out_channels"))
register_channel_rule(nn.modules.conv._ConvNd, ChannelRule(0, 1, "prune_conv_out_channels"))
register_channel_rule(
    nn.Embedding, ChannelRule(1, None, "prune_embedding_out_channels", bias_per_output=False)
)
# a norm outputs zero on a channel whose affine weight and bias are zero
register_channel_rule(nn.modules.batchnorm._BatchNorm, ChannelRule(0, None, None))


def _weight(module: nn.Module) -> torch.Tensor | None:
    weight = getattr(module, "weight", None)
    return weight if isinstance(weight, torch.Tensor) else None


def _produces_zero(module: nn.Module, idxs: list[int]) -> bool:
    """Whether ``module`` outputs zero on its output channels ``idxs`` whatever its input."""
    rule, weight = _channel_rule(module), _weight(module)
    if rule is None or weight is None:  # unknown, or a norm without affine parameters
        return False
    index = torch.as_tensor(idxs, dtype=torch.long)
    bias = getattr(module, "bias", None)
    if rule.bias_per_output and isinstance(bias, torch.Tensor) and not _zero(bias[index]):
        return False
    return _zero(weight.index_select(rule.out_axis, index))


def _reads_nothing(module: nn.Module, idxs: list[int]) -> bool:
    """Whether ``module`` reads its input channels ``idxs`` with zero weights only."""
    rule, weight = _channel_rule(module), _weight(module)
    if rule is None or weight is None or rule.in_axis is None or _grouped(module):
        return False
    return _zero(weight.index_select(rule.in_axis, torch.as_tensor(idxs, dtype=torch.long)))


def _grouped(module: nn.Module) -> bool:
    """Whether ``module`` is a grouped convolution (its inputs coupled to its outputs)."""
    return getattr(module, "groups", 1) != 1


def _dead(
    dense: nn.Module, members: list[tuple[str, str, list[int]]], normed: frozenset[str]
) -> bool:
    """Whether a coupled channel is produced as zero everywhere, or read by nobody.

    A layer in ``normed`` feeds only its norm, which is the channel's producer.
    """
    producers = [
        (dense.get_submodule(p), i) for p, s, i in members if s == "out" and p not in normed
    ]
    readers = [(dense.get_submodule(p), i) for p, s, i in members if s == "in"]
    readers = [(m, i) for m, i in readers if not _grouped(m)]
    if producers and all(_produces_zero(m, i) for m, i in producers):
        return True
    return bool(readers) and all(_reads_nothing(m, i) for m, i in readers)


@dataclass
class Removal:
    """What :func:`export_module` removed: output and input indices by module path."""

    out: dict[str, set[int]] = field(default_factory=dict)
    inp: dict[str, set[int]] = field(default_factory=dict)


def _remove_dead(
    dense: nn.Module, example: torch.Tensor, keep: list[str], normed: frozenset[str]
) -> tuple[nn.Module, Removal]:
    """Return ``dense`` without its dead coupled channels (``normed``: see :func:`_dead`).

    Each group is removed on a copy that must still compute the same output on
    ``example``; a group that does not (channels coupled to the network's input, which
    cannot shrink) is kept whole.
    """
    groups = coupled_groups(dense, example, keep=keep)
    with torch.no_grad():
        reference = dense(example)
    tol = 1e-4 * float(reference.abs().max().clamp_min(1e-12))
    removed = Removal()
    # decide every group on the dense weights first, then slice
    dead = {}
    for k, group in enumerate(groups):
        found = [i for i, members in enumerate(group.members) if _dead(dense, members, normed)]
        if len(found) == group.size:  # keep one channel: a layer with no output is no layer
            found = found[1:]
        if found:
            dead[k] = found
    current = dense
    for k, found in dead.items():
        group = groups[k]
        trial = copy.deepcopy(current)
        tp, graph = _dependency_graph(trial, example)
        root = trial.get_submodule(group.root) if group.root else trial
        handler = _out_handler(tp, root)
        graph.get_pruning_group(root, handler, idxs=found).prune()
        try:
            with torch.no_grad():
                out = trial(example)
        except RuntimeError:  # e.g. a sum with the network's input, which keeps its size
            continue
        if out.shape != reference.shape or float((out - reference).abs().max()) > tol:
            continue
        current = trial
        for i in found:
            for path, side, idxs in group.members[i]:
                target = removed.out if side == "out" else removed.inp
                target.setdefault(path, set()).update(idxs)
    return current, removed


def _out_handler(tp: Any, root: nn.Module) -> Any:
    """Return Torch-Pruning's function that removes output channels of ``root``."""
    rule = _channel_rule(root)
    if rule is None or rule.prune_out is None:
        raise TypeError(f"{type(root).__name__} roots no coupled group (register_channel_rule)")
    return getattr(tp, rule.prune_out)


def _count(module: nn.Module, *, weights_only: bool = False) -> int:
    total = 0
    for m in module.modules():
        rule = _channel_rule(m)
        if weights_only and (rule is None or rule.prune_out is None):  # layers, not norms
            continue
        for name, p in m.named_parameters(recurse=False):
            if weights_only and name != "weight":
                continue
            total += p.numel()
    return total


def export_module(
    bnn: BayesianNetwork,
    masks: dict[str, torch.Tensor],
    example: torch.Tensor,
    *,
    conditional: bool = False,
):
    """Return the compact network as an instance of the user's class, and its measures.

    The decisions of coupled gates are tied (:func:`tie_masks`), the masked posterior-mean
    network is copied into the user's class (:func:`dense_module`) and its dead coupled
    channels are removed (module docstring).

    Parameters
    ----------
    bnn
        The fitted network.
    masks
        Boolean group masks by layer name (True = kept).
    example
        An input batch (any size) for the dependency graph and the check.
    conditional
        As for :func:`dense_module`.

    Returns
    -------
    module : torch.nn.Module
        The compact network, in eval mode, on the CPU.
    info : CompactInfo
        Its measures.
    masks : dict of str to Tensor
        The tied masks it equals the masked posterior-mean network under.

    Raises
    ------
    RuntimeError
        If the compact network's output differs from the dense copy's on ``example``
        (a coupling the dependency graph missed).
    """
    from pyrocompress.compress.compact import CompactInfo, count_flops

    example = example[:_CHECK_EXAMPLES].detach().cpu()
    keep = _output_layers(bnn)
    tied = tie_masks(bnn, masks, network_groups(bnn, example))
    dense = dense_module(bnn, tied, conditional=conditional)
    with torch.no_grad():
        reference = dense(example)
    normed = frozenset(n for n, m in bnn.bayesian_layers().items() if m.norm is not None)
    compact, removal = _remove_dead(dense, example, keep, normed)
    compact = compact.eval()
    with torch.no_grad():
        out = compact(example)
    scale = reference.abs().max().clamp_min(1e-12)
    if out.shape != reference.shape or (out - reference).abs().max() > 1e-4 * scale:
        raise RuntimeError(
            "the pruned network's output differs from the masked posterior-mean network's; "
            "a channel coupling was missed — please report this model"
        )
    layers = bnn.bayesian_layers()
    order = list(bnn.bayesian_layers())
    sizes_before, sizes_after = [], []
    kept_out: dict[str, list[int]] = {}
    kept_in: dict[str, list[int]] = {}
    paths = {id(m): p for p, m in bnn.net.named_modules()}
    where = {name: paths[id(layers[name])] for name in order}
    for name in order:
        path = where[name]
        n_out, n_in = layers[name].spec.weight_shape[:2]
        gone_out = removal.out.get(path, set())
        gone_in = removal.inp.get(path, set())
        kept_out[name] = [i for i in range(n_out) if i not in gone_out]
        n_in_total = n_in * getattr(layers[name], "groups", 1)
        kept_in[name] = [i for i in range(n_in_total) if i not in gone_in]
        sizes_before.append(n_out)
        sizes_after.append(len(kept_out[name]))
    first = layers[order[0]] if order else None
    in_before = 0 if first is None else first.spec.weight_shape[1] * getattr(first, "groups", 1)
    info = CompactInfo(
        architecture_before=[in_before, *sizes_before],
        architecture_after=[in_before, *sizes_after],
        params_before=_count(dense),
        params_after=_count(compact),
        weights_before=_count(dense, weights_only=True),
        weights_after=_count(compact, weights_only=True),
        flops_before=count_flops(dense, example),
        flops_after=count_flops(compact, example),
        kept_inputs=kept_in,
        kept_outputs=kept_out,
        layer_weights={
            n: _count(compact.get_submodule(where[n]) if where[n] else compact, weights_only=True)
            for n in order
        },
        weight_keys={n: f"{where[n]}.weight" if where[n] else "weight" for n in order},
    )
    return compact, info, tied
