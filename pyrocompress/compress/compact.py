"""Export: the physically smaller plain-PyTorch network, its cost, and its file format.

Given boolean group masks for every Bayesian layer, :func:`build_compact` removes every
unit the masks make useless and copies the posterior-mean weights of the rest into plain
``nn.Linear`` / ``nn.Conv2d`` modules:

* a pruned input group of a Linear layer removes that input (an input feature, selected
  by a :class:`SelectFeatures` module at the front, or a neuron of the previous layer,
  whose row and bias are removed there);
* a pruned Conv2d channel removes the channel's filter and bias, the matching input
  channel of the next Conv2d, or its block of inputs of the next Linear after Flatten;
* a channel all of whose inputs to the next Linear are pruned is removed too.

The compact network computes exactly what the masked posterior-mean Bayesian network
computes (tested). Where a pruned channel still produced a constant (an activation with
``f(0) != 0``), that constant's effect on the next layer is folded into its bias.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from pyrocompress.effects import PointEstimate
from pyrocompress.nn import BayesianConv2d, BayesianLayer, BayesianLinear, BayesianNetwork
from pyrocompress.nn.graph import network_graph, output_shapes
from pyrocompress.nn.rules import OpRule, get_rule, register_op

__all__ = [
    "CompactInfo",
    "SelectFeatures",
    "build_compact",
    "chain_of",
    "count_flops",
    "op_flops",
]


class SelectFeatures(nn.Module):
    """Keep the given feature indices of the last dimension (``x[..., indices]``).

    Used where pruning removed input features or flattened positions, so that the compact
    network still takes the original input.
    """

    def __init__(self, indices: torch.Tensor | list[int], in_features: int):
        super().__init__()
        self.in_features = int(in_features)
        self.register_buffer("indices", torch.as_tensor(indices, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a gather with a broadcast index is about twice as fast as index_select on CPU
        index = self.indices.expand(*x.shape[:-1], len(self.indices))
        return torch.gather(x, -1, index)

    def extra_repr(self) -> str:
        return f"{len(self.indices)} of {self.in_features}"


register_op(SelectFeatures, OpRule(mask="same", args=("indices", "in_features")))


# ------------------------------------------------------------------------ structure
def chain_of(net: nn.Module) -> list[nn.Module]:
    """Return the data path of ``net`` as modules in order (the traced graph's chain).

    Pruning needs to know which layer feeds which: it reads the graph torch.fx traces
    (:meth:`~pyrocompress.nn.NetworkGraph.chain`), so a module with its own ``forward``
    works when its data path is a chain; a branching one raises ``TypeError``.
    """
    return network_graph(net).chain()


@dataclass
class CompactInfo:
    """What :func:`build_compact` measured about the original and the compact network."""

    architecture_before: list[int]
    architecture_after: list[int]
    params_before: int
    params_after: int
    weights_before: int
    weights_after: int
    flops_before: int
    flops_after: int
    kept_inputs: dict[str, list[int]] = field(default_factory=dict)
    kept_outputs: dict[str, list[int]] = field(default_factory=dict)


def op_flops(module: nn.Module, out_shape: torch.Size) -> int:
    """Return the FLOPs of one module for one example whose output has ``out_shape``."""
    if isinstance(module, BayesianLayer):
        return module.flops(out_shape)
    rule = get_rule(type(module))
    return 0 if rule is None or rule.flops is None else rule.flops(module, out_shape)


def count_flops(net: nn.Module, example: torch.Tensor) -> int:
    """FLOPs of one forward pass of a network for one example: 2 x multiply-adds of its
    Linear and Conv2d layers (biases and activations are not counted)."""
    chain = chain_of(net)
    with torch.no_grad():
        shapes = output_shapes(chain, example[:1])
    return sum(op_flops(m, s) for m, s in zip(chain, shapes, strict=True))


def build_compact(
    bnn: BayesianNetwork,
    masks: dict[str, torch.Tensor],
    example: torch.Tensor,
    *,
    conditional: bool = False,
    round_weights: dict[str, int] | None = None,
) -> tuple[nn.Sequential, CompactInfo]:
    r"""The smaller plain network equal to the masked posterior-mean network.

    Parameters
    ----------
    bnn
        The fitted network; its ``net`` must be a (nested) ``nn.Sequential``.
    masks
        Boolean group masks (True = kept) per Bayesian layer name.
    example
        One input (any batch size) for shape propagation.
    conditional
        Kept groups carry their marginal posterior-mean weights :math:`E[g]\,E[\tilde W]`
        (the default), so that the compact network with nothing pruned is the
        posterior-mean network the automatic rule compares against; ``True`` uses the
        mean given inclusion instead (spike-and-slab: :math:`\mu` rather than
        :math:`\pi\mu`, the weights of the model with every kept group switched on; see
        :meth:`~pyrocompress.nn.BayesianLayer.point_weights`). The two differ only for the
        spike-and-slab prior, and only where inclusion probabilities are away from 1.
    round_weights
        Optional mantissa bits per layer name; weights are then rounded to the grid
        :math:`2^{-t}` (Louizos et al. 2017, §4) and no longer equal the masked network's.
    """
    chain = chain_of(bnn.net)
    device = bnn.device
    example = example[:1].to(device)
    weighted = [i for i, m in enumerate(chain) if isinstance(m, BayesianLayer)]
    if not weighted:
        raise ValueError("the network has no Bayesian layer")
    bnn.eval()
    weights = bnn.point_weights(masks, conditional=conditional)
    with torch.no_grad(), PointEstimate(weights):
        shapes = output_shapes(chain, example)
    point = {layer.spec.name: w for layer, w in weights.items()}
    in_shapes = [example.shape] + shapes[:-1]

    # ---- which inputs each layer keeps and which outputs each layer must produce
    keep_in: dict[int, torch.Tensor] = {}
    keep_out: dict[int, torch.Tensor] = {}
    dead_const: dict[int, torch.Tensor] = {}  # consumer index -> constant input of dead units
    select_after_flatten: dict[int, tuple[torch.Tensor, int]] = {}
    for pos, i in enumerate(weighted):
        layer = chain[i]
        mask = masks[layer.spec.name].to(torch.bool).cpu()
        if isinstance(layer, BayesianLinear):
            keep_in[i] = mask.clone()
        else:
            keep_in[i] = torch.ones(layer.in_channels, dtype=torch.bool)
            keep_out[i] = mask.clone()
        if pos == len(weighted) - 1:
            keep_out[i] = torch.ones(layer.spec.weight_shape[0], dtype=torch.bool)
    for pos in range(len(weighted) - 1):
        p, c = weighted[pos], weighted[pos + 1]
        prod, cons = chain[p], chain[c]
        between = chain[p + 1 : c]
        unknown = [m for m in between if _mask_rule(m) is None]
        if unknown:
            raise TypeError(
                f"cannot prune across {type(unknown[0]).__name__}: its op rule does not say "
                "how a channel mask passes through it (OpRule.mask)"
            )
        flat = [m for m in between if _mask_rule(m) == "flatten"]
        if isinstance(prod, BayesianLinear) and isinstance(cons, BayesianLinear):
            keep_out[p] = keep_in[c].clone()
        elif isinstance(prod, BayesianConv2d) and isinstance(cons, BayesianConv2d):
            keep_in[c] = keep_out[p].clone()
            if not keep_out[p].all():
                dead_const[c] = _dead_constant(between, shapes[p], keep_out[p], device)
        elif isinstance(prod, BayesianConv2d) and isinstance(cons, BayesianLinear) and flat:
            before_flat = between[: between.index(flat[0])]
            channel_shape = (
                output_shapes(before_flat, torch.zeros(shapes[p], device=device))[-1]
                if before_flat
                else shapes[p]
            )
            per_channel = math.prod(channel_shape[2:])
            used = keep_in[c].reshape(-1, per_channel)
            alive = keep_out[p] & used.any(dim=1)
            if not alive.any():
                # the next layer reads nothing: keep one channel and one of its (zero-weight)
                # inputs so that the compact network stays a valid, still exact, network
                c0 = int(keep_out[p].to(torch.int8).argmax())
                alive[c0] = True
                used = used.clone()
                used[c0, 0] = True
            if not keep_out[p].all():
                const = _dead_constant(before_flat, shapes[p], keep_out[p], device)
                dead_const[c] = const.flatten(1)
            keep_out[p] = alive
            feat = (used & alive[:, None]).reshape(-1)
            keep_in[c] = feat
            within = used[alive].reshape(-1)
            if not within.all():
                idx = torch.nonzero(within).squeeze(-1)
                select_after_flatten[id(flat[0])] = (idx, int(within.numel()))
        else:
            raise ValueError(
                f"cannot prune across {type(prod).__name__} -> {type(cons).__name__}; "
                "supported: Linear->Linear, Conv2d->Conv2d, Conv2d->Flatten->Linear"
            )

    # ---- build the compact modules
    modules: list[nn.Module] = []
    first = weighted[0]
    for i, m in enumerate(chain):
        if i == first and isinstance(m, BayesianLinear) and not keep_in[i].all():
            idx = torch.nonzero(keep_in[i]).squeeze(-1)
            modules.append(SelectFeatures(idx, m.in_features))
        if isinstance(m, BayesianLayer):
            w, b = point[m.spec.name]
            w, b = w.detach().cpu().clone(), None if b is None else b.detach().cpu().clone()
            if i in dead_const:
                b = _fold(m, w, b, dead_const[i].cpu(), keep_in[i], in_shapes[i])
            rows = torch.nonzero(keep_out[i]).squeeze(-1)
            cols = torch.nonzero(keep_in[i]).squeeze(-1)
            w = w[rows][:, cols]
            if round_weights is not None and m.spec.name in round_weights:
                delta = 2.0 ** -round_weights[m.spec.name]
                w = torch.floor(w / delta + 0.5) * delta
            if isinstance(m, BayesianLinear):
                new = nn.Linear(len(cols), len(rows), bias=b is not None)
            else:
                new = nn.Conv2d(
                    len(cols), len(rows), m.kernel_size, m.stride, m.padding, m.dilation,
                    bias=b is not None,
                )  # fmt: skip
            with torch.no_grad():
                new.weight.copy_(w)
                if b is not None:
                    new.bias.copy_(b[rows])
            modules.append(new)
        else:
            modules.append(copy.deepcopy(m).cpu())
            if id(m) in select_after_flatten:
                idx, size = select_after_flatten[id(m)]
                modules.append(SelectFeatures(idx, size))
    compact = nn.Sequential(*modules).eval()

    # ---- sizes and costs
    info = _measure(chain, weighted, shapes, keep_in, keep_out, compact, example.cpu())
    return compact, info


def _mask_rule(module: nn.Module) -> str | None:
    rule = get_rule(type(module))
    return None if rule is None else rule.mask


def _dead_constant(between, out_shape, alive, device) -> torch.Tensor:
    """What the elementwise / pooling modules make of a zero channel, for dead channels."""
    x = torch.zeros(out_shape, device=device)
    for m in between:
        if _mask_rule(m) == "flatten":
            break
        x = m(x)
    x = x.clone()
    x[:, alive] = 0.0
    return x


def _fold(layer, w, b, const, keep_in, in_shape) -> torch.Tensor:
    """Fold the constant input of removed-but-nonzero units into the bias."""
    if not bool(const.abs().gt(0).any()):
        return b
    if b is None:
        raise ValueError(
            f"layer {layer.spec.name!r} reads a constant from a pruned unit but has no bias "
            "to absorb it; use an activation with f(0) = 0 (ReLU) or give the layer a bias"
        )
    dead = const.clone()
    if isinstance(layer, BayesianLinear):
        delta = torch.nn.functional.linear(dead.reshape(1, -1), w).reshape(-1)
        return b + delta
    out = torch.nn.functional.conv2d(dead, w, None, layer.stride, layer.padding, layer.dilation)
    per_channel = out.mean(dim=(0, 2, 3))
    if not torch.allclose(out, per_channel[None, :, None, None].expand_as(out), atol=1e-6):
        raise ValueError(
            f"cannot fold the constant output of pruned channels into {layer.spec.name!r}: "
            "its zero padding makes the contribution position-dependent; use ReLU"
        )
    return b + per_channel


def _measure(chain, weighted, shapes, keep_in, keep_out, compact, example) -> CompactInfo:
    arch_before = [chain[weighted[0]].spec.weight_shape[1]]
    arch_after = [int(keep_in[weighted[0]].sum())]
    params_b = params_a = weights_b = weights_a = flops_b = 0
    for pos, i in enumerate(weighted):
        layer = chain[i]
        if (
            pos > 0
            and isinstance(layer, BayesianLinear)
            and isinstance(chain[weighted[pos - 1]], BayesianConv2d)
        ):
            arch_before.append(layer.in_features)
            arch_after.append(int(keep_in[i].sum()))
        arch_before.append(layer.spec.weight_shape[0])
        arch_after.append(int(keep_out[i].sum()))
        n_w = math.prod(layer.spec.weight_shape)
        n_b = layer.spec.weight_shape[0] if layer.spec.has_bias else 0
        weights_b += n_w
        params_b += n_w + n_b
        flops_b += layer.flops(shapes[i])
    for m in compact.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            weights_a += m.weight.numel()
            params_a += m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
    names = [chain[i].spec.name for i in weighted]

    def indices(keep: dict[int, torch.Tensor]) -> dict[str, list[int]]:
        return {n: torch.nonzero(keep[i]).squeeze(-1).tolist() for n, i in zip(names, weighted)}

    return CompactInfo(
        architecture_before=arch_before,
        architecture_after=arch_after,
        params_before=params_b,
        params_after=params_a,
        weights_before=weights_b,
        weights_after=weights_a,
        flops_before=flops_b,
        flops_after=count_flops(compact, example),
        kept_inputs=indices(keep_in),
        kept_outputs=indices(keep_out),
    )
