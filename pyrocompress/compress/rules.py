r"""The pruning-rule registry: how a posterior summary becomes a keep/drop mask per layer.

A threshold rule is one :class:`PruningRule` registered with :func:`register_rule`; it
is then a choice of :func:`~pyrocompress.prune` (``rule=``) and of
``pyrocompress compress --rule`` (``--threshold`` sets its threshold). Each layer's mask
is computed from the layer's statistic and its threshold (a number, or one per layer).

Built-in rules:

``"log_alpha"``
    keep a group when :math:`\log\alpha <` threshold (default 0: dropout rate below one
    half; :cite:t:`louizos2017bayesian` set per-layer thresholds by eye).
``"pip"``
    keep a group when its inclusion probability is at least the threshold; at the
    default 0.5 this is the median-probability model of :cite:t:`barbieri2004optimal`, computed
    by :func:`~pyrocompress.analysis.decisions.median_probability_model` (any threshold).
``"fdr"``
    in each layer, the largest set of groups whose estimated Bayesian FDR is at most the
    threshold (default 0.1; :cite:p:`newton2004detecting`), computed by
    :func:`~pyrocompress.analysis.decisions.bayesian_fdr`.
``"snr"``
    keep a group when its SNR :math:`\lVert E w_g\rVert / (\sum \mathrm{Var}\,w_g)^{1/2}`
    is at least the threshold (default 1).

The rules that search (``"sparsity"``, ``"auto"``) are not threshold rules; they live in
:func:`~pyrocompress.make_plan`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from pyrocompress.analysis import Posterior
from pyrocompress.analysis.decisions import bayesian_fdr, median_probability_model

__all__ = ["PruningRule", "get_rule", "pruning_rules", "register_rule"]


@dataclass(frozen=True)
class PruningRule:
    """A threshold rule.

    Attributes
    ----------
    name
        The rule's name (``prune(rule=name)``, ``--rule name``).
    statistic
        ``statistic(posterior) -> {layer: tensor}``: the per-group statistic.
    keep
        ``keep(statistic, threshold) -> bool tensor``: the groups one layer keeps.
    scores
        ``scores(posterior) -> {layer: tensor}``: keep-scores, higher = more important
        (which group a layer keeps when the rule would empty it).
    default_threshold
        The threshold when none is given.
    check
        ``check(threshold) -> message or None``: validation of one threshold.
    score
        The name of the statistic, as reports record it (the rule's name by default).
    """

    name: str
    statistic: Callable[[Posterior], dict[str, torch.Tensor]]
    keep: Callable[[torch.Tensor, float], torch.Tensor]
    scores: Callable[[Posterior], dict[str, torch.Tensor]]
    default_threshold: float
    check: Callable[[float], str | None] = lambda t: None
    score: str | None = None


_RULES: dict[str, PruningRule] = {}


def register_rule(rule: PruningRule) -> PruningRule:
    """Register a threshold rule under ``rule.name`` (replacing one of the same name).

    Parameters
    ----------
    rule
        The rule.

    Returns
    -------
    PruningRule
        ``rule``.

    Raises
    ------
    TypeError
        If ``rule`` is not a :class:`PruningRule`.
    ValueError
        If the name is that of a search rule (``"auto"``, ``"sparsity"``).
    """
    if not isinstance(rule, PruningRule):
        raise TypeError(f"register_rule expects a PruningRule, got {type(rule).__name__}")
    if rule.name in ("auto", "sparsity"):
        raise ValueError(f"{rule.name!r} is a search rule of make_plan; choose another name")
    _RULES[rule.name] = rule
    return rule


def pruning_rules() -> dict[str, PruningRule]:
    """Return a copy of the registry: name -> rule."""
    return dict(_RULES)


def get_rule(name: str) -> PruningRule | None:
    """Return the threshold rule called ``name``, or ``None``.

    Parameters
    ----------
    name
        The rule's name.

    Returns
    -------
    PruningRule or None
        The registered rule.
    """
    return _RULES.get(name)


def _indices_mask(indices: list[int], n: int, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(n, dtype=torch.bool, device=device)
    mask[indices] = True
    return mask


def _pip_keep(pip: torch.Tensor, t: float) -> torch.Tensor:
    return _indices_mask(median_probability_model(pip.cpu(), t), len(pip), pip.device)


def _fdr_keep(pip: torch.Tensor, q: float) -> torch.Tensor:
    selected, _ = bayesian_fdr(pip.cpu(), q)
    return _indices_mask(selected, len(pip), pip.device)


def _probability(t: float) -> str | None:
    return None if 0.0 <= t <= 1.0 else f"a PIP threshold must be in [0, 1], got {t}"


def _fdr_level(t: float) -> str | None:
    return None if 0.0 <= t < 1.0 else f"an FDR level must be in [0, 1), got {t}"


def _non_negative(t: float) -> str | None:
    return None if t >= 0 else f"an SNR threshold must be non-negative, got {t}"


def _neg_log_alpha(post: Posterior) -> dict[str, torch.Tensor]:
    return {k: -v for k, v in post.log_alpha().items()}


def _pips(post: Posterior) -> dict[str, torch.Tensor]:
    return post.inclusion_probabilities()


def _group_snr(post: Posterior) -> dict[str, torch.Tensor]:
    return post.snr("group")


register_rule(
    PruningRule(
        "log_alpha",
        statistic=lambda post: post.log_alpha(),
        keep=lambda v, t: v < t,
        scores=_neg_log_alpha,
        default_threshold=0.0,
        check=lambda t: None if math.isfinite(t) else f"threshold must be finite, got {t}",
    )
)
register_rule(
    PruningRule(
        "pip",
        statistic=_pips,
        keep=_pip_keep,
        scores=_pips,
        default_threshold=0.5,
        check=_probability,
    )  # fmt: skip
)
register_rule(
    PruningRule(
        "fdr",
        statistic=_pips,
        keep=_fdr_keep,
        scores=_pips,
        default_threshold=0.1,
        check=_fdr_level,
        score="pip",  # the statistic the FDR is estimated from
    )
)
register_rule(
    PruningRule(
        "snr",
        statistic=_group_snr,
        keep=lambda v, t: v >= t,
        scores=_group_snr,
        default_threshold=1.0,
        check=_non_negative,
    )
)
