"""Compression: pruning rules and plans, the compact network, its cost, files and report."""

from pyrocompress.compress.compact import (
    CompactInfo,
    SelectFeatures,
    build_compact,
    chain_of,
    count_flops,
    quantize_weights,
)
from pyrocompress.compress.deploy import EXPORT_FORMATS, FILE_NAMES, deployable_files
from pyrocompress.compress.files import load_compact, save_compact
from pyrocompress.compress.onnx import OPSET, export_onnx, onnx_bytes, onnx_latency
from pyrocompress.compress.packed import (
    FORMAT_PACKED,
    load_packed,
    packed_bytes,
    packed_spec,
    save_packed,
)
from pyrocompress.compress.program import export_program, load_program, program_bytes
from pyrocompress.compress.pruning import (
    REPORT_KEYS,
    PruneResult,
    PruningPlan,
    group_scores,
    make_plan,
    prune,
    pruning_curve,
)
from pyrocompress.compress.rules import PruningRule, pruning_rules, register_rule
from pyrocompress.compress.sharing import kmeans_1d, share_weights
from pyrocompress.compress.surgery import (
    ChannelRule,
    CoupledGroup,
    coupled_groups,
    dense_module,
    export_module,
    network_groups,
    register_channel_rule,
    tie_masks,
)

__all__ = [
    "EXPORT_FORMATS",
    "FILE_NAMES",
    "FORMAT_PACKED",
    "OPSET",
    "REPORT_KEYS",
    "ChannelRule",
    "CompactInfo",
    "CoupledGroup",
    "PruneResult",
    "PruningPlan",
    "PruningRule",
    "SelectFeatures",
    "build_compact",
    "chain_of",
    "count_flops",
    "coupled_groups",
    "dense_module",
    "deployable_files",
    "export_module",
    "export_onnx",
    "export_program",
    "group_scores",
    "kmeans_1d",
    "load_compact",
    "load_packed",
    "load_program",
    "make_plan",
    "network_groups",
    "onnx_bytes",
    "onnx_latency",
    "packed_bytes",
    "packed_spec",
    "program_bytes",
    "prune",
    "pruning_curve",
    "pruning_rules",
    "quantize_weights",
    "register_channel_rule",
    "register_rule",
    "save_compact",
    "save_packed",
    "share_weights",
    "tie_masks",
]
