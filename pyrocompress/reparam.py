"""The local reparametrisation effect: how a model layer sees its guide's distributions.

Bayesian layers are ordinary Pyro programs: they ``pyro.sample`` their weights and group
scales and compute their output from those values. Under plain Pyro semantics that is all
they do, so the same model runs under NUTS, ``Predictive`` or any other guide.

During SVI, :func:`pyrocompress.fit` runs the model and the guide under one
:class:`LocalReparameterization`. The guide side records the variational distribution of
every latent site; a model layer asks for it with :func:`guide_distribution` (a Pyro
effect, answered ``None`` when no handler is active) and, when it gets one, replaces the
single shared weight draw by the local reparametrisation trick of Kingma, Salimans &
Welling (2015): it samples the pre-activations of every example from their exact
Gaussian distribution given the example's group scales, and draws those scales per
example too (Louizos et al. 2017, §3). Both are unbiased estimators of the same expected
log-likelihood with much lower variance; the KL terms are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable

from pyro.distributions import Distribution
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import effectful

__all__ = ["LocalReparameterization", "guide_distribution"]


@effectful(type="guide_distribution")
def _guide_distribution(site: str) -> Distribution | None:
    return None


def guide_distribution(site: str) -> Distribution | None:
    """The guide's distribution of latent ``site`` in this step, or ``None``.

    ``None`` unless the caller runs under :class:`LocalReparameterization`.
    """
    return _guide_distribution(site)


class _Recorder(Messenger):
    def __init__(self, store: dict[str, Distribution]):
        super().__init__()
        self.store = store

    def _pyro_post_sample(self, msg) -> None:
        if not msg["is_observed"]:
            self.store[msg["name"]] = msg["fn"]


class _Provider(Messenger):
    def __init__(self, store: dict[str, Distribution]):
        super().__init__()
        self.store = store

    def _pyro_guide_distribution(self, msg) -> None:
        msg["value"] = self.store.get(msg["args"][0])
        msg["done"] = True


class LocalReparameterization:
    """Pair a model and its guide for one locally reparametrised ELBO evaluation.

    Examples
    --------
    >>> lrt = LocalReparameterization()                      # doctest: +SKIP
    >>> loss = elbo.differentiable_loss(lrt.model(model), lrt.guide(guide), x, y)

    The guide must run before the model, as every Pyro ELBO does. Use a fresh instance
    per step.
    """

    def __init__(self) -> None:
        self._store: dict[str, Distribution] = {}

    def guide(self, fn: Callable) -> Callable:
        """Wrap the guide so that its latent sites' distributions are recorded."""
        return _Recorder(self._store)(fn)

    def model(self, fn: Callable) -> Callable:
        """Wrap the model so that :func:`guide_distribution` answers from the record."""
        return _Provider(self._store)(fn)
