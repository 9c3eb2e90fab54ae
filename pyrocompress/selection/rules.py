r"""Feature-selection rules on posterior inclusion probabilities, and their metrics.

The rules are those of :mod:`pyrocompress.analysis.decisions` (one implementation, shared
with the PIP pruning rules), re-exported here:

:func:`median_probability_model`
    Select every feature with PIP :math:`\ge 0.5` :cite:p:`barbieri2004optimal`: the model
    with the best predictions under squared loss in the linear case.
:func:`bayesian_fdr`
    The largest set :math:`\{j : \mathrm{PIP}_j \ge t\}` whose estimated false-discovery
    rate :math:`\widehat{\mathrm{FDR}}(S) = \frac{1}{|S|}\sum_{j \in S}(1 - \mathrm{PIP}_j)`
    is at most :math:`q` :cite:p:`newton2004detecting,muller2007fdr`.
:func:`top_k`
    The :math:`k` features with the largest PIPs.

The rules take NumPy scalars (``np.int64`` k, ``np.float32`` q) as well as Python numbers.

Metrics against a known truth: :func:`selection_metrics` (TPR, FPR, FDR, MCC).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from pyrocompress.analysis.decisions import (
    FDR_TOLERANCE,
    bayesian_fdr,
    median_probability_model,
    top_k,
)

__all__ = [
    "FDR_TOLERANCE",
    "bayesian_fdr",
    "median_probability_model",
    "selection_metrics",
    "top_k",
]


def selection_metrics(
    selected: Iterable[int], truth: Iterable[int], num_features: int
) -> dict[str, float]:
    """Return the TPR, FPR, FDR and Matthews correlation of a selection against the truth.

    True-positive rate, false-positive rate, false-discovery rate and Matthews correlation
    of a selected set against the true relevant set. Conventions for empty denominators:
    FDR of an empty selection is 0; TPR with no true feature and FPR with no null feature
    are NaN; MCC is 0 when undefined.

    Parameters
    ----------
    selected
        Indices of the selected features.
    truth
        Indices of the truly relevant features.
    num_features
        Number of features.

    Returns
    -------
    dict of str to float
        ``tpr``, ``fpr``, ``fdr``, ``mcc``.

    Raises
    ------
    ValueError
        If an index is outside ``[0, num_features)``.
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
