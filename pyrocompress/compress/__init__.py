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

__all__ = [
    "REPORT_KEYS",
    "CompactInfo",
    "PruneResult",
    "PruningPlan",
    "PruningRule",
    "SelectFeatures",
    "build_compact",
    "chain_of",
    "count_flops",
    "group_scores",
    "load_compact",
    "make_plan",
    "prune",
    "pruning_curve",
    "pruning_rules",
    "register_rule",
    "save_compact",
]
