"""Inference: ELBOs, the training loop, data-parallel runs, checkpoints and NUTS.

ELBOs with the local reparametrisation and moment propagation
(:mod:`~pyrocompress.infer.elbo`), the training loop (:func:`fit`, :func:`pretrain`),
data-parallel runs, checkpoints and NUTS.
"""

from pyrocompress.infer.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointWriteError,
    atomic_save,
    safe_load,
)
from pyrocompress.infer.distributed import World, setup, world
from pyrocompress.infer.elbo import LocalReparamELBO, LocalReparameterization, MomentELBO, kl_sum
from pyrocompress.infer.gibbs import GIBBS_PRIORS, linear_gibbs
from pyrocompress.infer.information import (
    fisher_information,
    glm_layer,
    group_information,
    newton_square,
    record_information,
)
from pyrocompress.infer.mcmc import compare_svi_nuts, run_nuts, site_variable
from pyrocompress.infer.posterior_file import (
    POSTERIOR_NAME,
    load_posterior,
    save_posterior,
)
from pyrocompress.infer.training import (
    ConvergenceWarning,
    ElboEstimate,
    History,
    elbo_estimate,
    evaluate,
    fit,
    fit_budget,
    prepare_data,
    pretrain,
    recalibrate_norms,
)

__all__ = [
    "CHECKPOINT_NAME",
    "POSTERIOR_NAME",
    "CheckpointWriteError",
    "GIBBS_PRIORS",
    "ConvergenceWarning",
    "ElboEstimate",
    "History",
    "LocalReparamELBO",
    "LocalReparameterization",
    "MomentELBO",
    "World",
    "atomic_save",
    "compare_svi_nuts",
    "elbo_estimate",
    "evaluate",
    "fisher_information",
    "fit",
    "fit_budget",
    "glm_layer",
    "group_information",
    "kl_sum",
    "linear_gibbs",
    "load_posterior",
    "newton_square",
    "prepare_data",
    "pretrain",
    "recalibrate_norms",
    "record_information",
    "run_nuts",
    "safe_load",
    "save_posterior",
    "setup",
    "site_variable",
    "world",
]
