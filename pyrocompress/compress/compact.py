"""Export: the physically smaller plain-PyTorch network, its cost, and its file format.

Given boolean group masks for every Bayesian layer, :func:`build_compact` removes every
unit the masks make useless and copies the posterior-mean weights of the rest into plain
``nn.Linear`` / ``nn.Conv2d`` modules:

* a pruned input group of a Linear layer removes its inputs (input features, selected
  by a :class:`SelectFeatures` module at the front: every column of a group tied by
  ``bayesianize(..., groups=...)``; or a neuron of the previous layer, whose row and bias
  are removed there);
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
from typing import TYPE_CHECKING

import torch
from torch import nn

from pyrocompress.effects import PointEstimate
from pyrocompress.nn import BayesianLayer, BayesianNetwork
from pyrocompress.nn.graph import network_graph, output_shapes
from pyrocompress.nn.rules import OpRule, get_rule, mask_of, register_op

__all__ = [
    "CompactInfo",
    "SelectFeatures",
    "build_compact",
    "chain_of",
    "count_flops",
    "op_flops",
    "predict_batches",
    "quantize_weights",
    "weight_tensors",
]


class SelectFeatures(nn.Module):
    """Keep the given feature indices of the last dimension (``x[..., indices]``).

    Used where pruning removed input features or flattened positions, so that the compact
    network still takes the original input.

    The module compiles with :func:`torch.jit.script` and :func:`torch.export.export` (a
    symbolic batch included): its state is the ``indices`` buffer (int64) and the integer
    attribute ``in_features``, and ``forward`` builds the index's shape as a list of
    integers rather than by unpacking one.

    Examples
    --------
    >>> import torch, pyrocompress as pc
    >>> select = pc.SelectFeatures([0, 2], in_features=4)
    >>> select
    SelectFeatures(2 of 4)
    >>> select(torch.arange(8.0).reshape(2, 4))
    tensor([[0., 2.],
            [4., 6.]])

    :func:`~pyrocompress.prune` puts one in front of the compact network when it removes
    input features (:class:`~pyrocompress.PruneResult`).
    """

    if TYPE_CHECKING:
        # for the type checker only: TorchScript reads the buffer's type from the tensor,
        # and cannot read this annotation, which ``from __future__ import annotations``
        # turns into a string
        indices: torch.Tensor

    def __init__(self, indices: torch.Tensor | list[int], in_features: int):
        super().__init__()
        self.in_features = int(in_features)
        self.register_buffer("indices", torch.as_tensor(indices, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x[..., indices]``, the kept features of the last dimension of ``x``."""
        # a gather with a broadcast index is about twice as fast as index_select on CPU;
        # the shape is a list (TorchScript cannot size an unpacked ``*x.shape[:-1]``)
        shape = list(x.shape[:-1])
        shape.append(self.indices.shape[0])
        return torch.gather(x, -1, self.indices.expand(shape))

    def extra_repr(self) -> str:
        """Return how many features are kept of how many, e.g. ``3 of 10``."""
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
    #: Kept weights by layer name, where the compact network is not a chain of layers.
    layer_weights: dict[str, int] | None = None
    #: The compact network's state key of each layer's weight (``"1.weight"``), by name.
    weight_keys: dict[str, str] = field(default_factory=dict)


def weight_tensors(compact: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Return the weight and bias of each module of a compact network that has a weight."""
    out = []
    for m in compact.modules():
        weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
        if isinstance(weight, nn.Parameter):
            out.append((weight, bias if isinstance(bias, torch.Tensor) else None))
    return out


def op_flops(module: nn.Module, out_shape: torch.Size) -> int:
    """Return the FLOPs of one module for one example whose output has ``out_shape``."""
    if isinstance(module, BayesianLayer):
        return module.flops(out_shape)
    rule = get_rule(type(module))
    return 0 if rule is None or rule.flops is None else rule.flops(module, out_shape)


def count_flops(net: nn.Module, example: torch.Tensor) -> int:
    """Return the FLOPs of one forward pass of ``net`` for one example.

    Two times the multiply-adds of its layers with weights (biases and activations are
    not counted): the traced graph is run on the example
    (:meth:`~pyrocompress.nn.NetworkGraph.run`) and every module adds its op rule's (or
    its Bayesian layer's) FLOPs for the output shape it produced.

    Parameters
    ----------
    net
        A plain (compact) network, or a converted one (its layers compute with their
        posterior means here only if called under a point estimate).
    example
        An input; only its first example is used.

    Returns
    -------
    int
        The FLOPs.
    """
    total = 0

    def call(node, op: object, args: tuple, kwargs: dict):
        nonlocal total
        if isinstance(op, str):  # a tensor method
            return getattr(args[0], op)(*args[1:], **kwargs)
        out = op(*args, **kwargs)  # type: ignore[operator]  (a module or a function)
        if isinstance(op, nn.Module) and isinstance(out, torch.Tensor):
            total += op_flops(op, out.shape)
        return out

    with torch.no_grad():
        network_graph(net).run(example[:1], call)
    return total


def build_compact(
    bnn: BayesianNetwork,
    masks: dict[str, torch.Tensor],
    example: torch.Tensor,
    *,
    conditional: bool = False,
) -> tuple[nn.Sequential, CompactInfo]:
    r"""Build the smaller plain network equal to the masked posterior-mean network.

    Parameters
    ----------
    bnn
        The fitted network; the data path of its traced ``net`` must be a chain of layers
        (:meth:`~pyrocompress.nn.NetworkGraph.chain`).
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
    """
    chain = chain_of(bnn.net)
    device = bnn.device
    example = example[:1].to(device)
    layers = {i: m for i, m in enumerate(chain) if isinstance(m, BayesianLayer)}
    weighted = list(layers)
    if not weighted:
        raise ValueError("the network has no Bayesian layer")
    bnn.eval()
    weights = bnn.point_weights(masks, conditional=conditional)
    with torch.no_grad(), PointEstimate(weights):
        shapes = output_shapes(chain, example)
    point = {layer.spec.name: (w[0], w[1]) for layer, w in weights.items()}

    # ---- which inputs each layer keeps and which outputs each layer must produce
    keep_in: dict[int, torch.Tensor] = {}
    keep_out: dict[int, torch.Tensor] = {}
    for pos, i in enumerate(weighted):
        layer = layers[i]
        mask = masks[layer.spec.name].to(torch.bool).cpu()
        n_out, n_in = layer.spec.weight_shape[:2]
        keep_out[i] = (
            mask.clone() if layer.groups_on_outputs else torch.ones(n_out, dtype=torch.bool)
        )
        # groups on the inputs: a kept group keeps all of its columns (column groups)
        keep_in[i] = (
            torch.ones(n_in, dtype=torch.bool)
            if layer.groups_on_outputs
            else layer.spec.expand_inputs(mask).clone()
        )
        if pos == len(weighted) - 1:
            keep_out[i] = torch.ones(n_out, dtype=torch.bool)
    dead_const: dict[int, torch.Tensor] = {}  # consumer index -> constant input of dead units
    select_after_flatten: dict[int, tuple[torch.Tensor, int]] = {}
    for p, c in zip(weighted[:-1], weighted[1:], strict=True):
        _link(chain, layers, p, c, shapes[p], device, keep_in, keep_out, dead_const,
              select_after_flatten)  # fmt: skip

    # ---- build the compact modules
    modules: list[nn.Module] = []
    weight_keys: dict[str, str] = {}
    first = weighted[0]
    for i, m in enumerate(chain):
        if i == first and not keep_in[i].all():
            head = layers[i]
            if head.input_axis != -1:
                raise ValueError(
                    f"the first layer {head.spec.name!r} prunes inputs along axis "
                    f"{head.input_axis}; only inputs along the last axis can be selected"
                )
            idx = torch.nonzero(keep_in[i]).squeeze(-1)
            modules.append(SelectFeatures(idx, head.spec.weight_shape[1]))
        if isinstance(m, BayesianLayer):
            w, b = point[m.spec.name]
            w, b = w.detach().cpu().clone(), None if b is None else b.detach().cpu().clone()
            if i in dead_const:
                b = _fold(m, w, b, dead_const[i].cpu())
            rows = torch.nonzero(keep_out[i]).squeeze(-1)
            cols = torch.nonzero(keep_in[i]).squeeze(-1)
            w = w[rows][:, cols]
            weight_keys[m.spec.name] = f"{len(modules)}.weight"
            modules.append(m.to_plain(w, None if b is None else b[rows]))
        else:
            modules.append(copy.deepcopy(m).cpu())
            if id(m) in select_after_flatten:
                idx, size = select_after_flatten[id(m)]
                modules.append(SelectFeatures(idx, size))
    compact = nn.Sequential(*modules).eval()

    # ---- sizes and costs
    info = _measure(layers, shapes, keep_in, keep_out, compact, example.cpu())
    info.weight_keys = weight_keys
    return compact, info


@torch.no_grad()
def predict_batches(module: nn.Module, X: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Return ``module(X)``, computed ``batch_size`` examples at a time (no gradients)."""
    return torch.cat([module(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])


def quantize_weights(module: nn.Module, mantissa_bits: dict[str, int]) -> nn.Module:
    r"""Return a copy of ``module`` with the named weights rounded to their fixed-point grid.

    Each state entry ``key`` of ``mantissa_bits`` (``"1.weight"``) is rounded to the
    nearest point of the grid :math:`\delta = 2^{-t}`,
    :math:`w \mapsto \delta\,\lfloor w/\delta + 1/2 \rfloor` (:cite:t:`louizos2017bayesian{§4}`;
    :meth:`~pyrocompress.Posterior.bit_precision` gives :math:`t`, from the posterior of
    the effective weight :math:`E[g]\,\tilde W`). Where a norm follows a layer, the stored
    weight is the layer's own :math:`\tilde W` (its gate lives in the norm's scale) and it
    is :math:`\tilde W` that is rounded: the grid of the effective weight is then
    :math:`E[g]\,2^{-t}`, and the integer codes of a packed file are wider than the counted
    bits by :math:`\log_2(1/E[g])` where :math:`E[g] < 1` (narrower where it exceeds 1).

    Parameters
    ----------
    module
        A compact network.
    mantissa_bits
        The mantissa bits :math:`t` of each weight to round, by state key.

    Returns
    -------
    torch.nn.Module
        The quantised copy (``pyrocompress.save_packed`` stores its weights as integer codes).
    """
    state = module.state_dict()
    for key, t in mantissa_bits.items():
        if key not in state or not state[key].is_floating_point():
            floating = [k for k, v in state.items() if v.is_floating_point()]
            raise ValueError(
                f"mantissa_bits names {key!r}, which is not a floating tensor of the module "
                f"(those are {floating})"
            )
        if isinstance(t, bool) or not isinstance(t, int) or not -64 <= t <= 64:
            raise ValueError(f"mantissa_bits[{key!r}] must be an integer bit count, got {t!r}")
    out = copy.deepcopy(module)
    state = out.state_dict()
    with torch.no_grad():
        for key, t in mantissa_bits.items():
            # in float64, where w * 2^t + 1/2 is exact for float32 weights: float32
            # arithmetic would round some values just below a half-step up
            w = state[key].double()
            state[key].copy_(torch.floor(w * 2.0**t + 0.5) * 2.0**-t)
    return out


def _link(
    chain, layers, p, c, p_shape, device, keep_in, keep_out, dead_const, select_after_flatten
):
    """Agree the outputs producer ``chain[p]`` keeps with the inputs consumer ``chain[c]`` reads.

    The agreement goes through the ops between them (their op rules say how a mask passes).

    A unit survives when the producer produces it (its output group is kept, or it has
    no output groups) and the consumer reads it (its input group is kept, or it has no
    input groups). A produced-nothing unit the consumer reads gives it the constant
    ``f(0)`` of the ops between (an activation with ``f(0) != 0``): that constant is folded
    into the consumer's bias. Through a ``"flatten"`` op a channel becomes a block of
    features: the channel survives when the consumer reads any of its block, and a
    :class:`SelectFeatures` after the flatten picks the features it reads.
    """
    between = chain[p + 1 : c]
    unknown = [m for m in between if _mask_rule(m) is None]
    if unknown:
        raise TypeError(
            f"cannot prune across {type(unknown[0]).__name__}: its op rule does not say "
            "how a channel mask passes through it (OpRule.mask)"
        )
    flat = next((k for k, m in enumerate(between) if _mask_rule(m) == "flatten"), None)
    produced = keep_out[p]
    if flat is None:
        if layers[p].output_axis != layers[c].input_axis:
            raise TypeError(
                f"cannot prune from {layers[p].spec.name!r} into {layers[c].spec.name!r}: "
                f"the first gives its units along axis {layers[p].output_axis}, the second "
                f"reads axis {layers[c].input_axis}; flatten between them"
            )
        alive = produced & keep_in[c]
        if not produced.all():
            dead_const[c] = _dead_constant(between, p_shape, produced, device)
        keep_out[p], keep_in[c] = alive, alive.clone()
        return
    if layers[c].input_axis != -1:
        raise TypeError(
            f"cannot prune across a flatten into {type(layers[c]).__name__}: it does not read "
            "the flattened (last) axis"
        )
    before_flat = between[:flat]
    channel_shape = (
        output_shapes(before_flat, torch.zeros(p_shape, device=device))[-1]
        if before_flat
        else p_shape
    )
    per_channel = math.prod(channel_shape[2:])
    used = keep_in[c].reshape(-1, per_channel)
    alive = produced & used.any(dim=1)
    if not alive.any():
        # the next layer reads nothing: keep one channel and one of its (zero-weight)
        # inputs so that the compact network stays a valid, still exact, network
        c0 = int(produced.to(torch.int8).argmax())
        alive[c0] = True
        used = used.clone()
        used[c0, 0] = True
    if not produced.all():
        dead_const[c] = _dead_constant(before_flat, p_shape, produced, device).flatten(1)
    keep_out[p] = alive
    keep_in[c] = (used & alive[:, None]).reshape(-1)
    within = used[alive].reshape(-1)
    if not within.all():
        idx = torch.nonzero(within).squeeze(-1)
        select_after_flatten[id(between[flat])] = (idx, int(within.numel()))


def _mask_rule(module: nn.Module) -> str | None:
    rule = get_rule(type(module))
    return None if rule is None else mask_of(rule, module)


def _dead_constant(between, out_shape, alive, device) -> torch.Tensor:
    """Return what the elementwise / pooling modules make of a zero channel, for dead channels."""
    x = torch.zeros(out_shape, device=device)
    for m in between:
        if _mask_rule(m) == "flatten":
            break
        x = m(x)
    x = x.clone()
    x[:, alive] = 0.0
    return x


def _fold(layer: BayesianLayer, w, b, const) -> torch.Tensor:
    """Fold the constant input of removed-but-nonzero units into the bias.

    The constant's contribution ``op(const, w)`` must be the same at every position of an
    output unit (else zero padding makes it position-dependent and it cannot be a bias).
    """
    if not bool(const.abs().gt(0).any()):
        return b
    if b is None:
        raise ValueError(
            f"layer {layer.spec.name!r} reads a constant from a pruned unit but has no bias "
            "to absorb it; use an activation with f(0) = 0 (ReLU) or give the layer a bias"
        )
    dead = const.clone() if layer.input_axis != -1 else const.reshape(1, -1)
    out = layer._op(dead, w, None)
    per_unit = out.mean(dim=[d for d in range(out.dim()) if d != 1])
    if not torch.allclose(out, per_unit.reshape(1, -1, *[1] * (out.dim() - 2)), atol=1e-6):
        raise ValueError(
            f"cannot fold the constant output of pruned channels into {layer.spec.name!r}: "
            "its zero padding makes the contribution position-dependent; use ReLU"
        )
    return b + per_unit


def _measure(
    layers: dict[int, BayesianLayer], shapes, keep_in, keep_out, compact, example
) -> CompactInfo:
    weighted = list(layers)
    arch_before = [layers[weighted[0]].spec.weight_shape[1]]
    arch_after = [int(keep_in[weighted[0]].sum())]
    params_b = params_a = weights_b = weights_a = flops_b = 0
    for pos, i in enumerate(weighted):
        layer = layers[i]
        if pos > 0 and not layer.groups_on_outputs and layers[weighted[pos - 1]].groups_on_outputs:
            arch_before.append(layer.spec.weight_shape[1])
            arch_after.append(int(keep_in[i].sum()))
        arch_before.append(layer.spec.weight_shape[0])
        arch_after.append(int(keep_out[i].sum()))
        n_w = math.prod(layer.spec.weight_shape)
        n_b = layer.spec.weight_shape[0] if layer.spec.has_bias else 0
        weights_b += n_w
        params_b += n_w + n_b
        flops_b += layer.flops(shapes[i])
    for weight, bias in weight_tensors(compact):
        weights_a += weight.numel()
        params_a += weight.numel() + (bias.numel() if bias is not None else 0)
    names = [layers[i].spec.name for i in weighted]

    def indices(keep: dict[int, torch.Tensor]) -> dict[str, list[int]]:
        return {
            n: torch.nonzero(keep[i]).squeeze(-1).tolist()
            for n, i in zip(names, weighted, strict=True)
        }

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
