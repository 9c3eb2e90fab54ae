r"""The posterior predictive on new inputs, by Monte Carlo over the guide, for every prior.

:func:`predict` draws :math:`S` networks :math:`\theta_s \sim q(\theta)` from the fitted
guide (every latent site: gates, global scales and weights, whatever the prior), runs each
on the inputs and averages what the likelihood gives for each draw:

.. math::

    \hat p(y = c \mid x) = \frac1S \sum_s p(y = c \mid f_{\theta_s}(x)), \qquad
    \hat E[y \mid x] = \frac1S \sum_s E[y \mid f_{\theta_s}(x)],

the Monte-Carlo estimate of the posterior predictive :math:`\int p(y \mid x, \theta)
q(\theta)\, d\theta` :cite:p:`bishop2006pattern{§3.3.2}`; :cite:p:`blundell2015weight{§3.4}`. Unlike
:func:`~pyrocompress.analysis.predictive_moments`, which propagates moments without
sampling and needs independent Gaussian weights, it holds for the group priors too
(normal-Jeffreys, horseshoe, spike-and-slab), whose gates make a group's weights
dependent and non-Gaussian.

:func:`guide_traces` is the one sampler of posterior draws in :mod:`pyrocompress.analysis`:
:func:`~pyrocompress.analysis.diagnostics.posterior_draws` (and so
:meth:`~pyrocompress.Posterior.to_datatree`) replays the model under the same traces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger

from pyrocompress.constraints import check
from pyrocompress.nn import BayesianNetwork
from pyrocompress.rng import seeded

__all__ = ["Prediction", "guide_traces", "predict"]


def guide_traces(
    bnn: BayesianNetwork, num_samples: int, *, seed: int | None = 0
) -> Generator[poutine.Trace, None, None]:
    """Yield ``num_samples`` traces of the guide of ``bnn``: posterior draws of every latent site.

    While the generator runs, ``bnn`` is in eval mode and torch's global generators are
    seeded by ``seed`` (:func:`pyrocompress.rng.seeded`), so what the caller samples between
    two draws (the observations of a replayed model) is seeded too; both are restored when
    the generator finishes or is closed. Iterate it under :func:`contextlib.closing` so that
    an exception in the loop restores them at once, and under :func:`torch.no_grad` unless
    gradients are wanted.

    Parameters
    ----------
    bnn
        The fitted network.
    num_samples
        Number of draws.
    seed
        Seed of the draws; ``None`` draws from the caller's streams.

    Yields
    ------
    pyro.poutine.Trace
        One trace of ``bnn.guide`` per draw; replay the model (or ``bnn.net``) under it
        with :func:`pyro.poutine.replay`.
    """
    was_training = bnn.training
    bnn.eval()
    try:
        with seeded(seed):
            for _ in range(num_samples):
                yield poutine.trace(bnn.guide).get_trace()
    finally:
        bnn.train(was_training)


@dataclass(frozen=True, repr=False)
class Prediction:
    r"""The posterior predictive of :func:`predict` at ``N`` inputs.

    Attributes
    ----------
    task
        ``"classification"`` or ``"regression"`` (the likelihood's).
    mean
        Classification: the predictive class probabilities :math:`\hat p(y = c \mid x)`,
        ``[N, K]`` (``K = 2`` for the Bernoulli likelihood, columns class 0 and class 1),
        the mean over the draws of each draw's probabilities (softmax, or sigmoid, of
        the logits). Regression: the predictive mean :math:`\hat E[y \mid x]`, ``[N]``
        (``[N, D]`` for ``D`` outputs).
    sd
        Classification: the standard deviation over the draws of the class
        probabilities — the posterior (epistemic) uncertainty of :attr:`mean`; the
        outcome's own randomness is in :attr:`mean` itself. Regression: the predictive
        standard deviation of ``y``, observation noise included,
        :math:`\sqrt{\widehat{\mathrm{Var}}_s E[y \mid f_s] + \overline{\mathrm{Var}[y
        \mid f_s]}}` (law of total variance): for the Gaussian likelihood
        :math:`\sqrt{\widehat{\mathrm{Var}}_s f_s(x) + \sigma^2}`, with :math:`\sigma`
        its fitted noise scale (a point estimate, not integrated over).
    epistemic_sd
        The standard deviation over the draws of what the likelihood predicts for each
        draw (the class probabilities, or :math:`E[y \mid f_s]`): the part of the
        uncertainty the posterior over the weights carries. Equal to :attr:`sd` for
        classification.
    mean_se
        The Monte-Carlo standard error of :attr:`mean`, :attr:`epistemic_sd`
        :math:`/\sqrt S`: how far :attr:`mean` may be from the exact predictive mean
        under the guide because only ``S`` draws were taken.
    num_samples
        The number of draws ``S``.

    Variances over the draws are the unbiased sample variances (divisor ``S - 1``),
    accumulated in float64 (Welford's algorithm); every tensor is float32, on the CPU.
    """

    task: str
    mean: torch.Tensor
    sd: torch.Tensor
    epistemic_sd: torch.Tensor
    mean_se: torch.Tensor
    num_samples: int

    @property
    def probs(self) -> torch.Tensor:
        """The predictive class probabilities (:attr:`mean`), for classification.

        Raises
        ------
        AttributeError
            For regression (use :attr:`mean`).
        """
        if self.task != "classification":
            raise AttributeError("probs is for classification; a regression has mean and sd")
        return self.mean

    def __repr__(self) -> str:
        shape = tuple(self.mean.shape)
        what = (
            f"{shape[0]} inputs x {shape[1]} classes"
            if self.task == "classification"
            else f"{shape[0]} inputs" + (f" x {shape[1]} outputs" if len(shape) > 1 else "")
        )
        return f"Prediction({self.task}; {what}; {self.num_samples} draws)"


class _ObservationModel(Messenger):
    r"""Record the distribution of the site ``obs`` without sampling it.

    The likelihood builds :math:`p(y \mid f)`; its value is not needed, and drawing one
    would move the random stream by a number of values that depends on the number of
    inputs, so the next guide draw, and every prediction, would depend on the batch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fn: Any = None

    def _pyro_sample(self, msg: Any) -> None:
        if msg["name"] == "obs":
            self.fn = msg["fn"]
            msg["value"] = torch.empty(0)  # any value: no draw is made
            msg["stop"] = True


def _conditional_moments(
    bnn: BayesianNetwork, out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Return what the likelihood predicts given the network output ``out`` of one draw.

    Classification: the class probabilities ``[N, K]`` and ``None``. Regression:
    :math:`E[y \mid f]` and :math:`\mathrm{Var}[y \mid f]`, from the observation
    distribution the likelihood builds (its ``mean`` and ``variance``), so any likelihood
    with those works.
    """
    with _ObservationModel() as recorder:
        bnn.likelihood(out)
    fn = recorder.fn
    if fn is None:
        raise TypeError(f"{type(bnn.likelihood).__name__} has no sample site 'obs'")
    if bnn.likelihood.task == "classification":
        probs = getattr(fn, "probs", None)
        if probs is None:
            raise TypeError(
                f"the observation distribution {type(fn).__name__} of a classification "
                "likelihood has no class probabilities (probs)"
            )
        if probs.dim() == out.dim() - 1:  # one output: the probability of class 1
            probs = torch.stack([1.0 - probs, probs], dim=-1)
        return probs, None
    return fn.mean, fn.variance


@torch.no_grad()
def predict(
    bnn: BayesianNetwork,
    X: Any,
    *,
    num_samples: int = 100,
    seed: int | None = 0,
    batch_size: int = 2000,
) -> Prediction:
    r"""Return the posterior predictive of ``bnn`` at inputs ``X``, by Monte Carlo over the guide.

    Each of ``num_samples`` draws from the guide is one network (all its latent sites
    drawn once, :func:`guide_traces`); it is run on every input, in batches of
    ``batch_size``, and the likelihood's prediction for it is averaged over the draws
    (module docstring). Works for every prior, the group priors included; a network
    restricted by :meth:`~pyrocompress.nn.BayesianNetwork.restrict` predicts with its
    removed groups at zero. The network runs in eval mode, on its device, and is put back
    in the mode it was in.

    What is included: the posterior uncertainty of every latent variable under the guide
    (gates, scales, weights, biases) and, for regression, the observation noise of the
    likelihood (the Gaussian likelihood's :math:`\sigma^2`, added to the variance over
    the draws); not the uncertainty of :math:`\sigma` itself (a point estimate), nor the
    gap between the guide and the exact posterior (check it with
    :func:`~pyrocompress.analysis.vi_diagnostics`).

    The same ``seed`` gives the same draws whatever the inputs, so an input's prediction
    does not depend on the other inputs or on ``batch_size`` (up to float rounding).

    Parameters
    ----------
    bnn
        The fitted network.
    X
        Inputs, a tensor or array (floats are converted to the dtype of the guide's
        parameters; integer inputs, the indices of an Embedding, are kept).
    num_samples
        Number of draws :math:`S`, at least 2; the Monte-Carlo error of the mean is
        :attr:`Prediction.mean_se`, about :math:`\mathrm{sd}/\sqrt S`.
    seed
        Seed of the draws; the caller's global random state is restored afterwards
        (:func:`pyrocompress.rng.seeded`). ``None`` draws from the caller's streams.
    batch_size
        Inputs per forward pass.

    Returns
    -------
    Prediction
        ``mean``, ``sd``, ``epistemic_sd`` and ``mean_se`` (see :class:`Prediction`).

    Raises
    ------
    TypeError
        If ``bnn`` is not a :class:`~pyrocompress.nn.BayesianNetwork`.
    ValueError
        If ``num_samples`` is below 2, ``batch_size`` is not a positive integer, or
        ``X`` is empty.

    Examples
    --------
    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(64, 3, generator=g)
    >>> bnn = pc.bayesianize(pc.mlp([3, 4, 2]), "group-horseshoe", seed=0)
    >>> _ = pc.fit(bnn, (X, (X[:, 0] > 0).long()), epochs=2, tol=None, progress=False)
    >>> pred = pc.predict(bnn, X[:5], num_samples=20)
    >>> pred
    Prediction(classification; 5 inputs x 2 classes; 20 draws)
    >>> tuple(pred.mean.shape), bool(torch.allclose(pred.mean.sum(-1), torch.ones(5)))
    ((5, 2), True)
    """
    if not isinstance(bnn, BayesianNetwork):
        raise TypeError(
            "predict expects the BayesianNetwork returned by pyrocompress.bayesianize, "
            f"got {type(bnn).__name__}"
        )
    check("num_samples", num_samples)
    if num_samples < 2:
        raise ValueError(
            f"num_samples must be at least 2 (a standard deviation needs two draws), "
            f"got {num_samples}"
        )
    check("batch_size", batch_size)
    if seed is not None:
        check("seed", seed)
    X = _as_inputs(bnn, X)
    if len(X) == 0:
        raise ValueError("X is empty; give at least one input to predict")
    device = bnn.device
    batches = [X[i : i + batch_size].to(device) for i in range(0, len(X), batch_size)]
    # running mean and sum of squared deviations per batch (Welford), and the noise variance
    mean: list[torch.Tensor] = []
    m2: list[torch.Tensor] = []
    noise: list[torch.Tensor] = []
    count = 0
    with contextlib.closing(guide_traces(bnn, num_samples, seed=seed)) as traces:
        for trace in traces:
            count += 1
            for b, xb in enumerate(batches):
                out = poutine.replay(bnn.net, trace=trace)(xb)
                value, variance = _conditional_moments(bnn, out)
                value = value.double()
                if count == 1:
                    mean.append(value.clone())
                    m2.append(torch.zeros_like(value))
                    if variance is not None:
                        noise.append(variance.double().expand_as(value).clone())
                    continue
                delta = value - mean[b]
                mean[b] += delta / count
                m2[b] += delta * (value - mean[b])
                if variance is not None:
                    noise[b] += variance.double().expand_as(value)
    predictive = torch.cat(mean).cpu()
    spread = torch.cat(m2).cpu() / (count - 1)
    epistemic = spread.sqrt()
    task = "classification" if bnn.likelihood.task == "classification" else "regression"
    total = (spread + torch.cat(noise).cpu() / count).sqrt() if noise else epistemic
    return Prediction(
        task=task,
        mean=predictive.float(),
        sd=total.float(),
        epistemic_sd=epistemic.float(),
        mean_se=(epistemic / count**0.5).float(),
        num_samples=count,
    )


def _as_inputs(bnn: BayesianNetwork, X: Any) -> torch.Tensor:
    """Return ``X`` as a tensor: floats in the dtype of the guide's parameters."""
    try:
        X = torch.as_tensor(X)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"X must be a tensor or an array of inputs, got {type(X).__name__}"
        ) from err
    if X.is_floating_point():
        X = X.to(next(bnn.guide.parameters()).dtype)
    if X.dim() == 0:
        raise ValueError("X must hold one input per row, got a scalar")
    return X
