"""Distributions: the laws of the priors' gates and weights, and the likelihoods.

The gate and weight laws come with their registered KLs
(:mod:`~pyrocompress.distributions.core`); the observation models know their expected
log-likelihood and predictive (:mod:`~pyrocompress.distributions.likelihoods`).
"""

from pyrocompress.distributions.core import (
    K1,
    K2,
    K3,
    ConditionalSlab,
    FactorisedLogVarNormal,
    IsotropicNormal,
    LogUniform,
    LogVarNormal,
    MarginalizedBernoulli,
    half_cauchy_scale_parts,
    neg_kl_log_uniform,
)
from pyrocompress.distributions.likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
    Likelihood,
    get_likelihood,
)

__all__ = [
    "K1",
    "K2",
    "K3",
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "ConditionalSlab",
    "FactorisedLogVarNormal",
    "GaussianLikelihood",
    "IsotropicNormal",
    "Likelihood",
    "LogUniform",
    "LogVarNormal",
    "MarginalizedBernoulli",
    "get_likelihood",
    "half_cauchy_scale_parts",
    "neg_kl_log_uniform",
]
