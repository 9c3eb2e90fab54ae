"""One representation of a network: traced once by torch.fx, walked by every consumer.

:func:`network_graph` traces a module tree (a converted network, or a plain compact one)
with :mod:`torch.fx` into a graph of modules and functional ops; Bayesian layers and
every module type with a rule in :mod:`pyrocompress.nn.rules` are leaves. Models with
their own ``forward`` go through the same tracer; one that fx cannot trace (data-dependent
control flow, for instance) gets a ``TypeError`` that says why.

:meth:`NetworkGraph.run` is the one walker: it visits the nodes in order with the values
of their inputs and hands each op to a callback. Moment propagation, unit scores and
FLOP counting are callbacks of it (:mod:`pyrocompress.nn.moments`); pruning and export
read the data path as an ordered list of modules (:meth:`NetworkGraph.chain`).
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable
from typing import Any, override

import torch
from torch import fx, nn
from torch.fx.node import map_arg
from torch.fx.proxy import TraceError

from pyrocompress.nn.layers import BayesianLayer
from pyrocompress.nn.rules import get_rule, rules_version

__all__ = ["NetworkGraph", "describe_op", "network_graph"]


class _Tracer(fx.Tracer):
    """fx tracer whose leaves are Bayesian layers and every module with a rule."""

    @override
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, BayesianLayer) or get_rule(type(m)) is not None:
            return True
        return super().is_leaf_module(m, module_qualified_name)


def describe_op(op: object) -> str:
    """Return a short human name of an op (module type, function or ``Tensor.method``).

    Parameters
    ----------
    op
        A module, a function, or a tensor method's name.

    Returns
    -------
    str
        E.g. ``"ReLU"``, ``"relu"``, ``"Tensor.view"``.
    """
    if isinstance(op, nn.Module):
        return type(op).__name__
    if isinstance(op, str):
        return f"Tensor.{op}"
    return getattr(op, "__name__", repr(op))


class NetworkGraph:
    """The traced graph of a module tree, with the one walker over it.

    Parameters
    ----------
    net
        The module tree (e.g. ``BayesianNetwork.net``) to trace.
    """

    def __init__(self, net: nn.Module):
        tracer = _Tracer()
        # a root that is itself a leaf (a bare layer) is traced inside a one-module wrapper
        self._wrapped = tracer.is_leaf_module(net, "")
        root = nn.Sequential(net) if self._wrapped else net
        try:
            self.graph = tracer.trace(root)
        except TraceError as err:
            raise TypeError(
                f"torch.fx cannot trace the model's forward ({err}): pruning, export and "
                "moment propagation need a forward without data-dependent control flow. "
                "Rewrite the branch with tensor ops, or use an nn.Sequential"
            ) from err
        except Exception as err:  # fx raises many types; the reason is in the message
            raise TypeError(
                f"torch.fx cannot trace the model's forward ({type(err).__name__}: {err})"
            ) from err
        # the module is held weakly: the cache must not keep a network alive
        self._net = weakref.ref(net)
        self.version = rules_version()
        inputs = [n for n in self.graph.nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise TypeError(
                f"the model's forward takes {len(inputs)} inputs; pyrocompress needs one"
            )

    def op(self, node: fx.Node) -> object:
        """Return the op a node calls: its module, function, or tensor method name.

        Parameters
        ----------
        node
            A node of :attr:`graph`.

        Returns
        -------
        object
            The module (``call_module``), function, or method name.
        """
        if node.op == "call_module":
            return self._submodule(str(node.target))
        return node.target

    def _submodule(self, target: str) -> nn.Module:
        net = self._net()
        if net is None:  # pragma: no cover - the graph is only reached through its module
            raise RuntimeError("the traced network no longer exists")
        if self._wrapped:
            target = target.partition(".")[2]  # "0.<path>" in the wrapper
        return net.get_submodule(target)

    def run(self, x: Any, call: Callable[[fx.Node, object, tuple, dict], Any]) -> Any:
        """Walk the graph with input value ``x``, computing each op's value with ``call``.

        Parameters
        ----------
        x
            The value of the input (a tensor, moments, a shape...).
        call
            ``call(node, op, args, kwargs)`` computes an op's value from its inputs'
            values (``args`` and ``kwargs`` with every node replaced by its value).

        Returns
        -------
        Any
            The output's value.

        Raises
        ------
        TypeError
            If the forward reads an attribute directly, or the graph has no output.
        """
        env: dict[fx.Node, Any] = {}
        for node in self.graph.nodes:
            if node.op == "placeholder":
                env[node] = x
            elif node.op == "output":
                return map_arg(node.args[0], lambda n: env[n])
            elif node.op == "get_attr":
                raise TypeError(
                    f"the model's forward reads the attribute {node.target!r} directly; "
                    "keep parameters and buffers inside modules"
                )
            else:
                args = map_arg(node.args, lambda n: env[n])
                kwargs = map_arg(node.kwargs, lambda n: env[n])
                env[node] = call(node, self.op(node), args, kwargs)
        raise TypeError("the traced graph has no output")

    def chain(self) -> list[nn.Module]:
        """Return the data path as modules in order, when the graph is a chain.

        Functional ops are replaced by their module equivalent
        (:attr:`~pyrocompress.nn.rules.OpRule.module`); shape queries (``x.size(0)``)
        are folded into the op that reads them.

        Raises
        ------
        TypeError
            When the data path branches or joins (residual additions, concatenations),
            or an op has no module equivalent.
        """
        data: set[fx.Node] = set()
        out: list[nn.Module] = []
        previous: fx.Node | None = None
        for node in self.graph.nodes:
            if node.op == "placeholder":
                data.add(node)
                previous = node
                continue
            if node.op == "output":
                if node.args[0] is not previous:
                    raise TypeError("the model's output is not the end of its chain of layers")
                break
            op = self.op(node)
            inputs = [n for n in node.all_input_nodes if n in data]
            if _is_query(node) or not inputs:
                continue  # a shape query, or a constant
            if (
                len(inputs) != 1
                or previous is None
                or inputs[0] is not previous
                or len(_data_users(previous)) > 1
            ):
                raise TypeError(
                    f"the model's data path branches or joins at {node.name!r} "
                    f"({describe_op(op)}): pruning and export support chains of layers; "
                    "residual additions and concatenations are not supported yet"
                )
            data.add(node)
            previous = node
            out.append(self._as_module(node, op))
        return out

    def _as_module(self, node: fx.Node, op: object) -> nn.Module:
        """Return ``op`` as a module: itself, or its rule's module equivalent."""
        if isinstance(op, nn.Module):
            return op
        rule = get_rule(op)
        if rule is None or rule.module is None:
            raise TypeError(
                f"{describe_op(op)} at {node.name!r} has no module equivalent for a compact "
                "network; register one with pyrocompress.nn.register_op"
            )
        args = map_arg(node.args, lambda n: None)
        kwargs = map_arg(node.kwargs, lambda n: None)
        try:
            return rule.module(op, *args, **kwargs)
        except ValueError as err:
            raise TypeError(f"{describe_op(op)} at {node.name!r}: {err}") from None


def _is_query(node: fx.Node) -> bool:
    """Whether a node asks for a shape (``x.size(0)``, ``x.shape[0]``) rather than data.

    Indexing is a query only when it indexes a query's result (``x.shape[0]``); indexing
    a tensor (``h[:, :3]``) is data.
    """
    if node.op == "call_method":
        return node.target == "size"
    if node.op != "call_function":
        return False
    if node.target is getattr:
        return node.args[1] in ("shape", "ndim", "dtype", "device")
    if node.target is operator.getitem:
        source = node.args[0]
        return isinstance(source, fx.Node) and _is_query(source)
    return False


def _data_users(node: fx.Node) -> list[fx.Node]:
    """Return the users of ``node`` that read its value, not only its shape."""
    return [u for u in node.users if not _is_query(u)]


_CACHE: weakref.WeakKeyDictionary[nn.Module, NetworkGraph] = weakref.WeakKeyDictionary()


def network_graph(net: nn.Module) -> NetworkGraph:
    """Return the traced graph of ``net``, tracing it on first use (cached per module).

    Parameters
    ----------
    net
        The module tree to trace.

    Returns
    -------
    NetworkGraph
        The graph, shared by every caller for the same module.

    Raises
    ------
    TypeError
        If torch.fx cannot trace the forward, or it takes more than one input.
    """
    found = _CACHE.get(net)
    if found is None or found.version != rules_version():  # a rule registered since
        found = _CACHE[net] = NetworkGraph(net)
    return found


def output_shapes(chain: list[nn.Module], example: torch.Tensor) -> list[torch.Size]:
    """Return the output shape of every module of a chain, for one input ``example``.

    Parameters
    ----------
    chain
        Modules applied in order (:meth:`NetworkGraph.chain`).
    example
        An input batch.

    Returns
    -------
    list of torch.Size
        The shape after each module.
    """
    shapes = []
    x = example
    for m in chain:
        x = m(x)
        shapes.append(x.shape)
    return shapes
