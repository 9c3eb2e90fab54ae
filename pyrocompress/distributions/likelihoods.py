"""Observation models: the ``obs`` site of a Bayesian network."""

from __future__ import annotations

import math
from typing import override

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "GaussianLikelihood",
    "Likelihood",
    "get_likelihood",
]


class Likelihood(nn.Module):
    """Base class of the observation models: ``forward(out, y)`` samples (or observes) ``obs``.

    Attributes
    ----------
    task : str
        ``"classification"`` or ``"regression"``.
    metric_name : str
        Name of the validation metric :meth:`error` returns (``"error"``, ``"rmse"``).
    """

    task: str = ""

    def forward(self, out: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Sample the site ``obs`` given the network output, observed at ``y`` when given.

        Parameters
        ----------
        out
            Network output, ``[N, num_outputs]``.
        y
            Targets, or ``None`` to sample (predictive).

        Returns
        -------
        Tensor
            The value of the site ``obs``.
        """
        raise NotImplementedError

    def error(self, out: torch.Tensor, y: torch.Tensor) -> float:
        """Return the validation metric reported during training: lower is better.

        Parameters
        ----------
        out
            Network output, ``[N, num_outputs]``.
        y
            Targets.

        Returns
        -------
        float
            The metric named by :attr:`metric_name`.
        """
        raise NotImplementedError

    def point_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the mean negative log-likelihood per example of a point network's output.

        Up to constants: the loss of :func:`pyrocompress.infer.pretrain`.

        Parameters
        ----------
        out
            Network output, ``[N, num_outputs]``.
        y
            Targets.

        Returns
        -------
        Tensor
            A scalar loss.
        """
        raise NotImplementedError

    metric_name: str = "error"

    def expected_log_prob(
        self, mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        r"""Return :math:`E_{f \sim N(mean, var)} \log p(y \mid f)` per example, or a lower bound.

        Used by the moment-propagation objective :cite:p:`wu2019deterministic{§4}`;
        :mod:`pyrocompress.nn.moments` explains the bounds.

        Parameters
        ----------
        mean, var
            Mean and variance of the network output, ``[N, num_outputs]``.
        y
            Targets.

        Returns
        -------
        Tensor
            One value per example, ``[N]``.

        Raises
        ------
        TypeError
            If the likelihood has no expected log-likelihood.
        """
        raise TypeError(f"{type(self).__name__} has no expected log-likelihood")

    def predictive(self, mean: torch.Tensor, var: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return predictive summaries from the output moments (``probs`` or ``predictive_var``).

        Parameters
        ----------
        mean, var
            Mean and variance of the network output, ``[N, num_outputs]``.

        Returns
        -------
        dict
            ``{"probs": ...}`` for classification, ``{"predictive_var": ...}`` for
            regression.

        Raises
        ------
        TypeError
            If the likelihood has no moment-based predictive.
        """
        raise TypeError(f"{type(self).__name__} has no moment-based predictive")

    def fisher_factor(self, out: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`F_n` with :math:`F_n F_n^\top` the Fisher information of the output.

        For an exponential-family likelihood the Fisher information of the network output
        :math:`f_n` of example :math:`n`, :math:`\Lambda_n = E_{y \sim p(\cdot \mid f_n)}
        [\nabla_f \log p\,\nabla_f \log p^\top]`, equals the expected Hessian of
        :math:`-\log p`; back-propagating the columns of a factor of it gives the diagonal
        of the generalised Gauss-Newton matrix (:cite:t:`schraudolph2002fast`;
        :cite:t:`martens2020new{§9}`) — the Fisher information of the weights — without sampling
        targets.

        Parameters
        ----------
        out
            Network output, ``[N, num_outputs]``.

        Returns
        -------
        Tensor
            ``[N, num_outputs, K]``, with :math:`\Lambda_n = F_n F_n^\top`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not give the Fisher information of its output; "
            "define fisher_factor to compute inclusion probabilities"
        )

    def num_classes(self, num_outputs: int) -> int | None:
        """Return the number of class labels for a network with ``num_outputs`` outputs.

        Parameters
        ----------
        num_outputs
            Number of output units of the network.

        Returns
        -------
        int or None
            The number of classes; ``None`` for regression.
        """
        return num_outputs if self.task == "classification" else None


class CategoricalLikelihood(Likelihood):
    """``y ~ Categorical(softmax(out))``; the metric is the classification error rate.

    Examples
    --------
    The default of :func:`~pyrocompress.bayesianize` (``likelihood="categorical"``): the
    network gives one logit per class.

    >>> import torch, pyrocompress as pc
    >>> bnn = pc.bayesianize(pc.mlp([4, 3]), "group-nj", seed=0)
    >>> lik = bnn.likelihood
    >>> type(lik).__name__, lik.task, lik.metric_name, lik.num_classes(3)
    ('CategoricalLikelihood', 'classification', 'error', 3)
    >>> logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> lik.error(logits, torch.tensor([0, 2]))  # the second is wrong
    0.5
    """

    task = "classification"
    metric_name = "error"

    @override
    def forward(self, out: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return pyro.sample("obs", dist.Categorical(logits=out), obs=y)

    @override
    def error(self, out: torch.Tensor, y: torch.Tensor) -> float:
        return (out.argmax(-1) != y).float().mean().item()

    @override
    def point_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y)

    @override
    def expected_log_prob(
        self, mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        r"""Return the Jensen lower bound :math:`m_y - \mathrm{LSE}(m + v/2)` (Gaussian MGF)."""
        m_y = mean.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)
        return m_y - torch.logsumexp(mean + 0.5 * var, -1)

    @override
    def predictive(self, mean: torch.Tensor, var: torch.Tensor) -> dict[str, torch.Tensor]:
        r"""Return the probit approximation :math:`\mathrm{softmax}(m / \sqrt{1 + \pi v / 8})`.

        See :cite:t:`mackay1992evidence`.
        """
        return {"probs": torch.softmax(_probit_scaled(mean, var), -1)}

    @override
    def fisher_factor(self, out: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`\mathrm{diag}(\sqrt p) - p\sqrt p^\top`.

        A factor of the softmax's Fisher information :math:`\mathrm{diag}(p) - pp^\top`
        (:math:`\sum_c p_c = 1`).
        """
        p = torch.softmax(out, -1)
        sqrt_p = p.sqrt()
        return torch.diag_embed(sqrt_p) - p.unsqueeze(-1) * sqrt_p.unsqueeze(-2)


class BernoulliLikelihood(Likelihood):
    """``y ~ Bernoulli(sigmoid(out))`` for a network with one output (binary labels 0/1).

    With no hidden layer this is Bayesian logistic regression. The metric is the error
    rate.

    Examples
    --------
    Bayesian logistic regression on three features:

    >>> import torch, pyrocompress as pc
    >>> bnn = pc.bayesianize(pc.mlp([3, 1]), "group-horseshoe", likelihood="bernoulli", seed=0)
    >>> lik = bnn.likelihood
    >>> type(lik).__name__, lik.num_classes(1)
    ('BernoulliLikelihood', 2)
    >>> logits = torch.tensor([[1.5], [-0.5], [0.3]])  # class 1 where the logit is positive
    >>> round(lik.error(logits, torch.tensor([1, 0, 0])), 4)  # the third is wrong
    0.3333
    """

    task = "classification"
    metric_name = "error"

    @override
    def num_classes(self, num_outputs: int) -> int:
        """Return 2 (labels 0/1).

        Parameters
        ----------
        num_outputs
            Number of output units of the network; must be 1.

        Returns
        -------
        int
            2.

        Raises
        ------
        ValueError
            If the network has more than one output.
        """
        if num_outputs != 1:
            raise ValueError(
                f"the Bernoulli likelihood needs a network with 1 output, got {num_outputs}"
            )
        return 2

    @override
    def forward(self, out: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        logits = out.squeeze(-1)
        obs = None if y is None else y.to(logits.dtype)
        return pyro.sample("obs", dist.Bernoulli(logits=logits), obs=obs)

    @override
    def error(self, out: torch.Tensor, y: torch.Tensor) -> float:
        return ((out.squeeze(-1) > 0).long() != y.long()).float().mean().item()

    @override
    def point_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = out.squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))

    @override
    def expected_log_prob(
        self, mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        r"""Return the Jensen lower bound :math:`y m - \mathrm{softplus}(m + v/2)`."""
        m, v = mean.squeeze(-1), var.squeeze(-1)
        return y.float() * m - F.softplus(m + 0.5 * v)

    @override
    def predictive(self, mean: torch.Tensor, var: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the probit approximation of the probability of class 1.

        See :cite:t:`mackay1992evidence`.
        """
        return {"probs": torch.sigmoid(_probit_scaled(mean, var))}

    @override
    def fisher_factor(self, out: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`\sqrt{p(1-p)}`, :math:`p = \sigma(f)`, as ``[N, 1, 1]``."""
        p = torch.sigmoid(out.reshape(len(out), 1))
        return (p * (1 - p)).sqrt().unsqueeze(-1)


class GaussianLikelihood(Likelihood):
    """``y ~ N(out, sigma^2)``, with ``sigma`` learnt or fixed.

    ``sigma`` is a point estimate (type-II maximum likelihood) or, with
    ``learn_noise=False``, fixed (conjugate Bayesian linear regression).

    The metric is the root mean squared error.

    Parameters
    ----------
    noise
        Initial (or fixed) noise standard deviation ``sigma > 0``.
    learn_noise
        Learn ``sigma`` (a parameter) or keep it fixed (a buffer).

    Raises
    ------
    ValueError
        If ``noise`` is not a positive number.

    Examples
    --------
    ``likelihood="gaussian"`` learns the noise from 1; pass an instance to fix it:

    >>> import torch, pyrocompress as pc
    >>> lik = pc.GaussianLikelihood(noise=0.5, learn_noise=False)
    >>> lik.task, lik.metric_name, float(lik.noise)
    ('regression', 'rmse', 0.5)
    >>> round(lik.error(torch.tensor([[1.0], [2.0]]), torch.tensor([1.0, 4.0])), 4)  # RMSE
    1.4142
    >>> bnn = pc.bayesianize(pc.mlp([3, 1]), "gaussian", likelihood=lik, seed=0)
    >>> len(list(bnn.likelihood.parameters()))  # the noise is a buffer, not trained
    0
    """

    task = "regression"
    metric_name = "rmse"

    def __init__(self, noise: float = 1.0, *, learn_noise: bool = True):
        super().__init__()
        if not (isinstance(noise, int | float) and noise > 0):
            raise ValueError(f"noise must be a positive number, got {noise!r}")
        log_noise = torch.tensor(float(noise)).log()
        if learn_noise:
            self.log_noise = nn.Parameter(log_noise)
        else:
            self.register_buffer("log_noise", log_noise)

    @property
    def noise(self) -> torch.Tensor:
        """The noise standard deviation ``sigma``."""
        return self.log_noise.exp()

    @override
    def forward(self, out: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        loc = out.squeeze(-1) if out.dim() == 2 and out.shape[-1] == 1 else out
        d = dist.Normal(loc, self.noise)
        if loc.dim() > 1:
            d = d.to_event(loc.dim() - 1)
        return pyro.sample("obs", d, obs=y)

    @override
    def error(self, out: torch.Tensor, y: torch.Tensor) -> float:
        loc = out.squeeze(-1) if out.dim() == 2 and out.shape[-1] == 1 else out
        return (loc - y).pow(2).mean().sqrt().item()

    @override
    def point_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return half the mean squared error.

        It is the negative log-likelihood at unit noise, the scale of a standardised target
        (the noise is not trained here).
        """
        loc = out.squeeze(-1) if out.dim() == 2 and out.shape[-1] == 1 else out
        return 0.5 * F.mse_loss(loc, y.to(loc.dtype))

    @override
    def expected_log_prob(
        self, mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        r"""Return the exact :math:`-\log(\sqrt{2\pi}\sigma) - ((y - m)^2 + v) / (2\sigma^2)`."""
        noise = self.noise
        m = mean.squeeze(-1)
        v = var.squeeze(-1)
        return -0.5 * math.log(2 * math.pi) - noise.log() - ((y - m).square() + v) / (2 * noise**2)

    @override
    def predictive(self, mean: torch.Tensor, var: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the predictive variance: output variance plus noise variance."""
        return {"predictive_var": var + self.noise.square()}

    @override
    def fisher_factor(self, out: torch.Tensor) -> torch.Tensor:
        r"""Return :math:`I / \sigma`: the Fisher information of a mean is :math:`1/\sigma^2`."""
        flat = out.reshape(len(out), -1)
        eye = torch.eye(flat.shape[1], dtype=out.dtype, device=out.device)
        return (eye / self.noise.detach()).expand(len(out), -1, -1)


def _probit_scaled(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return mean / torch.sqrt(1.0 + math.pi * var / 8.0)


def get_likelihood(likelihood: str | Likelihood) -> Likelihood:
    """Return a likelihood from an instance or a name.

    Parameters
    ----------
    likelihood
        A :class:`Likelihood` (returned as is) or ``"categorical"`` (also
        ``"classification"``), ``"bernoulli"``, ``"gaussian"`` (also ``"regression"``).

    Returns
    -------
    Likelihood
        The likelihood.

    Raises
    ------
    ValueError
        If the name is unknown.
    """
    if isinstance(likelihood, Likelihood):
        return likelihood
    if likelihood == "bernoulli":
        return BernoulliLikelihood()
    if likelihood in ("categorical", "classification"):
        return CategoricalLikelihood()
    if likelihood in ("gaussian", "regression"):
        return GaussianLikelihood()
    raise ValueError(
        f"unknown likelihood {likelihood!r}; use 'categorical', 'bernoulli', 'gaussian' "
        "or a Likelihood"
    )
