"""Feature selection: decision rules on inclusion probabilities, and a scikit-learn selector.

The decision rules are in :mod:`~pyrocompress.selection.rules`; the scikit-learn
:class:`FeatureSelector` is imported on first use (scikit-learn is not loaded by
``import pyrocompress``).
"""

from typing import TYPE_CHECKING, Any

from pyrocompress.selection.rules import (
    FDR_TOLERANCE,
    bayesian_fdr,
    median_probability_model,
    selection_metrics,
    top_k,
)

if TYPE_CHECKING:
    from pyrocompress.selection.estimator import FeatureSelector, infer_task

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


def __getattr__(name: str) -> Any:
    """Import the estimator (and scikit-learn) when first asked for (PEP 562).

    Parameters
    ----------
    name
        The attribute asked for.

    Returns
    -------
    Any
        :class:`FeatureSelector`, ``infer_task`` or ``selection_priors``.

    Raises
    ------
    AttributeError
        For any other name.
    """
    if name in _LAZY:
        from pyrocompress.selection import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """List the module's names with the lazy ones (PEP 562), for ``dir()`` and completion."""
    return sorted({*globals(), *_LAZY})
