r"""Feature-selection rules on posterior inclusion probabilities, and their metrics.

Rules
-----
:func:`median_probability_model`
    Select every feature with PIP :math:`\ge 0.5` (Barbieri & Berger 2004): the model
    with the best predictions under squared loss in the linear case.
:func:`bayesian_fdr`
    The largest set, taken in decreasing PIP, whose estimated false-discovery rate
    :math:`\widehat{\mathrm{FDR}}(S) = \frac{1}{|S|}\sum_{j \in S}(1 - \mathrm{PIP}_j)` is at
    most :math:`q` (Newton, Noueiry, Sarkar & Ahlquist 2004; Müller, Parmigiani & Rice 2006).
:func:`top_k`
    The :math:`k` features with the largest PIPs.

Metrics against a known truth: :func:`selection_metrics` (TPR, FPR, FDR, MCC).
"""

from __future__ import annotations

import math

import torch

__all__ = ["bayesian_fdr", "median_probability_model", "selection_metrics", "top_k"]


def _pip(pip) -> torch.Tensor:
    p = torch.as_tensor(pip, dtype=torch.float64).flatten()
    if p.numel() == 0 or not bool(((p >= 0) & (p <= 1)).all()):
        raise ValueError("inclusion probabilities must be a non-empty vector of values in [0, 1]")
    return p


def median_probability_model(pip) -> list[int]:
    """Indices with inclusion probability at least 0.5, in increasing order."""
    return torch.nonzero(_pip(pip) >= 0.5).flatten().tolist()


def bayesian_fdr(pip, q: float = 0.1) -> tuple[list[int], float]:
    """The largest PIP-ordered set with estimated FDR at most ``q``; returns it (sorted
    indices) and its estimated FDR (0 for the empty set)."""
    if not (isinstance(q, int | float) and 0.0 <= q < 1.0):
        raise ValueError(f"the FDR level q must be in [0, 1), got {q!r}")
    p = _pip(pip)
    order = torch.argsort(p, descending=True, stable=True)
    running = torch.cumsum(1.0 - p[order], 0) / torch.arange(1, len(p) + 1, dtype=p.dtype)
    ok = torch.nonzero(running <= q + 1e-12).flatten()
    if ok.numel() == 0:
        return [], 0.0
    k = int(ok.max()) + 1
    return sorted(order[:k].tolist()), float(running[k - 1])


def top_k(pip, k: int) -> list[int]:
    """The ``k`` features with the largest inclusion probabilities (sorted indices)."""
    p = _pip(pip)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(p):
        raise ValueError(f"k must be an integer in [0, {len(p)}], got {k!r}")
    return sorted(torch.argsort(p, descending=True, stable=True)[:k].tolist())


def selection_metrics(selected, truth, num_features: int) -> dict[str, float]:
    """True-positive rate, false-positive rate, false-discovery rate and Matthews
    correlation of a selected set against the true relevant set.

    Conventions for empty denominators: FDR of an empty selection is 0; TPR with no true
    feature and FPR with no null feature are NaN; MCC is 0 when undefined.
    """
    sel, true = set(map(int, selected)), set(map(int, truth))
    if any(not 0 <= i < num_features for i in sel | true):
        raise ValueError(f"feature indices must be in [0, {num_features})")
    tp = len(sel & true)
    fp = len(sel - true)
    fn = len(true - sel)
    tn = num_features - tp - fp - fn
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "tpr": tp / (tp + fn) if tp + fn else math.nan,
        "fpr": fp / (fp + tn) if fp + tn else math.nan,
        "fdr": fp / (tp + fp) if tp + fp else 0.0,
        "mcc": (tp * tn - fp * fn) / denom if denom else 0.0,
    }
