"""The local reparametrisation effect: how a model layer sees its guide's distributions.

Bayesian layers are ordinary Pyro programs: they ``pyro.sample`` their weights and group
scales and compute their output from those values. Under plain Pyro semantics that is all
they do, so the same model runs under NUTS, ``Predictive`` or any other guide.

During SVI the model and the guide run under one :class:`LocalReparameterization` (with
any Pyro ELBO) or inside :class:`LocalReparamELBO` (what :func:`pyrocompress.fit` uses: the
same estimator, faster). The guide side records the variational distribution of every
latent site; a model layer asks for them with
:func:`~pyrocompress.effects.guide_distributions` (a Pyro effect, answered ``None`` when no
handler is active) and, when it gets one, replaces the single shared weight draw by the
local reparametrisation trick of :cite:t:`kingma2015variational`: it samples the
pre-activations of every example from their exact Gaussian distribution given the
example's group scales, and draws those scales per example too :cite:p:`louizos2017bayesian{§3}`.
Both are unbiased estimators of the same expected
log-likelihood with much lower variance; the KL terms are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions import Distribution
from pyro.distributions.util import scale_and_mask
from pyro.infer import ELBO
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence

from pyrocompress.nn import BayesianNetwork
from pyrocompress.nn.moments import COVARIANCES, check_supported, expected_log_likelihood, propagate

__all__ = [
    "LocalReparamELBO",
    "LocalReparameterization",
    "MomentELBO",
    "kl_sum",
]


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

    def _pyro_guide_distributions(self, msg) -> None:
        msg["value"] = tuple(self.store.get(site) for site in msg["args"][0])
        msg["done"] = True


class LocalReparameterization:
    """Pair a model and its guide for one locally reparametrised ELBO evaluation.

    The guide must run before the model, as every Pyro ELBO does. Use a fresh instance
    per step.

    Examples
    --------
    >>> import torch, pyrocompress as pc
    >>> from pyro.infer import TraceMeanField_ELBO
    >>> from pyrocompress.infer import LocalReparameterization
    >>> bnn = pc.bayesianize(pc.mlp([3, 4, 2]), "group-nj", seed=0)
    >>> X, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    >>> lrt = LocalReparameterization()
    >>> loss = TraceMeanField_ELBO().differentiable_loss(lrt.model(bnn), lrt.guide(bnn.guide), X, y)
    >>> loss.shape
    torch.Size([])
    """

    def __init__(self) -> None:
        self._store: dict[str, Distribution] = {}

    def guide(self, fn: Callable) -> Callable:
        """Wrap the guide so that its latent sites' distributions are recorded."""
        return _Recorder(self._store)(fn)

    def model(self, fn: Callable) -> Callable:
        """Wrap the model so that the guide distributions it asks for come from the record.

        :func:`~pyrocompress.effects.guide_distributions` answers from it.
        """
        return _Provider(self._store)(fn)


class _GuideSites(Messenger):
    """Guide side of :class:`LocalReparamELBO`: record each latent site, draw nothing.

    Under the local reparametrisation no model statement reads the value of a guide site:
    layers read the site's distribution and draw pre-activations and gates themselves.
    The site's value is set to the distribution's mean (no random numbers, no weight-sized
    draw) so that the record stays well formed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sites: dict[str, dict] = {}

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or site_is_subsample(msg):
            return
        msg["value"] = msg["fn"].mean
        msg["done"] = True
        self.sites[msg["name"]] = msg


class _ModelSites(Messenger):
    """Model side of :class:`LocalReparamELBO`.

    It replays the guide's sites, answers
    :func:`~pyrocompress.effects.guide_distributions`, and records the latent and
    observed sites.

    It does the work of ``poutine.trace``, ``poutine.replay`` and the provider of
    :class:`LocalReparameterization` in one handler, so that every ``pyro.sample`` of a
    step passes through one handler instead of three.
    """

    def __init__(self, guide_sites: dict[str, dict]) -> None:
        super().__init__()
        self.guide_sites = guide_sites
        self.latent: list[tuple[dict, dict]] = []
        self.observed: list[dict] = []

    def _pyro_sample(self, msg) -> None:
        if site_is_subsample(msg):
            return
        if msg["is_observed"]:
            self.observed.append(msg)
            return
        q_site = self.guide_sites.get(msg["name"])
        if q_site is None:
            raise ValueError(
                f"latent site {msg['name']!r} of the model has no site in the guide; "
                "LocalReparamELBO needs a guide site (with an analytic KL) for every latent"
            )
        msg["value"] = q_site["value"]
        msg["done"] = True
        self.latent.append((msg, q_site))

    def _pyro_guide_distributions(self, msg) -> None:
        sites = self.guide_sites
        msg["value"] = tuple(
            sites[name]["fn"] if name in sites else None for name in msg["args"][0]
        )
        msg["done"] = True


def kl_sum(pairs) -> torch.Tensor | float:
    r"""Return :math:`\sum s\,\mathrm{KL}(q\,\|\,p)` over ``(guide site, prior)`` pairs.

    Each KL is analytic and scaled and masked as its guide site (KL warm-up,
    subsampling); one stack-and-sum node in the autograd graph. 0.0 without pairs.
    """
    terms = []
    for q_site, p in pairs:
        term = scale_and_mask(kl_divergence(q_site["fn"], p), q_site["scale"], q_site["mask"])
        terms.append(term if term.dim() == 0 else term.sum())
    return torch.stack(terms).sum() if terms else 0.0


class LocalReparamELBO(ELBO):
    r"""Mean-field ELBO with the local reparametrisation, built for speed.

    The same estimator as :class:`~pyro.infer.TraceMeanField_ELBO` run on a model and
    guide wrapped by :class:`LocalReparameterization`:

    .. math::
        \mathcal{L} = \sum_{\text{observed } i} s_i \log p(y_i \mid \ldots)
        - \sum_{\text{latent } z} s_z\,\mathrm{KL}\big(q(z) \,\|\, p(z)\big),

    with :math:`s` the site's scale (minibatch ``N / B`` from ``pyro.plate``
    subsampling, KL warm-up from ``poutine.scale``), the observations' log-density at the
    locally reparametrised pre-activations (:cite:t:`kingma2015variational`;
    :cite:t:`louizos2017bayesian{§3}`) and every KL analytic. It differs only in what it does not
    do: it never draws the guide's latent sites (under the local reparametrisation no model
    statement reads them; they take their means), it records sites with one effect handler per
    program instead of building traces, and it computes no log-density of a latent site, no
    score-function parts and no per-step validation, all of which the generic ELBO computes and then
    does not use. With the same random numbers in the model it gives the same value as the generic
    path (``tests/infer/test_local_reparam.py``). Every latent site needs a registered KL.

    The model and the guide stay ordinary Pyro programs; use it as any Pyro ELBO. The
    guide's parameters are module-local (not in Pyro's parameter store), so a torch
    optimiser over ``bnn.parameters()`` trains them, as :func:`~pyrocompress.fit` does:

    >>> import torch, pyrocompress as pc
    >>> from pyrocompress.infer import LocalReparamELBO
    >>> bnn = pc.bayesianize(pc.mlp([3, 4, 2]), "group-nj", seed=0)
    >>> optimizer = torch.optim.Adam(bnn.parameters(), lr=0.01)
    >>> X, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    >>> loss = LocalReparamELBO().differentiable_loss(bnn, bnn.guide, X, y)
    >>> loss.backward(); optimizer.step()

    Examples
    --------
    A few training steps by hand, with a minibatch of 32 of 64 examples (the
    likelihood scaled by ``N / B`` = 2). The local reparametrisation draws noise from
    torch's global generator: :func:`pyrocompress.rng.seeded` seeds it for the block and
    gives the caller's state back after.

    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> elbo = pc.LocalReparamELBO()
    >>> optimizer = torch.optim.Adam(bnn.parameters(), lr=0.01)
    >>> with pc.rng.seeded(0):
    ...     for step in range(3):
    ...         optimizer.zero_grad()
    ...         loss = elbo.differentiable_loss(bnn, bnn.guide, X[:32], y[:32], dataset_size=64)
    ...         loss.backward()
    ...         optimizer.step()
    >>> loss.shape, bool(torch.isfinite(loss))
    (torch.Size([]), True)
    """

    def __init__(self, num_particles: int = 1):
        if isinstance(num_particles, bool) or not isinstance(num_particles, int):
            raise TypeError(f"num_particles must be an int, got {num_particles!r}")
        if num_particles < 1:
            raise ValueError(f"num_particles must be >= 1, got {num_particles}")
        super().__init__(num_particles=num_particles)

    @staticmethod
    def _run(model, guide, args, kwargs) -> _ModelSites:
        guide_sites = _GuideSites()
        with guide_sites:
            guide(*args, **kwargs)
        model_sites = _ModelSites(guide_sites.sites)
        with model_sites:
            model(*args, **kwargs)
        return model_sites

    def _get_trace(self, model, guide, args, kwargs):
        """Return the model and guide traces of one evaluation.

        They are for inspection; the loss does not build them.
        """
        sites = self._run(model, guide, args, kwargs)
        model_trace, guide_trace = poutine.Trace(), poutine.Trace()
        for name, msg in sites.guide_sites.items():
            guide_trace.add_node(name, **msg)
        for msg in [m for m, _ in sites.latent] + sites.observed:
            model_trace.add_node(msg["name"], **msg)
        return model_trace, guide_trace

    @staticmethod
    def _particle(sites: _ModelSites) -> torch.Tensor:
        log_lik = [
            scale_and_mask(msg["fn"].log_prob(msg["value"]), msg["scale"], msg["mask"]).sum()
            for msg in sites.observed
        ]
        # one stack-and-sum node instead of a chain of additions in the autograd graph
        total_kl = kl_sum((q_site, msg["fn"]) for msg, q_site in sites.latent)
        total_log_lik = torch.stack(log_lik).sum() if log_lik else 0.0
        return cast(torch.Tensor, total_kl - total_log_lik)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """Negative ELBO as a differentiable tensor (no host synchronisation)."""
        loss = 0.0
        with pyro.validation_enabled(False):
            for _ in range(self.num_particles):
                loss = loss + self._particle(self._run(model, guide, args, kwargs))
        return cast(torch.Tensor, loss / self.num_particles)

    def loss(self, model, guide, *args, **kwargs) -> float:
        """Negative ELBO as a float."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Negative ELBO as a float; back-propagates it (for :class:`pyro.infer.SVI`)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward(retain_graph=self.retain_graph)
        return loss.item()


class MomentELBO(ELBO):
    r"""The ELBO with its expected log-likelihood in closed form (deterministic VI).

    .. math::
        \mathcal L = \frac{N}{B}\sum_{i \in \text{batch}}
            \mathrm E_{q}\log p(y_i \mid f(x_i))
            - \beta \sum_{\text{latent } z} \mathrm{KL}\big(q(z)\,\|\,p(z)\big),

    the expectation from the propagated output moments (:func:`propagate`,
    :func:`expected_log_likelihood`; :cite:p:`wu2019deterministic{§3-4}`) and every KL analytic, as
    in :class:`~pyrocompress.infer.LocalReparamELBO`: the guide runs as a Pyro program and each
    latent site's KL is taken against the prior the model samples that site from. No random numbers
    are drawn, so its gradient has no Monte Carlo variance. Used by ``fit(...,
    objective="moments")``; the model must be a :class:`BayesianNetwork` with the Gaussian prior.
    ``covariance="full"`` propagates full covariances (Linear and ReLU networks, :func:`propagate`);
    the expected log-likelihood uses their diagonal.

    Examples
    --------
    No random numbers: the same parameters give the same loss, to the bit.

    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "gaussian", seed=0)
    >>> elbo = pc.MomentELBO()
    >>> loss = elbo.differentiable_loss(bnn, bnn.guide, X, y)
    >>> torch.equal(loss, elbo.differentiable_loss(bnn, bnn.guide, X, y))
    True
    >>> loss.backward()  # gradients for the guide's parameters
    >>> all(p.grad is not None for p in bnn.guide.parameters())
    True

    :func:`~pyrocompress.fit` trains with it when given ``objective="moments"``:

    >>> history = pc.fit(
    ...     bnn, (X, y), objective="moments", epochs=2, batch_size=32, tol=None, progress=False
    ... )
    >>> len(history)
    2
    """

    def __init__(self, *, covariance: str = "diagonal", **kwargs) -> None:
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        super().__init__(**kwargs)
        self.covariance = covariance

    def differentiable_loss(self, model, guide, X, y, *, dataset_size=None, subsample=None,
                            kl_scale: float = 1.0, **kwargs) -> torch.Tensor:  # fmt: skip
        """Return the negative ELBO as a differentiable tensor (no random numbers drawn).

        It is the sum of the guide's analytic KLs (the guide run with ``kl_scale``) minus
        ``N / B`` times the expected log-likelihood of ``y``, with ``N`` the
        ``dataset_size`` (``len(X)`` when None) and ``B = len(X)``.
        """
        bnn = model
        if not isinstance(bnn, BayesianNetwork):
            raise TypeError("MomentELBO's model must be a BayesianNetwork")
        check_supported(bnn)
        guide_sites = _GuideSites()
        with guide_sites:
            guide(X, y, kl_scale=kl_scale)
        # the latent sites are found as LocalReparamELBO finds them: the layers' own model
        # statements run under the same handler, which pairs each with its guide site
        model_sites = _ModelSites(guide_sites.sites)
        with model_sites:
            for layer in bnn.bayesian_layers().values():
                layer.prior.model(layer.spec, X)
        kl = kl_sum((q_site, msg["fn"]) for msg, q_site in model_sites.latent)
        out = propagate(bnn, X, covariance=self.covariance)
        mean, var = out[0], out[1]
        if self.covariance == "full":
            var = var.diagonal(0, -2, -1)
        ell = expected_log_likelihood(bnn.likelihood, mean, var, y).sum()
        n = len(X) if dataset_size is None else dataset_size
        return kl - (n / len(X)) * ell

    def _get_trace(self, model, guide, args, kwargs):
        raise NotImplementedError(
            "MomentELBO computes the likelihood term in closed form and builds no traces"
        )

    def loss(self, model, guide, *args, **kwargs) -> float:
        """Return the negative ELBO as a float."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Return the negative ELBO as a float; back-propagates it (for :class:`pyro.infer.SVI`)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()
