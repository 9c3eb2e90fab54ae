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
    norm_pairs,
    register_layer,
    register_norm,
    supported_modules,
)
from pyrocompress.nn.graph import NetworkGraph, network_graph
from pyrocompress.nn.layers import (
    BayesianConv1d,
    BayesianConv2d,
    BayesianEmbedding,
    BayesianLayer,
    BayesianLinear,
    Moments,
    product_moments,
)
from pyrocompress.nn.models import (
    VGGBN,
    BasicBlock,
    ResNetCIFAR,
    lenet5_caffe,
    lenet_300_100,
    mlp,
    resnet20,
    vgg_bn_cifar,
)
from pyrocompress.nn.network import BayesianNetwork
from pyrocompress.nn.rules import MV, OpRule, get_rule, register_op, registered_ops

__all__ = [
    "MV",
    "VGGBN",
    "BasicBlock",
    "BayesianConv1d",
    "BayesianConv2d",
    "BayesianEmbedding",
    "BayesianLayer",
    "BayesianLinear",
    "BayesianNetwork",
    "LayerFactory",
    "Moments",
    "NetworkGraph",
    "OpRule",
    "PriorSpec",
    "ResNetCIFAR",
    "bayesianize",
    "get_rule",
    "lenet5_caffe",
    "lenet_300_100",
    "mlp",
    "network_graph",
    "product_moments",
    "norm_pairs",
    "register_layer",
    "register_norm",
    "register_op",
    "registered_ops",
    "resnet20",
    "supported_modules",
    "vgg_bn_cifar",
]
