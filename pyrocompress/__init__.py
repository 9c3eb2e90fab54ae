"""pyrocompress: Bayesian compression and feature selection of neural networks, on Pyro.

Data flows one way, and the subpackages follow it:
:mod:`~pyrocompress.data` → :mod:`~pyrocompress.priors` and :mod:`~pyrocompress.nn`
(:func:`bayesianize`: model and guide) → :mod:`~pyrocompress.infer` (:func:`fit`, SVI) →
:mod:`~pyrocompress.analysis` (:class:`Posterior`) → :mod:`~pyrocompress.compress`
(:func:`prune`: pruning plan, compact network, files and report), with
:mod:`~pyrocompress.selection` (feature selection) and :mod:`~pyrocompress.plots` on top.
``docs/design.md`` describes the registries through which it grows.

The public API is flat: every name below is importable from ``pyrocompress``. The
scikit-learn estimator and the plots are imported on first use (PEP 562), so
``import pyrocompress`` loads neither scikit-learn nor ``matplotlib.pyplot``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pyrocompress import analysis, compress, data, distributions, effects, infer, nn, priors, rng
from pyrocompress.analysis import (
    BitPrecision,
    Posterior,
    predict,
    predictive_moments,
    unit_scores,
)
from pyrocompress.compress import (
    REPORT_KEYS,
    PruneResult,
    PruningPlan,
    SelectFeatures,
    deployable_files,
    export_onnx,
    load_compact,
    load_packed,
    make_plan,
    prune,
    register_rule,
    save_compact,
    save_packed,
    share_weights,
)
from pyrocompress.distributions import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
)
from pyrocompress.infer import (
    ConvergenceWarning,
    History,
    LocalReparamELBO,
    LocalReparameterization,
    MomentELBO,
    evaluate,
    fit,
    pretrain,
)
from pyrocompress.nn import (
    BayesianConv1d,
    BayesianConv2d,
    BayesianEmbedding,
    BayesianLinear,
    BayesianNetwork,
    OpRule,
    bayesianize,
    lenet5_caffe,
    lenet_300_100,
    mlp,
    register_layer,
    register_op,
    resnet20,
    vgg_bn_cifar,
)
from pyrocompress.nn.moments import propagate
from pyrocompress.priors import (
    Gaussian,
    GroupHorseshoe,
    GroupNormalJeffreys,
    Prior,
    RegularizedHorseshoe,
    SpikeAndSlab,
    register_prior,
)

if TYPE_CHECKING:
    from pyrocompress import plots, selection
    from pyrocompress.selection.estimator import FeatureSelector

__version__ = "0.2.0.dev0"

#: Names imported on first use: name -> (module, attribute or None for the module itself).
_LAZY: dict[str, tuple[str, str | None]] = {
    "FeatureSelector": ("pyrocompress.selection.estimator", "FeatureSelector"),
    "plots": ("pyrocompress.plots", None),
    "selection": ("pyrocompress.selection", None),
}

__all__ = [
    "REPORT_KEYS",
    "BayesianConv1d",
    "BayesianConv2d",
    "BayesianEmbedding",
    "BayesianLinear",
    "BayesianNetwork",
    "BernoulliLikelihood",
    "BitPrecision",
    "CategoricalLikelihood",
    "FeatureSelector",
    "Gaussian",
    "GaussianLikelihood",
    "GroupHorseshoe",
    "GroupNormalJeffreys",
    "ConvergenceWarning",
    "History",
    "LocalReparamELBO",
    "LocalReparameterization",
    "MomentELBO",
    "OpRule",
    "Posterior",
    "Prior",
    "PruneResult",
    "PruningPlan",
    "RegularizedHorseshoe",
    "SelectFeatures",
    "SpikeAndSlab",
    "__version__",
    "analysis",
    "bayesianize",
    "compress",
    "data",
    "deployable_files",
    "distributions",
    "effects",
    "evaluate",
    "export_onnx",
    "fit",
    "infer",
    "lenet5_caffe",
    "lenet_300_100",
    "load_compact",
    "load_packed",
    "make_plan",
    "mlp",
    "nn",
    "plots",
    "predict",
    "predictive_moments",
    "pretrain",
    "priors",
    "propagate",
    "prune",
    "register_layer",
    "register_op",
    "register_prior",
    "register_rule",
    "resnet20",
    "rng",
    "save_compact",
    "save_packed",
    "selection",
    "share_weights",
    "unit_scores",
    "vgg_bn_cifar",
]


def __getattr__(name: str) -> Any:
    """Import the scikit-learn estimator and the plots when first asked for (PEP 562)."""
    if name in _LAZY:
        module_name, attribute = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """List the module's names, the ones imported on first use included."""
    return sorted(set(globals()) | set(__all__))
