"""Training: minibatch SVI with the mean-field ELBO, warm-up, schedules and a history."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from pyro.infer import TraceMeanField_ELBO
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from pyrocompress.constraints import check, first_line
from pyrocompress.data import Dataset, check_tensors
from pyrocompress.effects import ShardExamples
from pyrocompress.infer import distributed
from pyrocompress.infer.checkpoint import (
    CheckpointWriteError,
    atomic_save,
    check_checkpoint_target,
    remove_stale_temporaries,
    rng_state,
    rng_state_problem,
    safe_load,
    set_rng_state,
)
from pyrocompress.infer.distributed import World
from pyrocompress.infer.elbo import LocalReparamELBO, MomentELBO
from pyrocompress.nn import BayesianNetwork
from pyrocompress.rng import DEFAULT_THREADS, seeded_by, threads_by

__all__ = [
    "ConvergenceWarning",
    "FIT_MAX_STEPS",
    "FIT_TOL",
    "FIT_WINDOW_STEPS",
    "History",
    "fit",
    "fit_budget",
    "pretrain",
    "recalibrate_norms",
]

_SCHEDULES = ("constant", "cosine", "exponential")
_OBJECTIVES = ("elbo", "moments")

#: :func:`fit`'s default convergence tolerance (relative change of the mean epoch loss).
FIT_TOL = 1e-2
#: Optimisation steps that :func:`fit` takes at most when ``epochs`` is ``None``.
FIT_MAX_STEPS = 20_000
#: Optimisation steps in one window of the convergence test when ``window`` is ``None``.
FIT_WINDOW_STEPS = 300


class ConvergenceWarning(UserWarning):
    """:func:`fit` ended before its convergence test was met (the posterior may be poor).

    Examples
    --------
    Two epochs are too few for the convergence test (``tol``). Make the warning an error
    to stop a script there (or ``"ignore"`` it where a short fit is meant):

    >>> import warnings
    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", pc.ConvergenceWarning)
    ...     try:
    ...         _ = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=0.01, progress=False)
    ...     except pc.ConvergenceWarning as warning:
    ...         print(warning)  # doctest: +ELLIPSIS
    fit ended before the ELBO converged: ...
    """


def fit_budget(steps_per_epoch: int, kl_warmup: int = 0) -> tuple[int, int]:
    r"""Return the default maximum ``epochs`` and convergence ``window`` of :func:`fit`.

    With :math:`s` optimisation steps per epoch (``ceil(N / batch_size)``), the window
    holds :math:`W = \max(2, \lceil 300 / s \rceil)` epochs (``FIT_WINDOW_STEPS``
    steps: enough for the mean loss of a window to average out the Monte-Carlo noise of
    single steps) and the maximum number of epochs is
    :math:`\max(\lceil 20\,000 / s \rceil,\ k + 3W)` (``FIT_MAX_STEPS`` steps, but
    always room for ``kl_warmup`` = :math:`k` epochs, the test's two windows and the
    anneal after it). For scikit-learn's digits (1,222 rows, batches of 128) that is
    windows of 30 epochs and at most 2,000 epochs; for MNIST (60,000 rows) windows of
    2 epochs and at most 43.

    Examples
    --------
    >>> fit_budget(10)
    (2000, 30)
    >>> fit_budget(469)
    (43, 2)
    """
    steps = max(1, int(steps_per_epoch))
    window = max(2, math.ceil(FIT_WINDOW_STEPS / steps))
    epochs = max(math.ceil(FIT_MAX_STEPS / steps), int(kl_warmup) + 3 * window)
    return epochs, window


@dataclass
class History:
    """Per-epoch record of a :func:`fit` run.

    ``loss`` is the training objective per example, ``-ELBO / N`` with the KL weighted
    by ``kl_scale`` (averaged over the epoch's minibatches); ``val_metric`` is the
    validation error rate (classification) or RMSE (regression) of the posterior-mean
    network, NaN without validation data.

    ``converged_at`` is the epoch (1-based) at which :func:`fit`'s convergence test
    (``tol``) was met, ``None`` if it was not (or was off); ``stop_reason`` says in a
    sentence why training stopped: it starts with ``"converged"`` (the test was met; any
    learning-rate decay that followed is named), ``"maximum"`` (``tol`` was set but the
    epochs ran out first) or ``"epochs"`` (no test: the requested epochs ran).

    Examples
    --------
    Three epochs, the first two warming the KL term up, with validation data:

    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> history = pc.fit(
    ...     bnn, (X, y), epochs=3, batch_size=32, kl_warmup=2, validation=(X, y), tol=None,
    ...     progress=False,
    ... )
    >>> history.epoch, history.kl_scale, history.metric_name
    ([1, 2, 3], [0.5, 1.0, 1.0], 'error')
    >>> history.converged_at, history.stop_reason
    (None, 'epochs: ran the 3 epochs requested (no tol)')
    >>> all(0.0 <= e <= 1.0 for e in history.val_metric)  # validation error rates
    True
    >>> sorted(history.to_dict())  # doctest: +NORMALIZE_WHITESPACE
    ['converged_at', 'epoch', 'kl_scale', 'loss', 'lr', 'metric_name', 'seconds',
     'stop_reason', 'val_metric']
    """

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    kl_scale: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    metric_name: str = "error"
    converged_at: int | None = None
    stop_reason: str = ""

    def to_dict(self) -> dict:
        """Return the history as a plain dict of its fields (for checkpoints and JSON)."""
        return asdict(self)

    def record(
        self, loss: float, kl_scale: float, lr: float, val_metric: float, seconds: float
    ) -> None:
        """Append one epoch."""
        self.epoch.append(len(self.epoch) + 1)
        self.loss.append(loss)
        self.kl_scale.append(kl_scale)
        self.lr.append(lr)
        self.val_metric.append(val_metric)
        self.seconds.append(seconds)

    def __len__(self) -> int:
        return len(self.epoch)


def _as_xy(data, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, Dataset):
        return data.X, data.y
    if isinstance(data, tuple | list) and len(data) == 2:
        X, y = data
        try:
            X = X if isinstance(X, torch.Tensor) else torch.as_tensor(X)
            y = y if isinstance(y, torch.Tensor) else torch.as_tensor(y)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(
                f"{name}: X and y must be numeric arrays or tensors ({e}); convert them, "
                "e.g. with numpy's astype(float)"
            ) from None
        return X, y
    raise TypeError(f"{name} must be a pair (X, y) of tensors or a pyrocompress.data.Dataset")


def prepare_data(
    bnn: BayesianNetwork, data, name: str, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return validated float32 inputs and targets for ``bnn``, moved to ``device``.

    The tensors are left where they are if ``device`` is ``None``. A regression target of
    shape ``(N, 1)`` for a network with one output becomes ``(N,)``. Every error names
    ``name`` and the fix.

    Raises
    ------
    TypeError
        For non-numeric or complex inputs.
    ValueError
        For NaN or inf (in X, or in regression targets), mismatched lengths, no examples,
        labels outside ``[0, C)``, regression targets of a shape the network's outputs do
        not fit, or inputs whose shape the network cannot take.
    """
    X, y = _as_xy(data, name)
    if X.is_complex() or y.is_complex():
        raise TypeError(f"{name}: X and y must be real numbers, got {X.dtype} and {y.dtype}")
    if not X.is_floating_point():
        X = X.float()
    if bnn.likelihood.task == "classification":
        check_tensors(X, y, num_classes=bnn.likelihood.num_classes(_num_outputs(bnn)), name=name)
    else:
        last = list(bnn.bayesian_layers().values())[-1]
        # a Linear last layer has one output per unit; a Conv2d one has feature maps
        num_outputs = _num_outputs(bnn) if last.spec.kind == "linear" else None
        check_tensors(X, y, num_outputs=num_outputs, name=name)
        y = y.float()
        if num_outputs == 1 and y.ndim == 2:
            y = y.reshape(-1)  # (N, 1) against one output: y[i] is example i's target
    X = X.to(torch.float32)
    if X.ndim < 2:
        raise ValueError(
            f"{name}: X must have one row per example, shape (N, features) or (N, C, H, W); "
            f"got shape {tuple(X.shape)} (a single feature is X.reshape(-1, 1))"
        )
    _check_input_shape(bnn, X, name)
    return (X, y) if device is None else (X.to(device), y.to(device))


def _check_input_shape(bnn: BayesianNetwork, X: torch.Tensor, name: str) -> None:
    """Pass one example through the posterior-mean network to check the input shape.

    A shape it cannot take is a ValueError about the data, not an error deep in a matrix
    product.
    """
    device = bnn.device
    was_training = bnn.training
    bnn.eval()  # a norm must neither see a batch of one nor update its statistics
    try:
        with torch.no_grad(), bnn.point_estimate():
            out = bnn.net(X[:1].to(device))
    except (RuntimeError, IndexError, ValueError) as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(
            f"{name}: inputs of shape {tuple(X.shape[1:])} per example do not fit the network "
            f"({first}); give X the per-example shape of the data the network was built for"
        ) from None
    finally:
        bnn.train(was_training)
    if out.dim() != 2 or out.shape[0] != 1:  # e.g. a Linear layer broadcast over extra axes
        raise ValueError(
            f"{name}: inputs of shape {tuple(X.shape[1:])} per example give one example an "
            f"output of shape {tuple(out.shape)}, not one row of outputs (1, K); give X the "
            "per-example shape of the data the network was built for (flatten images for "
            "an MLP)"
        )


#: Share of the free accelerator memory a training set may take to be kept there whole.
_RESIDENT_SHARE = 0.5


class _Minibatches:
    """The training set of one run, drawn in shuffled minibatches without replacement.

    The data stay in memory as tensors (no DataLoader, no worker processes). On the CPU, and
    on a GPU when they take at most half its free memory, they are moved to the device once
    and every minibatch is an index into them. A larger set stays in host memory: each
    minibatch is gathered into pinned (page-locked) memory and copied with
    ``non_blocking=True``, so that the copy overlaps the previous step's kernels; PyTorch's
    caching host allocator keeps a pinned block alive until its copy has finished.

    With a ``seed``, the order of an epoch is that of a
    :class:`~torch.utils.data.DistributedSampler` (a function of the seed and the epoch,
    :meth:`set_epoch`), and in a data-parallel run this rank gets its share
    (``rank::size`` of the permutation, padded to equal shares); without one, the
    permutation comes from torch's global generator.
    """

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        device: torch.device,
        batch_size: int,
        *,
        world: World | None = None,
        seed: int | None = None,
        no_single: bool = False,
    ):
        self.n = X.shape[0]
        self.world = world or World()
        self.sampler = None
        if seed is not None or self.world.active:
            self.sampler = DistributedSampler(
                cast(Any, range(self.n)),  # a sampler needs only len() of its data set
                num_replicas=self.world.size,
                rank=self.world.rank,
                shuffle=True,
                seed=0 if seed is None else seed,
            )
        local = self.n if self.sampler is None else self.sampler.num_samples
        self.batch_size = min(batch_size, local)
        self.steps = math.ceil(local / self.batch_size)
        if no_single and self.steps > 1 and local % self.batch_size == 1:
            # a batch of one example has no batch statistics for a norm: its example
            # (a different one each epoch, by the shuffle) waits for the next epoch
            self.steps -= 1
        self.device = device
        self.resident = device.type != "cuda" or _fits(X.nbytes + y.nbytes, device)
        if self.resident:
            self.X, self.y = X.to(device), y.to(device)
        else:
            self.X, self.y = X.cpu(), y.cpu()

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle of ``epoch`` (with a seed; see the class docstring)."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        """One epoch of ``(x, y, indices)`` on the device."""
        home = self.device if self.resident else torch.device("cpu")
        if self.sampler is None:
            perm = torch.randperm(self.n, device=home)
        else:
            perm = _sampler_order(self.sampler).to(home)
        for i in range(self.steps):
            idx = perm[i * self.batch_size : (i + 1) * self.batch_size]
            if self.resident:
                yield self.X[idx], self.y[idx], idx
                continue
            xb = torch.empty((len(idx), *self.X.shape[1:]), dtype=self.X.dtype, pin_memory=True)
            yb = torch.empty((len(idx), *self.y.shape[1:]), dtype=self.y.dtype, pin_memory=True)
            torch.index_select(self.X, 0, idx, out=xb)
            torch.index_select(self.y, 0, idx, out=yb)
            yield (
                xb.to(self.device, non_blocking=True),
                yb.to(self.device, non_blocking=True),
                idx.pin_memory().to(self.device, non_blocking=True),
            )


def _sampler_order(sampler: DistributedSampler) -> torch.Tensor:
    """Return the indices ``list(sampler)`` gives for its epoch, as a tensor.

    The same permutation (:class:`~torch.utils.data.DistributedSampler` with
    ``shuffle=True, drop_last=False``: a ``randperm`` seeded by ``seed + epoch``, padded
    by its own head to ``total_size``, then ``rank::num_replicas``), made without the
    Python list of one integer per example, which costs more than a small full-batch step.
    """
    g = torch.Generator()
    g.manual_seed(sampler.seed + sampler.epoch)
    n = len(cast(Any, sampler.dataset))
    perm = torch.randperm(n, generator=g)
    pad = sampler.total_size - n
    if pad > 0:
        perm = torch.cat([perm, perm.repeat(math.ceil(pad / n))[:pad]])
    return perm[sampler.rank : sampler.total_size : sampler.num_replicas]


def _fits(nbytes: int, device: torch.device) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= _RESIDENT_SHARE * free


def _num_outputs(bnn: BayesianNetwork) -> int:
    last = list(bnn.bayesian_layers().values())[-1]
    return last.spec.weight_shape[0]


def evaluate(bnn: BayesianNetwork, data, *, batch_size: int = 1000) -> float:
    """Error rate (classification) or RMSE (regression) of the posterior-mean network.

    Examples
    --------
    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
    >>> error = pc.evaluate(bnn, (X, y))
    >>> error == (bnn.predict_point(X).argmax(-1) != y).float().mean().item()
    True

    For regression (``likelihood="gaussian"``) it is the RMSE:

    >>> reg = pc.bayesianize(pc.mlp([4, 1]), "gaussian", likelihood="gaussian", seed=0)
    >>> rmse = pc.evaluate(reg, (X, X[:, 0]))
    >>> expected = (reg.predict_point(X).squeeze(-1) - X[:, 0]).pow(2).mean().sqrt()
    >>> abs(rmse - expected.item()) < 1e-6
    True
    """
    device = bnn.device
    X, y = prepare_data(bnn, data, "data", device)
    return bnn.point_error(X, y, batch_size=batch_size)


@dataclass(frozen=True)
class ElboEstimate:
    """A Monte-Carlo estimate of the ELBO per example, in nats (:func:`elbo_estimate`)."""

    #: the estimate, :math:`\hat{\mathcal L} / N`
    mean: float
    #: its Monte-Carlo standard error
    se: float
    #: the number of examples :math:`N`
    n: int
    #: the number of draws averaged
    num_particles: int


@seeded_by("seed")
def elbo_estimate(
    bnn: BayesianNetwork,
    data,
    *,
    num_particles: int = 100,
    batch_size: int = 4096,
    seed: int | None = 0,
) -> ElboEstimate:
    r"""Estimate the evidence lower bound of the fitted posterior, per example.

    .. math::

        \mathcal L(q) = \mathbb E_q\big[\log p(y \mid X, w)\big]
        - \mathrm{KL}\big(q(w) \,\|\, p(w)\big) \;\le\; \log p(y \mid X),

    at full KL weight, averaged over ``num_particles`` draws and divided by the number of
    examples :math:`N`: an unbiased estimate of the objective :func:`fit` maximises
    (:class:`~pyrocompress.infer.LocalReparamELBO`, which draws the pre-activations of each
    example from their exact Gaussian marginals, :cite:t:`kingma2015variational`; the
    network in evaluation mode). That objective is the ELBO above wherever its terms are
    exact, and the library's approximation of it elsewhere: the group normal-Jeffreys KL
    is :cite:t:`molchanov2017variational`'s fit; spike-and-slab layers with
    ``estimator="moments"`` (the default) replace the gated weights by moment-matched
    Gaussians; norms use the running statistics of the posterior-mean network
    (:func:`recalibrate_norms`), not the batch statistics of training. Fits of the same
    model to the same data compare by it: by
    :math:`\log p(y \mid X) = \mathcal L(q) + \mathrm{KL}(q \,\|\, p(w \mid y, X))`,
    the higher ELBO is the fit closer to the posterior in KL divergence
    (:cite:t:`blei2017variational{§2.2}`), which is how
    :class:`~pyrocompress.FeatureSelector` picks among its ``n_init`` initialisations.

    Parameters
    ----------
    bnn
        The fitted network.
    data
        ``(X, y)`` tensors or a :class:`~pyrocompress.data.Dataset`, as for :func:`fit`.
    num_particles
        Draws averaged, at least 2 (the standard error needs two).
    batch_size
        With more examples than this, each draw reads a random minibatch of this size,
        scaled to :math:`N` (still unbiased; the standard error then includes the
        subsampling).
    seed
        Seeds the draws; the caller's random state is left as it was. ``None`` draws from
        the global generators.

    Returns
    -------
    ElboEstimate
        ``mean`` and ``se`` per example, in nats; ``n``; ``num_particles``.

    Examples
    --------
    >>> import torch, pyrocompress as pc
    >>> from pyrocompress.infer import elbo_estimate
    >>> g = torch.Generator().manual_seed(0)
    >>> X, y = torch.randn(64, 3, generator=g), torch.randint(0, 2, (64,), generator=g)
    >>> bnn = pc.bayesianize(pc.mlp([3, 8, 2]), "group-horseshoe", seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=5, tol=None, progress=False)
    >>> est = elbo_estimate(bnn, (X, y), num_particles=20)
    >>> est.n, est.num_particles, est.mean < 0 < est.se
    (64, 20, True)
    """
    num_particles = int(check("num_particles", num_particles))
    batch_size = int(check("batch_size", batch_size))
    X, y = prepare_data(bnn, data, "data", bnn.device)
    n = len(y)
    elbo = LocalReparamELBO()
    values = []
    was_training = bnn.training
    bnn.eval()
    try:
        with torch.no_grad():
            for _ in range(num_particles):
                index = (
                    torch.arange(n, device=X.device)
                    if n <= batch_size
                    else torch.randperm(n, device=X.device)[:batch_size]
                )
                loss = elbo.differentiable_loss(
                    bnn, bnn.guide, X[index], y[index],
                    dataset_size=n, subsample=index, kl_scale=1.0,
                )  # fmt: skip
                values.append(-float(loss) / n)
    finally:
        bnn.train(was_training)
    v = torch.tensor(values, dtype=torch.float64)
    return ElboEstimate(
        float(v.mean()), float(v.std() / math.sqrt(num_particles)), n, num_particles
    )


@torch.no_grad()
def recalibrate_norms(
    bnn: BayesianNetwork, X: torch.Tensor, *, max_examples: int = 4096, batch_size: int = 256
) -> bool:
    r"""Recompute the running statistics of the network's norms for its posterior mean.

    Under the local reparametrisation a norm's running statistics are those of *sampled*
    pre-activations, whose variance includes the weights' posterior variance; the
    posterior-mean network — the one that is evaluated, pruned and exported — has less,
    so its normalised outputs would shrink (the variance shift of dropout before
    BatchNorm, :cite:p:`li2019understanding`). As for stochastic weight averaging
    :cite:p:`izmailov2018averaging{§3.2}`, the statistics are recomputed as plain averages over up
    to ``max_examples`` training inputs through the posterior-mean network. :func:`fit` calls it at
    the end of training; a network without norms is left as it is.

    Parameters
    ----------
    bnn
        The network.
    X
        Training inputs.
    max_examples
        Largest number of inputs used (a uniform random subset beyond it).
    batch_size
        Inputs per forward pass.

    Returns
    -------
    bool
        Whether the network has norms (and they were recalibrated).
    """
    norms = [
        m
        for m in bnn.net.modules()  # the norms attached to layers are among them
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    if not norms:
        return False
    was_training = bnn.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
    bnn.eval()
    for m in norms:
        m.train()
    try:
        if len(X) > max_examples:  # a uniform subset, from a local generator
            gen = torch.Generator().manual_seed(0)
            X = X[torch.randperm(len(X), generator=gen)[:max_examples]]
        # equal batches, so that the cumulative average weighs every example alike
        size = min(batch_size, len(X))
        with bnn.point_estimate():
            for xb in X[: len(X) - len(X) % size].split(size):
                if len(xb) > 1:
                    bnn.net(xb.to(bnn.device))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        bnn.train(was_training)
    return True


def _check_common(caller: str, bnn: BayesianNetwork, epochs, batch_size, lr) -> None:
    if not isinstance(bnn, BayesianNetwork):
        raise TypeError(
            f"{caller} expects the BayesianNetwork returned by pyrocompress.bayesianize"
        )
    check("epochs", epochs)
    check("batch_size", batch_size)
    check("lr", lr)


def _adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused (single-kernel) update where torch has one for the parameters."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.Adam(params, lr=lr)


def _check_global_batch(batch_size: int, world: World) -> None:
    """In a data-parallel run ``batch_size`` is split evenly between the processes."""
    if batch_size % world.size:
        raise ValueError(
            f"batch_size={batch_size} is the global minibatch of {world.size} processes; "
            f"give a multiple of {world.size}"
        )


def _average_gradients(params: Sequence[torch.Tensor], world: World) -> None:
    """Average the gradients of ``params`` over the processes (a missing one counts as 0)."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad.div_(world.size)


def _check_finite_parameters(bnn: BayesianNetwork, epoch: int, lr: float) -> None:
    """Raise :class:`FloatingPointError` if a parameter of ``bnn`` is NaN or inf.

    The last optimiser step of a run can break the parameters without the loss, computed
    before it, showing it.
    """
    named = list(bnn.named_parameters())
    if not named or bool(torch.stack([torch.isfinite(p).all() for _, p in named]).all()):
        return
    bad = [name for name, p in named if not bool(torch.isfinite(p).all())]
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    raise FloatingPointError(
        f"the parameter{'s' if len(bad) > 1 else ''} {shown} became NaN or inf at epoch "
        f"{epoch}; training stopped. "
        f"Lower the learning rate (lr={lr}), use KL warm-up (kl_warmup) or a less "
        f"extreme prior setting ({_prior_text(bnn)})"
    )


def _check_device(device) -> torch.device:
    """Return ``device`` as a CPU or CUDA :class:`torch.device`, or raise a ValueError."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as e:  # torch lists every backend it was built for
        raise ValueError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or a torch.device; got {device!r}"
        ) from e
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda' (or 'cuda:N'); got {device!r}")
    return parsed


def _setup(bnn: BayesianNetwork, device) -> torch.device:
    """Move ``bnn`` to ``device`` (the caller runs under :func:`~pyrocompress.rng.seeded`)."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use 'cpu'")
    bnn.to(device)
    return device


def _prior_text(bnn: BayesianNetwork) -> str:
    """Return the priors of ``bnn`` for messages and checkpoint configs."""
    distinct = bnn.distinct_priors()
    return repr(distinct[0]) if len(distinct) == 1 else repr(bnn.priors)


@seeded_by("seed")
@threads_by("threads")
def pretrain(
    bnn: BayesianNetwork,
    data,
    *,
    group_penalty: float = 1.5e-3,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 0.01,
    seed: int | None = 0,
    device: str | torch.device = "cpu",
    threads: int | None = DEFAULT_THREADS,
) -> History:
    r"""Move the guide's means to a group-lasso point estimate before SVI.

    Trains the posterior-mean network :math:`\bar W = E[g]\,\mu` of ``bnn`` (gates and
    variances held at their initial values; only the weight and bias means
    :math:`\mu` move) by Adam on

    .. math::
        \frac{1}{N}\sum_i -\log p(y_i \mid f_{\bar W}(x_i))
        + \lambda \sum_{j} \lVert \bar W^{(1)}_{\cdot j} \rVert_2 ,

    the group lasso :cite:p:`yuan2006model` over the groups of the first layer — one per input
    feature for a Linear first layer :cite:p:`scardapane2017group`. The negative log-likelihood is
    the likelihood's :meth:`~pyrocompress.distributions.Likelihood.point_loss` (half the squared
    error for regression, so :math:`\lambda` is meant for a standardised target).

    Why: in a wide network most inputs are nulls, and at the usual :math:`1/\sqrt{\text{fan-in}}`
    initialisation an input that acts only through an interaction or a curvature (the
    :math:`x_1` of :cite:t:`bai2020efficient`, entering through :math:`x_2/(1+x_1^2)`) sits
    at a saddle whose escape direction is second order; SVI's Occam pressure switches its
    gate off together with the nulls before it is learned. The group penalty shrinks the
    nulls first, which frees the network to pick up the weak signal; SVI then starts from
    those means (``benchmarks/selection/selection_bai.py`` measures the effect).

    Parameters
    ----------
    bnn
        The network from :func:`~pyrocompress.bayesianize`; its guide is changed in place.
    data
        ``(X, y)`` tensors or a :class:`~pyrocompress.data.Dataset`.
    group_penalty
        :math:`\lambda \ge 0`; 0 is plain maximum likelihood of the mean network.
    epochs, batch_size, lr
        Passes over the data, minibatch size, Adam learning rate (constant).
    seed, device
        As in :func:`fit`, data-parallel runs under ``torchrun`` included: the minibatch
        order is that of a seeded :class:`~torch.utils.data.DistributedSampler`, each process
        takes its share of every global minibatch, and the gradients of the means are
        averaged over the processes, so the run takes the steps of one process.
    threads
        As in :func:`fit`.

    Returns
    -------
    History
        Per-epoch penalised objective in ``loss`` (``kl_scale`` is 0: no KL is involved).

    Examples
    --------
    Pre-train the means, then run SVI from them:

    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-horseshoe", seed=0)
    >>> before = bnn.predict_point(X)
    >>> history = pc.pretrain(bnn, (X, y), group_penalty=1e-2, epochs=2, batch_size=32)
    >>> history.epoch, history.kl_scale
    ([1, 2], [0.0, 0.0])
    >>> torch.equal(bnn.predict_point(X), before)  # the means moved
    False
    >>> history = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
    >>> len(history)
    2
    """
    _check_common("pretrain", bnn, epochs, batch_size, lr)
    check("group_penalty", group_penalty)
    world, device = distributed.setup(_check_device(device))
    _check_global_batch(batch_size, world)
    device = _setup(bnn, device)
    X, y = prepare_data(bnn, data, "data")
    sampler_seed = _shared_seed(seed, world, device)
    normed = any(layer.norm is not None for layer in bnn.bayesian_layers().values())
    batches = _Minibatches(
        X, y, device, batch_size // world.size, world=world, seed=sampler_seed, no_single=normed
    )
    means = bnn.guide.parameters_with_role("weight_loc")
    if world.active:  # every rank starts from rank 0's means, as DistributedDataParallel does
        for p in means:
            dist.broadcast(p.data, src=0)
    optimizer = _adam(means, lr)
    first_name, first = next(iter(bnn.bayesian_layers().items()))
    history = History(metric_name=bnn.likelihood.metric_name)
    bnn.train()
    for epoch in range(epochs):
        start = time.perf_counter()
        batches.set_epoch(epoch)
        total = torch.zeros((), device=device)
        count = 0
        for xb, yb, idx in batches:
            with bnn.point_estimate(differentiable=True):
                out = bnn.net(xb)
            loss = bnn.likelihood.point_loss(out, yb)
            if group_penalty:
                w = first.point_weights(bnn.guide[first_name])[0]
                norms = first.spec.group_sum(w.square()).clamp_min(1e-24).sqrt()
                loss = loss + group_penalty * norms.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if world.active:
                _average_gradients(means, world)
            optimizer.step()
            total = total + loss.detach() * len(idx)
            count += len(idx)
        if world.active:
            dist.all_reduce(total)
            count *= world.size
        epoch_loss = (total / count).item()
        if not math.isfinite(epoch_loss):
            raise FloatingPointError(
                f"the pre-training loss became {epoch_loss} at epoch {epoch + 1}; lower the "
                f"learning rate (lr={lr})"
            )
        history.record(epoch_loss, 0.0, lr, float("nan"), time.perf_counter() - start)
    bnn.zero_grad(set_to_none=True)
    bnn.eval()
    return history


def _check_fit_args(
    bnn: BayesianNetwork,
    epochs,
    batch_size,
    lr,
    lr_schedule,
    kl_warmup,
    objective,
    local_reparam,
    tol=None,
    window: int | None = None,
) -> None:
    """Validate :func:`fit`'s arguments before anything is read or trained."""
    _check_common("fit", bnn, 1 if epochs is None else epochs, batch_size, lr)
    check("tol", tol)
    if window is not None:
        check("convergence_window", window, label="window")
    if lr_schedule not in _SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {_SCHEDULES}, got {lr_schedule!r}")
    check("kl_warmup", kl_warmup)
    needs_lrt = [p for p in bnn.distinct_priors() if p.needs_local_reparam]
    if needs_lrt and not local_reparam:
        raise ValueError(
            f"the {needs_lrt[0].key!r} prior needs local_reparam=True: its inclusion gates "
            "are marginalised in the locally reparametrised pre-activations"
        )
    if objective not in _OBJECTIVES:
        raise ValueError(f"objective must be one of {_OBJECTIVES}, got {objective!r}")
    if objective == "moments" and not all(p.supports_moments for p in bnn.distinct_priors()):
        raise ValueError(
            f"objective='moments' propagates the moments of independent Gaussian weights: "
            f"use the 'gaussian' prior (this network has {_prior_text(bnn)}), or "
            "objective='elbo'"
        )
    normed = [n for n, layer in bnn.bayesian_layers().items() if layer.norm is not None]
    if objective == "moments" and normed:
        raise ValueError(
            f"objective='moments' propagates moments through each norm's running statistics, "
            f"which it cannot learn; the layers {normed} have a BatchNorm after them: use "
            "objective='elbo'"
        )


@seeded_by("seed")
@threads_by("threads")
def fit(
    bnn: BayesianNetwork,
    data,
    *,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-2,
    lr_schedule: str = "cosine",
    kl_warmup: int = 0,
    validation=None,
    seed: int | None = 0,
    device: str | torch.device = "cpu",
    local_reparam: bool = True,
    max_weight_variance: Mapping[str, float] | None = None,
    objective: str = "elbo",
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite_checkpoint: bool = False,
    progress: bool = True,
    tol: float | None = FIT_TOL,
    window: int | None = None,
    threads: int | None = DEFAULT_THREADS,
) -> History:
    r"""Fit the guide of ``bnn`` by stochastic variational inference.

    Minibatches are drawn without replacement each epoch; the likelihood of a minibatch
    is scaled by ``N / batch`` through ``pyro.plate`` subsampling, and the loss is the
    mean-field ELBO with an analytic KL for every latent site — with the local
    reparametrisation, :class:`~pyrocompress.infer.LocalReparamELBO` (the value and
    gradients of :class:`~pyro.infer.TraceMeanField_ELBO` on the same programs, without
    its unused work); without it, :class:`~pyro.infer.TraceMeanField_ELBO` itself —
    divided by ``N`` and minimised with Adam (the fused kernel) on the module-local
    parameters of the model and guide. After each step the guide's log-variances are
    projected into ``priors.LOG_VAR_RANGE``, or below the caps of ``max_weight_variance``
    (the variance clipping of :cite:t:`louizos2017bayesian`).

    The data stay in memory as tensors, with no DataLoader: on the device when they fit
    (on a GPU, at most half its free memory), else in host memory with each minibatch
    gathered into pinned memory and copied asynchronously. Nothing in the loop waits for
    the device except the loss read once per epoch. The order of the minibatches is that of
    a seeded :class:`~torch.utils.data.DistributedSampler`, a function of the seed and the
    epoch.

    Parameters
    ----------
    bnn
        The network from :func:`~pyrocompress.bayesianize`.
    data
        ``(X, y)`` tensors or a :class:`~pyrocompress.data.Dataset`.
    epochs
        The largest number of passes over the data; training stops earlier when the ELBO
        has converged (``tol``). ``None`` (the default): a budget that follows the data,
        about 20,000 optimisation steps (:func:`fit_budget`).
    batch_size
        Minibatch size.
    lr
        Adam's learning rate. The default 0.01 is the rate the demo, the notebooks and the
        MNIST studies train with; at 0.001 the quickstart's 50 epochs leave every
        inclusion probability near 1.
    lr_schedule
        ``"constant"``, ``"cosine"`` (annealed to 1 % of ``lr``, the default) or
        ``"exponential"`` (likewise, geometrically): with ``tol``, over the ``window``
        epochs after the convergence test was met (see *Convergence*); with
        ``tol=None``, over all ``epochs``.
    kl_warmup
        Number of epochs over which the weight :math:`\beta` of the KL terms rises
        linearly from 0 to 1 :cite:p:`sonderby2016ladder`; 0 switches warm-up off.
    validation
        Optional ``(X, y)``; its error (or RMSE) of the posterior-mean network is shown
        in the progress bar and recorded each epoch.
    seed
        Seeds torch, numpy and Python's RNGs for the run and restores the caller's
        states afterwards (:func:`pyrocompress.rng.seeded`); ``None`` leaves
        them alone.
    device
        ``"cpu"`` or ``"cuda"``; the network (and the data, see above) are moved there.
    local_reparam
        Sample pre-activations (and per-example group gates) instead of one weight draw
        per minibatch :cite:p:`kingma2015variational`. Required by the spike-and-slab prior.
    max_weight_variance
        Layer name (a key of ``bnn.bayesian_layers()``) -> largest variance of that layer's
        weights and biases in the guide. The code of :cite:t:`louizos2017bayesian` caps the first
        layer of LeNet-300-100 at 0.04, ``{"1": 0.04}`` here; by default only
        ``priors.LOG_VAR_RANGE`` applies.
    objective
        ``"elbo"`` (default): the ELBO with a sampled log-likelihood, as above.
        ``"moments"``: the same ELBO with the expected log-likelihood in closed form from
        propagated means and variances (the deterministic variational inference of
        :cite:t:`wu2019deterministic`; :class:`~pyrocompress.infer.MomentELBO`); no random numbers,
        so no Monte Carlo variance in the gradient. Needs the Gaussian prior.
    checkpoint_dir
        Folder for ``checkpoint.pt``: network (model and guide), optimiser, scheduler,
        random-number generators, epoch and history, written atomically at the end of every
        epoch (by rank 0 in a data-parallel run). Read back with ``weights_only=True``, and
        its whole structure is checked before any of it is used. A run starting in the
        folder removes the temporary files that a killed write left there
        (``.checkpoint.pt.*.tmp``); a write that fails (a full disk) raises
        :class:`~pyrocompress.infer.checkpoint.CheckpointWriteError` and keeps the
        previous checkpoint.
    resume
        Continue from the checkpoint in ``checkpoint_dir`` (the settings above must be those
        of the run that wrote it); the resumed run takes exactly the steps the uninterrupted
        one would have (same minibatches, same noise). Without a checkpoint there, training
        starts from the beginning.
    overwrite_checkpoint
        Start afresh and replace the checkpoint already in ``checkpoint_dir``. Without it
        (or ``resume``), a checkpoint there is refused with a :class:`ValueError` before
        training starts, so that another run's work is never overwritten silently.
    progress
        Show a tqdm progress bar with the loss and the validation metric.
    tol
        Stop when the ELBO has converged to this relative tolerance (default 0.01; see
        *Convergence* below); ``epochs`` is the maximum. A run that reaches ``epochs``
        first warns with a :class:`ConvergenceWarning` that says what to change.
        ``None``: run all ``epochs`` under ``lr_schedule``, no test and no warning.
    window
        :math:`W`, the length in epochs of the windows the convergence test compares
        (an integer >= 2). ``None`` (default): about 300 optimisation steps
        (:func:`fit_budget`), but at most a third of the ``epochs`` given after the KL
        warm-up, so that the test and the anneal fit in them.
    threads
        torch intra-op threads during the fit, the caller's number restored after
        (default 1, the library's policy: :func:`pyrocompress.rng.intra_op_threads` says
        why and when to give more); ``None`` leaves torch's setting alone.

    Notes
    -----
    **Convergence.** With ``tol`` set, after every :math:`W` epochs at full KL weight
    (warm-up epochs are never in a window) the mean epoch loss of the last :math:`W`
    epochs, :math:`\bar L_2`, is compared with that of the :math:`W` before,
    :math:`\bar L_1`. The ELBO has converged when

    .. math::
        |\bar L_1 - \bar L_2| + 2\,\mathrm{se} \le \mathrm{tol}\,|\bar L_2|,
        \qquad \mathrm{se} = \hat\sigma \sqrt{2 / W},
        \quad \hat\sigma^2 = \frac{1}{2(2W - 1)} \sum_t (L_t - L_{t-1})^2,

    over the :math:`2W` epochs: the relative change of the window means is below ``tol``
    even at the upper end of its approximate 95 % interval. Why windows and a standard
    error: one epoch's loss carries the Monte-Carlo noise of the sampled
    log-likelihood (with one step per epoch, that of a single draw), so two single epochs
    can agree, or differ, by chance; averaging over :math:`W` epochs divides the noise
    variance by :math:`W`, and adding two standard errors of the difference makes the test
    conservative — noise can delay the stop (until :math:`W` is long enough for
    :math:`2\,\mathrm{se} < \mathrm{tol}\,|\bar L_2|`), not trigger it. The noise
    :math:`\hat\sigma` comes from successive differences, which cancel the slow trend
    of the loss (a trend of :math:`\delta` per epoch adds only :math:`\delta^2/2`).

    The learning rate is constant until the test is met: a plateau of the loss under a
    decaying learning rate is partly the decay's doing (its smaller steps lower the loss
    by themselves), whereas under a constant rate it is the optimiser's stationary state.
    Then ``lr_schedule`` is applied over :math:`W` more epochs — ``"cosine"`` or
    ``"exponential"`` down to 1 % of ``lr`` (a short anneal that takes the parameters
    from the stationary jitter of a constant step to its centre) — and training stops;
    with ``"constant"`` it stops at once. Without convergence the anneal takes the last
    :math:`W` of ``epochs``. :attr:`History.converged_at` and
    :attr:`History.stop_reason` record what happened. The test needs the epoch losses,
    which are read from the device every few epochs, not after every step. In a
    data-parallel run the epoch loss is averaged over the processes (the same number on
    each) and rank 0's decision is broadcast, so all processes stop together.

    **Data-parallel training.** Under ``torchrun --nproc_per_node K`` (``WORLD_SIZE > 1``
    in the environment) every process runs this function: it joins the process group
    (gloo on the CPU, nccl on GPUs, one per local rank), takes ``batch_size / K`` examples
    of each global minibatch, and the gradients are averaged by
    :class:`~torch.nn.parallel.DistributedDataParallel`. With the same ``seed`` the run
    takes the same steps as one process with the same (global) ``batch_size``; see
    :mod:`pyrocompress.infer.distributed`. Only rank 0 computes the validation metric (NaN in the
    other ranks' histories), shows progress and writes checkpoints.

    Returns
    -------
    History
        Per-epoch loss, KL weight, learning rate, validation metric and wall time, and
        why training stopped.

    Raises
    ------
    FloatingPointError
        If the loss of an epoch, or a parameter after the last step, is NaN or inf.

    Examples
    --------
    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-horseshoe", seed=0)
    >>> history = pc.fit(bnn, (X, y), epochs=3, batch_size=32, tol=None, progress=False)
    >>> len(history), history.metric_name
    (3, 'error')
    """
    _check_fit_args(
        bnn, epochs, batch_size, lr, lr_schedule, kl_warmup, objective, local_reparam, tol, window
    )
    ckpt_path = _checkpoint_path(checkpoint_dir, resume, overwrite_checkpoint)
    world, device = distributed.setup(_check_device(device))
    _check_global_batch(batch_size, world)
    device = _setup(bnn, device)
    X, y = prepare_data(bnn, data, "data")
    val = prepare_data(bnn, validation, "validation", device) if validation is not None else None
    log_vars = bnn.guide.log_var_bounds(max_weight_variance)
    sampler_seed = _shared_seed(seed, world, device)
    normed = any(layer.norm is not None for layer in bnn.bayesian_layers().values())
    batches = _Minibatches(
        X, y, device, batch_size // world.size, world=world, seed=sampler_seed, no_single=normed
    )
    n, steps_per_epoch = batches.n, batches.steps
    auto_epochs, auto_window = fit_budget(steps_per_epoch, kl_warmup)
    if window is None and epochs is not None:  # room for the test within the epochs given
        auto_window = min(auto_window, max(2, (int(epochs) - kl_warmup) // 3))
    epochs = auto_epochs if epochs is None else int(epochs)
    window = auto_window if window is None else int(window)
    total_steps = epochs * steps_per_epoch

    optimizer = _adam(bnn.parameters(), lr)
    bnn.guide.clamp_log_var_(log_vars)
    stop = _Stop(tol, window, epochs, kl_warmup, lr_schedule, steps_per_epoch)
    scheduler = (
        _scheduler(optimizer, lr_schedule, total_steps, lr)
        if tol is None or lr_schedule == "constant"  # constant: no scheduler either way
        else torch.optim.lr_scheduler.LambdaLR(optimizer, stop.anneal)
    )
    config = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": float(lr),
        "lr_schedule": lr_schedule,
        "kl_warmup": kl_warmup,
        "local_reparam": bool(local_reparam),
        "objective": objective,
        "max_weight_variance": dict(max_weight_variance) if max_weight_variance else None,
        "sampler_seed": sampler_seed,
        "prior": _prior_text(bnn),
        "guide": bnn.guide.weights,
        "likelihood": repr(bnn.likelihood),
        "tol": None if tol is None else float(tol),
        "window": int(window) if tol is not None else None,
    }
    history = History(metric_name=bnn.likelihood.metric_name)
    first_epoch, step = 0, 0
    if resume and ckpt_path is not None and ckpt_path.exists():
        first_epoch, step, history = _restore(
            ckpt_path, config, bnn, optimizer, scheduler, steps_per_epoch
        )
        if batches.sampler is not None:  # always, since sampler_seed is set
            batches.sampler.seed = config["sampler_seed"]  # the order of the run that saved it
    loss_fn = _ELBOLoss(bnn, _elbo(objective, local_reparam))
    step_fn = (
        DistributedDataParallel(
            loss_fn, device_ids=[device.index] if device.type == "cuda" else None
        )
        if world.active
        else loss_fn
    )
    # refresh often on a terminal or in a notebook, rarely in a log file
    interactive = getattr(sys.stderr, "isatty", lambda: False)() or "ipykernel" in sys.modules
    show = progress and world.is_main
    bar = tqdm(
        initial=first_epoch,
        total=epochs,
        disable=not show,
        desc="SVI",
        unit="epoch",
        mininterval=0.1 if interactive else 30.0,
    )
    run = _Run(step_fn, optimizer, scheduler, bnn, log_vars, n, kl_warmup, steps_per_epoch)
    # the epoch losses stay on the device and are read together every `read_every` epochs
    # (one synchronisation per about 16 steps); every epoch when a checkpoint or the
    # validation metric needs them
    read_every = 1 if ckpt_path is not None or val is not None else max(1, 16 // steps_per_epoch)
    records = _Records(history, bar if show else None, read_every, lr, _prior_text(bnn))

    def save(epoch: int, step: int) -> None:
        if ckpt_path is not None and world.is_main:
            _save_checkpoint(ckpt_path, epoch, step, config, bnn, optimizer, scheduler, history)

    with ShardExamples(world.rank, world.size) if world.active else contextlib.nullcontext():
        _loop(run, batches, stop, records, first_epoch, step, world, device, val, save)
    bar.close()
    recalibrate_norms(bnn, X)
    bnn.eval()
    if tol is not None and history.converged_at is None and world.is_main:
        warnings.warn(
            f"fit ended before the ELBO converged: {history.stop_reason}. Give more epochs "
            f"(now {epochs}, or epochs=None for the budget that follows the data), a larger "
            f"tol (now {tol:g}) or a smaller lr (now {lr:g}) if the loss oscillates; "
            "tol=None runs a fixed number of epochs without this test",
            ConvergenceWarning,
            stacklevel=4,
        )
    # what the inclusion probabilities are measured against (infer/information.py)
    from pyrocompress.infer.information import information_budget, record_information

    try:
        record_information(bnn, (X, y), **information_budget(bnn))
    except (NotImplementedError, FloatingPointError) as e:  # training is not lost for it
        warnings.warn(
            f"the Fisher information was not recorded ({e}); inclusion probabilities "
            "need it (pyrocompress.infer.record_information)",
            stacklevel=4,
        )
    return history


_CHECKPOINT_FORMAT = "pyrocompress-fit-checkpoint/1"


def _scheduler(optimizer, lr_schedule: str, total_steps: int, lr: float):
    """Return the learning-rate schedule over ``total_steps`` steps (``None`` for constant)."""
    if lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=total_steps, eta_min=0.01 * lr
        )
    if lr_schedule == "exponential":
        gamma = 0.01 ** (1.0 / max(total_steps, 1))
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    return None


def _elbo(objective: str, local_reparam: bool):
    """Return the ELBO estimator of ``objective``."""
    if objective == "moments":
        return MomentELBO()
    return LocalReparamELBO() if local_reparam else TraceMeanField_ELBO()


@dataclass
class _Run:
    """One epoch of SVI steps: the optimiser step, the variance projection, the schedule."""

    step_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    bnn: BayesianNetwork
    log_vars: list
    n: int
    kl_warmup: int
    steps_per_epoch: int

    def epoch(self, batches, step: int, world: World, device) -> tuple[torch.Tensor, float, int]:
        """Run the epoch's steps from global step ``step``.

        Returns
        -------
        tuple of (Tensor, float, int)
            The mean loss over the epoch's minibatches (averaged over the processes; a
            0-d tensor on the device, not yet read), the last KL weight and the new step
            count.
        """
        total = torch.zeros((), device=device)
        beta = 1.0
        for xb, yb, idx in batches:
            warm = self.kl_warmup * self.steps_per_epoch
            beta = min(1.0, (step + 1) / warm) if self.kl_warmup else 1.0
            loss = self.step_fn(xb, yb, idx, self.n, beta)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.bnn.guide.clamp_log_var_(self.log_vars)
            if self.scheduler is not None:
                self.scheduler.step()
            total = total + loss.detach()
            step += 1
        if world.active:
            dist.all_reduce(total)
            total = total / world.size
        return total / self.steps_per_epoch, beta, step


class _Records:
    """The epochs of a :func:`fit` run not yet read from the device, and their reading.

    Each epoch's mean loss stays a 0-d tensor on the device until :meth:`read` reads the
    pending ones in one transfer, checks that they are finite, records them in the
    history and updates the progress bar's numbers (without redrawing it: tqdm redraws at
    its own interval).
    """

    def __init__(
        self, history: History, bar: tqdm | None, read_every: int, lr: float, prior: str
    ) -> None:
        self.history, self.bar, self.read_every, self.lr, self.prior = (
            history,
            bar,
            read_every,
            lr,
            prior,
        )
        self.pending: list[tuple[torch.Tensor, float, float, float, float]] = []

    def add(self, loss: torch.Tensor, beta: float, lr: float, metric: float, seconds: float):
        """Keep one epoch; read the pending ones when ``read_every`` are waiting."""
        self.pending.append((loss, beta, lr, metric, seconds))
        if len(self.pending) >= self.read_every:
            self.read()

    def read(self) -> None:
        """Record the pending epochs in the history; raise if a loss is NaN or inf."""
        if not self.pending:
            return
        history = self.history
        losses = torch.stack([p[0] for p in self.pending]).tolist()
        for (_, beta, lr_now, metric, seconds), value in zip(self.pending, losses):
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"the loss became {value} at epoch {len(history) + 1}; training stopped. "
                    f"Lower the learning rate (lr={self.lr}), use KL warm-up (kl_warmup) or a "
                    f"less extreme prior setting ({self.prior})"
                )
            history.record(value, beta, lr_now, metric, seconds)
        self.pending.clear()
        if self.bar is not None:
            postfix = {"loss": f"{history.loss[-1]:.4f}"}
            if not math.isnan(history.val_metric[-1]):
                postfix[f"val_{history.metric_name}"] = f"{history.val_metric[-1]:.4f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(len(losses))


def _loop(
    run: _Run,
    batches: _Minibatches,
    stop: _Stop,
    records: _Records,
    epoch: int,
    step: int,
    world: World,
    device: torch.device,
    val: tuple[torch.Tensor, torch.Tensor] | None,
    save,
) -> None:
    """Train from ``epoch`` (epochs done) and global step ``step`` until ``stop`` says.

    ``save(epoch, step)`` writes the checkpoint after each epoch (0-based ``epoch``).
    """
    bnn, history = run.bnn, records.history
    stop_at = stop.end(history)
    bnn.train()
    clock = time.perf_counter()
    while epoch < stop_at:
        batches.set_epoch(epoch)
        loss, beta, step = run.epoch(batches, step, world, device)
        metric = bnn.point_error(*val) if val is not None and world.is_main else math.nan
        now = time.perf_counter()
        records.add(loss, beta, run.optimizer.param_groups[0]["lr"], metric, now - clock)
        clock = now
        epoch += 1
        if stop.due(epoch, history):
            records.read()
            if stop.test(history, world, device):
                stop.start_anneal(step)
                stop_at = stop.end(history)
        if epoch == stop_at:  # the last loss is that before the last step: check its result
            records.read()
            _check_finite_parameters(bnn, epoch, records.lr)
            stop.finish(history, epoch)
        save(epoch - 1, step)


def _converged(losses: Sequence[float], window: int, tol: float) -> tuple[bool, str]:
    r"""Run the convergence test of :func:`fit` on the last ``2 * window`` epoch losses.

    Returns whether :math:`|\bar L_1 - \bar L_2| + 2\,\mathrm{se} \le
    \mathrm{tol}\,|\bar L_2|` (see :func:`fit`, *Convergence*) and a sentence with the
    numbers.
    """
    recent = [float(v) for v in losses[-2 * window :]]
    if len(recent) < 2 * window:
        return False, f"fewer than 2 windows of {window} epochs"
    first, last = recent[:window], recent[window:]
    m1, m2 = sum(first) / window, sum(last) / window
    sq = sum((b - a) ** 2 for a, b in zip(recent, recent[1:]))
    sigma = math.sqrt(sq / (2 * (len(recent) - 1)))
    se = sigma * math.sqrt(2.0 / window)
    scale = abs(m2)
    change = abs(m1 - m2)
    ok = change + 2 * se <= tol * scale
    rel = (lambda v: v / scale) if scale > 0 else (lambda v: math.inf)
    text = (
        f"mean loss {m1:.6g} -> {m2:.6g} over two windows of {window} epochs, relative "
        f"change {rel(change):.2e} + 2 s.e. {rel(2 * se):.2e} "
        f"{'<=' if ok else '>'} tol {tol:g}"
    )
    return ok, text


class _Anneal:
    r"""The learning-rate factor of :func:`fit` with ``tol``: constant, then a decay.

    1 before global step ``start``; from there ``shape``'s decay to 1 % over ``length``
    steps (``"cosine"``: :math:`0.01 + 0.99 (1 + \cos \pi t) / 2`; ``"exponential"``:
    :math:`0.01^t`, with :math:`t` the fraction of ``length`` done). A callable object, not
    a function, so that :class:`~torch.optim.lr_scheduler.LambdaLR` saves ``start`` in
    its state dict (checkpoints resume inside the anneal).
    """

    def __init__(self, shape: str, length: int, start: int) -> None:
        self.shape, self.length, self.start = shape, int(length), int(start)

    def __call__(self, step: int) -> float:
        if self.length <= 0 or step < self.start:
            return 1.0
        t = min(1.0, (step - self.start) / self.length)
        if self.shape == "cosine":
            return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t))
        if self.shape == "exponential":
            return 0.01**t
        return 1.0


class _Stop:
    """When :func:`fit` stops: the convergence test, the anneal after it, the reason."""

    def __init__(
        self,
        tol: float | None,
        window: int,
        epochs: int,
        kl_warmup: int,
        lr_schedule: str,
        steps_per_epoch: int,
    ) -> None:
        self.tol, self.window, self.epochs, self.kl_warmup = tol, int(window), epochs, kl_warmup
        self.lr_schedule = lr_schedule
        decays = tol is not None and lr_schedule != "constant"
        self.anneal_epochs = min(self.window, epochs) if decays else 0
        forced = (epochs - self.anneal_epochs) * steps_per_epoch  # without convergence
        self.anneal = _Anneal(lr_schedule, self.anneal_epochs * steps_per_epoch, forced)
        self.last_test = ""

    def end(self, history: History) -> int:
        """Return the number of epochs the run takes, as far as known now."""
        if self.tol is None or history.converged_at is None:
            return self.epochs
        return min(self.epochs, history.converged_at + self.anneal_epochs)

    def due(self, epoch: int, history: History) -> bool:
        """Return whether the test runs after ``epoch`` epochs.

        The windows hold whole epochs at full KL weight and constant learning rate; the
        test runs every ``window`` epochs.
        """
        if self.tol is None or history.converged_at is not None:
            return False
        full = epoch - self.kl_warmup
        return (
            full >= 2 * self.window
            and full % self.window == 0
            and (epoch <= self.epochs - self.anneal_epochs)
        )

    def test(self, history: History, world: World, device: torch.device) -> bool:
        """Run the test on ``history`` (rank 0 decides in a data-parallel run)."""
        ok, text = _converged(history.loss, self.window, cast(float, self.tol))
        if world.active:
            flag = torch.tensor(int(ok), device=device)
            dist.broadcast(flag, src=0)
            ok = bool(flag.item())
        self.last_test = text
        if ok:
            history.converged_at = len(history)
            then = (
                f"; then {self.anneal_epochs} epochs of {self.lr_schedule} learning-rate decay"
                if self.anneal_epochs
                else ""
            )
            history.stop_reason = f"converged at epoch {len(history)}: {text}{then}"
        return ok

    def start_anneal(self, step: int) -> None:
        """Begin the decay at global step ``step`` (now)."""
        self.anneal.start = min(self.anneal.start, step)

    def finish(self, history: History, epoch: int) -> None:
        """Record why the run ends after ``epoch`` epochs."""
        if self.tol is None:
            history.stop_reason = f"epochs: ran the {epoch} epochs requested (no tol)"
        elif history.converged_at is None:
            decay = (
                f"; the last {self.anneal_epochs} with {self.lr_schedule} learning-rate decay"
                if self.anneal_epochs
                else ""
            )
            need = self.kl_warmup + (3 if self.anneal_epochs else 2) * self.window
            last = (
                f"; last test: {self.last_test}"
                if self.last_test
                else f"; the test never ran: it needs {need} epochs (KL warm-up, two windows "
                "and the anneal)"
            )
            history.stop_reason = (
                f"maximum of {self.epochs} epochs reached before the convergence test "
                f"(tol={self.tol:g}, window={self.window}) was met{last}{decay}"
            )


def _save_checkpoint(
    path, epoch, step, config, bnn: BayesianNetwork, optimizer, scheduler, history
) -> None:
    """Write the state after ``epoch`` (0-based) atomically.

    Raises
    ------
    CheckpointWriteError
        If the file cannot be written (a full disk); the previous checkpoint is kept.
    """
    state = {
        "format": _CHECKPOINT_FORMAT,
        "epoch": epoch + 1,
        "step": step,
        "config": config,
        "network": bnn.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "history": history.to_dict(),
    }
    try:
        atomic_save(state, path)
    except OSError as e:
        kept = (
            f"the checkpoint of epoch {epoch} is kept"
            if epoch >= 1 and path.exists()
            else "no checkpoint of this run was written yet"
        )
        error = CheckpointWriteError(
            f"the checkpoint {path} cannot be written ({e.strerror or first_line(e)}); "
            f"{kept}: free space on its disk, or give another checkpoint_dir, and resume"
        )
        error.errno = e.errno
        raise error from None


class _ELBOLoss(torch.nn.Module):
    """``-ELBO / N`` of one minibatch as a module.

    It is a module so that :class:`~torch.nn.parallel.DistributedDataParallel` can wrap it.
    """

    def __init__(self, bnn: BayesianNetwork, elbo) -> None:
        super().__init__()
        self.bnn = bnn
        self.elbo = elbo

    def forward(self, xb, yb, idx, n: int, kl_scale: float) -> torch.Tensor:
        loss = self.elbo.differentiable_loss(
            self.bnn, self.bnn.guide, xb, yb, dataset_size=n, subsample=idx, kl_scale=kl_scale
        )
        return loss / n


def _shared_seed(seed: int | None, world: World, device: torch.device) -> int:
    """Return the seed of the minibatch order: ``seed``, or one drawn by rank 0 and shared."""
    if seed is not None:
        return int(seed)
    drawn = torch.randint(0, 2**31 - 1, (), device=device)
    if world.active:
        dist.broadcast(drawn, src=0)
    return int(drawn)


def _checkpoint_path(checkpoint_dir, resume: bool, overwrite: bool) -> Path | None:
    """Return the checkpoint file of the run (``None``: no checkpoints), or refuse it.

    Checked before training: the folder is created, a checkpoint already there is refused
    unless the run resumes or overwrites it, and the temporary files of killed writes
    are removed.
    """
    for name, value in (("resume", resume), ("overwrite_checkpoint", overwrite)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if checkpoint_dir is None:
        if resume or overwrite:
            name = "resume" if resume else "overwrite_checkpoint"
            raise ValueError(f"{name}=True needs checkpoint_dir, the folder of the checkpoint")
        return None
    folder = Path(checkpoint_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"checkpoint_dir {folder} is a file; give a folder (created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(
            f"checkpoint_dir {folder} cannot be created ({e.strerror or e}); give a folder in "
            "a writable place whose parents are folders, not files"
        ) from None
    path = check_checkpoint_target(folder, resume=resume, overwrite=overwrite)
    remove_stale_temporaries(folder)
    return path


#: what a fit checkpoint holds besides its format tag
_CHECKPOINT_KEYS = ("config", "network", "optimizer", "rng", "epoch", "step", "history")
#: the state Adam keeps per parameter (``max_exp_avg_sq`` too with ``amsgrad``)
_ADAM_STATE = frozenset({"step", "exp_avg", "exp_avg_sq"})


def _restore(
    path: Path, config: dict, bnn: BayesianNetwork, optimizer, scheduler, steps_per_epoch: int
) -> tuple[int, int, History]:
    """Load ``path`` into the run's objects; returns ``(epoch, step, history)``.

    The whole checkpoint is checked (:func:`_check_checkpoint`) before any of it is used,
    so a malformed one is refused with one :class:`ValueError` and changes nothing.
    """
    ckpt = safe_load(path, "checkpoint")
    _check_checkpoint(path, ckpt, config, bnn, optimizer, scheduler, steps_per_epoch)
    config["sampler_seed"] = ckpt["config"]["sampler_seed"]
    bnn.load_state_dict(ckpt["network"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"])
    return ckpt["epoch"], ckpt["step"], History(**ckpt["history"])


def _check_checkpoint(
    path: Path, ckpt, config: dict, bnn: BayesianNetwork, optimizer, scheduler, steps: int
) -> None:
    """Raise one :class:`ValueError` naming ``path`` unless ``ckpt`` can resume this run.

    Checked: the format tag and keys; the settings against ``config``; the types and
    ranges of everything the resume uses — ``epoch`` in [1, epochs], ``step`` =
    ``epoch * steps`` (``steps`` minibatches per epoch), the network's keys and shapes,
    the optimiser's and scheduler's state dicts against those of this run, the
    random-number states (:func:`~pyrocompress.infer.checkpoint.rng_state_problem`) and
    the history's fields.
    """
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a pyrocompress fit checkpoint ({_CHECKPOINT_FORMAT})")
    missing = sorted(set(_CHECKPOINT_KEYS) - set(ckpt))
    if missing:
        raise ValueError(
            f"the checkpoint {path} is incomplete (no {', '.join(missing)}); delete it or "
            "give another checkpoint_dir, and fit starts afresh"
        )

    def bad(problem: str) -> ValueError:
        return ValueError(
            f"the checkpoint {path} is malformed: {problem}; delete it, or give another "
            "checkpoint_dir, and fit starts afresh"
        )

    saved = ckpt["config"]
    if not isinstance(saved, dict) or not all(isinstance(k, str) for k in saved):
        raise bad(f"config must be a dict of settings, got {_kind(saved)}")
    seed = saved.get("sampler_seed")
    if not (isinstance(seed, int) and _kind(seed) == "int" and 0 <= seed < 2**32):
        raise bad(f"config['sampler_seed'] must be an integer in [0, 2**32), got {seed!r}")
    current = {**config, "sampler_seed": seed}
    differ = {k: (saved.get(k), v) for k, v in current.items() if not _same(saved.get(k), v)}
    if differ:
        text = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in differ.items())
        raise ValueError(
            f"the checkpoint {path} was written by a run with other settings ({text}); "
            "resume with the same settings, or give another checkpoint_dir"
        )
    epoch, step = ckpt["epoch"], ckpt["step"]
    if not (isinstance(epoch, int) and _kind(epoch) == "int" and 1 <= epoch <= config["epochs"]):
        raise bad(f"epoch must be an integer in [1, {config['epochs']}], got {epoch!r}")
    if _kind(step) != "int" or step != epoch * steps:
        raise bad(
            f"step must be epoch x minibatches per epoch = {epoch} x {steps}, got {step!r} "
            "(was it written for other data?)"
        )
    network_problem = _network_problem(ckpt["network"], bnn.state_dict())
    if network_problem:
        raise ValueError(f"the checkpoint {path} does not fit this network: {network_problem}")
    problem = (
        _optimizer_problem(ckpt["optimizer"], optimizer)
        or _structure_problem(
            ckpt["scheduler"], None if scheduler is None else scheduler.state_dict(), "scheduler"
        )
        or (
            f"scheduler['last_epoch'] must be the step, {step}"
            if scheduler is not None and ckpt["scheduler"]["last_epoch"] != step
            else None
        )
        or rng_state_problem(ckpt["rng"])
        or _history_problem(ckpt["history"], epoch, bnn.likelihood.metric_name)
    )
    if problem:
        raise bad(problem)


def _kind(value) -> str:
    """Return the kind of a loaded value, for structure checks and messages."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list | tuple):
        return "list"
    return "None" if value is None else type(value).__name__


def _same(saved, now) -> bool:
    """Whether a saved setting equals the current one (a tensor or other object never does)."""
    plain = (bool, int, float, str, type(None))
    if isinstance(saved, dict) and isinstance(now, dict):
        return saved.keys() == now.keys() and all(_same(saved[k], now[k]) for k in now)
    return isinstance(saved, plain) and isinstance(now, plain) and saved == now


def _structure_problem(saved, template, where: str) -> str | None:
    """Say where ``saved`` differs in structure from ``template`` (``None``: it does not).

    Dicts need the same keys, lists the same length, numbers must be finite numbers (an
    ``int`` and a ``float`` stand for each other), tensors the same shape; other values the
    same kind.
    """
    numbers = ("int", "float")
    kind, expected = _kind(saved), _kind(template)
    if kind in numbers and expected in numbers:
        return None if math.isfinite(saved) else f"{where} must be finite, got {saved!r}"
    if kind != expected:
        return f"{where} must be {expected}, got {kind}"
    if isinstance(template, dict):
        if set(saved) != set(template):
            keys = sorted(map(str, saved))
            return f"{where} must have the keys {sorted(map(str, template))}, got {keys}"
        for key, value in template.items():
            problem = _structure_problem(saved[key], value, f"{where}[{key!r}]")
            if problem:
                return problem
    elif isinstance(template, list | tuple):
        if len(saved) != len(template):
            return f"{where} must have {len(template)} entries, got {len(saved)}"
        for i, (a, b) in enumerate(zip(saved, template, strict=True)):
            problem = _structure_problem(a, b, f"{where}[{i}]")
            if problem:
                return problem
    elif isinstance(template, torch.Tensor) and saved.shape != template.shape:
        return f"{where} must have shape {tuple(template.shape)}, got {tuple(saved.shape)}"
    return None


def _network_problem(saved, template: Mapping[str, torch.Tensor]) -> str | None:
    """Say why ``saved`` cannot be this network's state dict (``None``: it can)."""
    if not isinstance(saved, dict):
        return f"its network must be a state dict, got {_kind(saved)}"
    missing = sorted(set(template) - set(saved))
    unexpected = sorted(map(str, set(saved) - set(template)))
    if missing or unexpected:
        return f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
    for key, value in template.items():
        if not isinstance(saved[key], torch.Tensor):
            return f"{key} must be a tensor, got {_kind(saved[key])}"
        if saved[key].shape != value.shape:
            shapes = f"checkpoint {tuple(saved[key].shape)}, network {tuple(value.shape)}"
            return f"the shape of {key} differs ({shapes})"
    return None


def _optimizer_problem(saved, optimizer: torch.optim.Optimizer) -> str | None:
    """Say why ``saved`` cannot be this run's Adam state dict (``None``: it can)."""
    current = optimizer.state_dict()
    if not isinstance(saved, dict) or set(saved) != {"state", "param_groups"}:
        return "optimizer must be a dict with keys 'state' and 'param_groups'"
    groups, state = saved["param_groups"], saved["state"]
    if not isinstance(groups, list) or len(groups) != len(current["param_groups"]):
        return f"optimizer['param_groups'] must be a list of {len(current['param_groups'])}"
    shapes = {}
    for i, (group, now, live) in enumerate(
        zip(groups, current["param_groups"], optimizer.param_groups, strict=True)
    ):
        if not isinstance(group, dict) or group.get("params") != now["params"]:
            return f"optimizer['param_groups'][{i}]['params'] must be {now['params']}"
        settings = {k: v for k, v in group.items() if k != "params"}
        template = {k: v for k, v in now.items() if k != "params"}
        problem = _structure_problem(settings, template, f"optimizer['param_groups'][{i}]")
        if problem:
            return problem
        expected = _ADAM_STATE | ({"max_exp_avg_sq"} if now.get("amsgrad") else set())
        shapes.update({j: (p.shape, expected) for j, p in zip(now["params"], live["params"])})
    if not isinstance(state, dict):
        return f"optimizer['state'] must be a dict, got {_kind(state)}"
    for j, entry in state.items():
        if j not in shapes:
            return f"optimizer['state'] has an entry for parameter {j!r}, which this run lacks"
        shape, expected = shapes[j]
        if not isinstance(entry, dict) or set(entry) != expected:
            return f"optimizer['state'][{j}] must be a dict with keys {sorted(expected)}"
        for key, value in entry.items():
            want = () if key == "step" else shape
            if not (
                isinstance(value, torch.Tensor)
                and value.is_floating_point()
                and value.shape == want
            ):
                return f"optimizer['state'][{j}][{key!r}] must be a float tensor of shape {want}"
    return None


def _history_problem(saved, epoch: int, metric_name: str) -> str | None:
    """Say why ``saved`` cannot be the history of ``epoch`` epochs (``None``: it can)."""
    names = {f.name for f in fields(History)}
    if not isinstance(saved, dict) or set(saved) != names:
        return f"history must be a dict with keys {sorted(names)}"
    if saved["epoch"] != list(range(1, epoch + 1)):
        return f"history['epoch'] must be [1, ..., {epoch}] for a checkpoint of epoch {epoch}"
    for name in ("loss", "kl_scale", "lr", "val_metric", "seconds"):
        values = saved[name]
        if not isinstance(values, list) or len(values) != epoch:
            return f"history[{name!r}] must be a list of {epoch} numbers"
        if not all(_kind(v) in ("int", "float") for v in values):
            return f"history[{name!r}] must hold numbers only"
    if saved["metric_name"] != metric_name:
        return f"history['metric_name'] must be {metric_name!r}, got {saved['metric_name']!r}"
    converged = saved["converged_at"]
    if converged is not None and (_kind(converged) != "int" or not 1 <= converged <= epoch):
        return f"history['converged_at'] must be None or an epoch in [1, {epoch}]"
    if not isinstance(saved["stop_reason"], str):
        return "history['stop_reason'] must be a string"
    return None
