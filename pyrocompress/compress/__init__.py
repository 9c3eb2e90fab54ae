"""Compression: pruning rules and plans, the compact network, its cost, files and report."""

from pyrocompress.compress.compact import (
    CompactInfo,
    SelectFeatures,
    build_compact,
    chain_of,
    count_flops,
)
from pyrocompress.compress.files import load_compact, save_compact
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
    "export_module",
    "group_scores",
    "load_compact",
    "make_plan",
    "network_groups",
    "prune",
    "pruning_curve",
    "pruning_rules",
    "register_channel_rule",
    "register_rule",
    "save_compact",
    "tie_masks",
]
