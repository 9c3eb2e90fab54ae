"""Bayesian layers and networks: conversion, the traced graph, op rules and moments.

Bayesian layers (:mod:`~pyrocompress.nn.layers`) and networks
(:mod:`~pyrocompress.nn.network`), the conversion of torch models
(:mod:`~pyrocompress.nn.convert`), ready-made models, the traced graph and its op rules,
and moment propagation.
"""

from pyrocompress.nn.convert import (
    LayerFactory,
    PriorSpec,
    bayesianize,
    register_layer,
    supported_modules,
)
from pyrocompress.nn.graph import NetworkGraph, network_graph
from pyrocompress.nn.layers import (
    BayesianConv2d,
    BayesianLayer,
    BayesianLinear,
    Moments,
    product_moments,
)
from pyrocompress.nn.models import lenet5_caffe, lenet_300_100, mlp
from pyrocompress.nn.network import BayesianNetwork
from pyrocompress.nn.rules import MV, OpRule, get_rule, register_op, registered_ops

__all__ = [
    "MV",
    "BayesianConv2d",
    "BayesianLayer",
    "BayesianLinear",
    "BayesianNetwork",
    "LayerFactory",
    "Moments",
    "NetworkGraph",
    "OpRule",
    "PriorSpec",
    "bayesianize",
    "get_rule",
    "lenet5_caffe",
    "lenet_300_100",
    "mlp",
    "network_graph",
    "product_moments",
    "register_layer",
    "register_op",
    "registered_ops",
    "supported_modules",
]
