"""Analysis: posterior summaries, ArviZ diagnostics, the predictive and unit scores.

Posterior summaries (inclusion probabilities, log alpha, SNR, bit precision;
:mod:`~pyrocompress.analysis.posterior`), ArviZ diagnostics
(:mod:`~pyrocompress.analysis.diagnostics`), the posterior predictive on new inputs by
Monte Carlo over the guide, for every prior (:mod:`~pyrocompress.analysis.predictive`),
and sampling-free predictive moments and unit scores (:mod:`~pyrocompress.analysis.scores`).
"""

from pyrocompress.analysis.diagnostics import (
    KHAT_ADVICE,
    KHAT_THRESHOLDS,
    posterior_draws,
    psis_khat,
    variable_prefix,
    vi_diagnostics,
)
from pyrocompress.analysis.posterior import BitPrecision, Posterior, exponent_bits, mantissa_bits
from pyrocompress.analysis.predictive import Prediction, predict
from pyrocompress.analysis.scores import predictive_moments, unit_scores

__all__ = [
    "KHAT_ADVICE",
    "KHAT_THRESHOLDS",
    "BitPrecision",
    "Posterior",
    "Prediction",
    "exponent_bits",
    "mantissa_bits",
    "posterior_draws",
    "predict",
    "predictive_moments",
    "psis_khat",
    "unit_scores",
    "variable_prefix",
    "vi_diagnostics",
]
