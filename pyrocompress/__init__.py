"""pyrocompress: Bayesian compression and feature selection of neural networks, on Pyro.

Data flows one way: data → :func:`bayesianize` (model and guide) → :func:`fit` (SVI) →
:class:`Posterior` (analysis) → :func:`prune` (pruning plan) → compact ``nn.Sequential``
and report.
"""

from pyrocompress import (
    checkpoint,
    data,
    diagnostics,
    distributed,
    distributions,
    mcmc,
    moments,
    plots,
    priors,
    selection,
)
from pyrocompress.analysis import BitPrecision, Posterior
from pyrocompress.export import SelectFeatures, load_compact, save_compact
from pyrocompress.infer import History, evaluate, fit, pretrain
from pyrocompress.likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
)
from pyrocompress.moments import MomentELBO, predictive_moments, propagate, unit_scores
from pyrocompress.nn import (
    BayesianConv2d,
    BayesianLinear,
    BayesianNetwork,
    bayesianize,
    lenet5_caffe,
    lenet_300_100,
    mlp,
)
from pyrocompress.priors import Gaussian, GroupHorseshoe, GroupNormalJeffreys, SpikeAndSlab
from pyrocompress.pruning import REPORT_KEYS, PruneResult, PruningPlan, make_plan, prune
from pyrocompress.reparam import LocalReparamELBO, LocalReparameterization
from pyrocompress.selector import FeatureSelector

__version__ = "0.1.0"

__all__ = [
    "MomentELBO",
    "checkpoint",
    "distributed",
    "moments",
    "predictive_moments",
    "propagate",
    "unit_scores",
    "REPORT_KEYS",
    "BayesianConv2d",
    "BayesianLinear",
    "BayesianNetwork",
    "BitPrecision",
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "FeatureSelector",
    "Gaussian",
    "GaussianLikelihood",
    "GroupHorseshoe",
    "GroupNormalJeffreys",
    "History",
    "LocalReparamELBO",
    "LocalReparameterization",
    "Posterior",
    "PruneResult",
    "PruningPlan",
    "SelectFeatures",
    "SpikeAndSlab",
    "__version__",
    "bayesianize",
    "data",
    "diagnostics",
    "distributions",
    "evaluate",
    "fit",
    "lenet5_caffe",
    "lenet_300_100",
    "load_compact",
    "make_plan",
    "mcmc",
    "mlp",
    "plots",
    "priors",
    "pretrain",
    "prune",
    "save_compact",
    "selection",
]
