"""Observation models: the ``obs`` site of a Bayesian network."""

from __future__ import annotations

import math

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
    """Base class. ``forward(out, y)`` samples (or observes) the site ``obs``."""

    task: str = ""

    def error(self, out: torch.Tensor, y: torch.Tensor) -> float:
        """Validation metric reported during training: lower is better."""
        raise NotImplementedError

    def point_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per example of a point network's output, up to
        constants (the loss of :func:`pyrocompress.infer.pretrain`)."""
        raise NotImplementedError

    metric_name: str = "error"

    def expected_log_prob(
        self, mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        r"""Return :math:`E_{f \sim N(mean, var)} \log p(y \mid f)` per example, or a lower bound.

        Used by the moment-propagation objective (Wu et al. 2019, §4);
        :mod:`pyrocompress.nn.moments` explains the bounds.
        """
        raise TypeError(f"{type(self).__name__} has no expected log-likelihood")

    def predictive(self, mean: torch.Tensor, var: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return predictive summaries from the output moments (``probs`` or ``predictive_var``)."""
        raise TypeError(f"{type(self).__name__} has no moment-based predictive")

    def num_classes(self, num_outputs: int) -> int | None:
        """Number of class labels for a network with ``num_outputs`` outputs; ``None`` for
        regression."""
        return num_outputs if self.task == "classification" else None


class CategoricalLikelihood(Likelihood):
    """``y ~ Categorical(softmax(out))``; the metric is the classification error rate."""

    task = "classification"
    metric_name = "error"

    def forward(self, out: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return pyro.sample("obs", dist.Categorical(logits=out), obs=y)

    def error(self, out: torch.Tensor, y: torch.Tensor) -> float:
        return (out.argmax(-1) != y).float().mean().item()

    def point_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y)

    def expected_log_prob(self, mean, var, y):
        r"""Jensen lower bound :math:`m_y - \mathrm{LSE}(m + v/2)` (Gaussian MGF)."""
        m_y = mean.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)
        return m_y - torch.logsumexp(mean + 0.5 * var, -1)

    def predictive(self, mean, var):
        r"""Probit approximation :math:`\mathrm{softmax}(m / \sqrt{1 + \pi v / 8})` (MacKay)."""
        return {"probs": torch.softmax(_probit_scaled(mean, var), -1)}


class BernoulliLikelihood(Likelihood):
    """``y ~ Bernoulli(sigmoid(out))`` for a network with one output (binary labels 0/1);
    with no hidden layer this is Bayesian logistic regression. The metric is the error
    rate."""

    task = "classification"
    metric_name = "error"

    def num_classes(self, num_outputs: int) -> int:
        if num_outputs != 1:
            raise ValueError(
                f"the Bernoulli likelihood needs a network with 1 output, got {num_outputs}"
            )
        return 2

    def forward(self, out: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        logits = out.squeeze(-1)
        obs = None if y is None else y.to(logits.dtype)
        return pyro.sample("obs", dist.Bernoulli(logits=logits), obs=obs)

    def error(self, out: torch.Tensor, y: torch.Tensor) -> float:
        return ((out.squeeze(-1) > 0).long() != y.long()).float().mean().item()

    def point_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = out.squeeze(-1)
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))

    def expected_log_prob(self, mean, var, y):
        r"""Jensen lower bound :math:`y m - \mathrm{softplus}(m + v/2)`."""
        m, v = mean.squeeze(-1), var.squeeze(-1)
        return y.float() * m - F.softplus(m + 0.5 * v)

    def predictive(self, mean, var):
        """Probit approximation of the probability of class 1 (MacKay 1992)."""
        return {"probs": torch.sigmoid(_probit_scaled(mean, var))}


class GaussianLikelihood(Likelihood):
    """``y ~ N(out, sigma^2)``; ``sigma`` is a point estimate (type-II maximum likelihood)
    or, with ``learn_noise=False``, fixed (conjugate Bayesian linear regression).

    The metric is the root mean squared error.
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
        return self.log_noise.exp()

    def forward(self, out: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        loc = out.squeeze(-1) if out.dim() == 2 and out.shape[-1] == 1 else out
        d = dist.Normal(loc, self.noise)
        if loc.dim() > 1:
            d = d.to_event(loc.dim() - 1)
        return pyro.sample("obs", d, obs=y)

    def error(self, out: torch.Tensor, y: torch.Tensor) -> float:
        loc = out.squeeze(-1) if out.dim() == 2 and out.shape[-1] == 1 else out
        return (loc - y).pow(2).mean().sqrt().item()

    def point_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Half the mean squared error: the negative log-likelihood at unit noise, the
        scale of a standardised target (the noise is not trained here)."""
        loc = out.squeeze(-1) if out.dim() == 2 and out.shape[-1] == 1 else out
        return 0.5 * F.mse_loss(loc, y.to(loc.dtype))

    def expected_log_prob(self, mean, var, y):
        r"""Exact: :math:`-\log(\sqrt{2\pi}\sigma) - ((y - m)^2 + v) / (2\sigma^2)`."""
        noise = self.noise
        m = mean.squeeze(-1)
        v = var.squeeze(-1)
        return -0.5 * math.log(2 * math.pi) - noise.log() - ((y - m).square() + v) / (2 * noise**2)

    def predictive(self, mean, var):
        """The predictive variance: output variance plus noise variance."""
        return {"predictive_var": var + self.noise.square()}


def _probit_scaled(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return mean / torch.sqrt(1.0 + math.pi * var / 8.0)


def get_likelihood(likelihood: str | Likelihood) -> Likelihood:
    """A likelihood from an instance or ``"categorical"`` / ``"bernoulli"`` /
    ``"gaussian"``."""
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
