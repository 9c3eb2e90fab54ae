r"""Priors over the weights of a Bayesian layer, with their guide families.

Every prior writes the effective weight of a layer in non-centred form,
:math:`W = g \odot \tilde W`, :math:`\tilde W \sim N(0, v)`, with one gate or scale
:math:`g` per *group* (see :mod:`pyrocompress.priors.base`). One file per prior; each
is registered with :func:`register_prior`, from which the CLI's choices and the feature
selector's list are derived. A new prior is one class and one decorator
(``docs/design.md``).
"""

from pyrocompress.priors.base import LOG_VAR_RANGE, SCALE_RANGE, Gate, LayerSpec, Prior
from pyrocompress.priors.guides import LayerGuide, NetworkGuide
from pyrocompress.priors.registry import (
    get_prior,
    prior_keys,
    register_prior,
    registered_priors,
)

# the built-in priors register themselves on import, in this order
from pyrocompress.priors.gaussian import Gaussian, GaussianGuide  # isort: skip
from pyrocompress.priors.normal_jeffreys import (  # isort: skip
    GroupNormalJeffreys,
    GroupNormalJeffreysGuide,
)
from pyrocompress.priors.horseshoe import GroupHorseshoe, GroupHorseshoeGuide  # isort: skip
from pyrocompress.priors.spike_slab import SpikeAndSlab, SpikeAndSlabGuide  # isort: skip
from pyrocompress.priors.regularized_horseshoe import (  # isort: skip
    RegularizedHorseshoe,
    RegularizedHorseshoeGuide,
)

__all__ = [
    "LOG_VAR_RANGE",
    "SCALE_RANGE",
    "Gate",
    "Gaussian",
    "GaussianGuide",
    "GroupHorseshoe",
    "GroupHorseshoeGuide",
    "GroupNormalJeffreys",
    "GroupNormalJeffreysGuide",
    "LayerGuide",
    "LayerSpec",
    "NetworkGuide",
    "Prior",
    "RegularizedHorseshoe",
    "RegularizedHorseshoeGuide",
    "SpikeAndSlab",
    "SpikeAndSlabGuide",
    "get_prior",
    "prior_keys",
    "register_prior",
    "registered_priors",
]
