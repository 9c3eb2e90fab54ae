"""Feature selection: decision rules on inclusion probabilities and the scikit-learn
:class:`FeatureSelector` (imported on first use: scikit-learn is not loaded by
``import pyrocompress``)."""

from pyrocompress.selection.rules import (
    FDR_TOLERANCE,
    bayesian_fdr,
    median_probability_model,
    selection_metrics,
    top_k,
)

__all__ = [
    "FDR_TOLERANCE",
    "FeatureSelector",
    "bayesian_fdr",
    "infer_task",
    "median_probability_model",
    "selection_metrics",
    "top_k",
]

_LAZY = {"FeatureSelector", "infer_task", "selection_priors"}


def __getattr__(name: str):
    """PEP 562: the estimator (and scikit-learn) are imported when first asked for."""
    if name in _LAZY:
        from pyrocompress.selection import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
