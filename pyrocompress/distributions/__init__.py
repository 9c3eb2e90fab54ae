"""Distributions: the gate and weight laws of the priors with their registered KLs, and
the observation models (likelihoods)."""

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
