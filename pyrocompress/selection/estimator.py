r"""A scikit-learn feature selector driven by posterior inclusion probabilities.

:class:`FeatureSelector` fits a Bayesian neural network whose input layer carries a group
prior — one group per input feature, the weights leaving that input — and selects the
features whose posterior inclusion probability (PIP) passes a rule from
:mod:`pyrocompress.selection`. Because the network is nonlinear, a feature enters through
interactions and curvature as well as linearly, where the Lasso only sees linear effects
(Saha, Liu & Liang 2024, §4; Bai, Song & Cheng 2020, §5).

It is a plain scikit-learn estimator: hyper-parameters are set in ``__init__`` only, the
Pyro model is created in :meth:`FeatureSelector.fit` and held in ``module_`` (the
estimator is not itself a module), so :func:`sklearn.base.clone`, grid search and
:class:`~sklearn.pipeline.Pipeline` work as for any transformer.
"""

from __future__ import annotations

import math
import numbers
import time
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from pyrocompress.analysis import Posterior
from pyrocompress.constraints import check
from pyrocompress.distributions import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
)
from pyrocompress.infer import fit as fit_svi
from pyrocompress.infer import pretrain
from pyrocompress.nn import bayesianize, mlp
from pyrocompress.priors import Prior, get_prior, prior_keys
from pyrocompress.rng import seeded
from pyrocompress.selection.rules import bayesian_fdr, median_probability_model, top_k

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FeatureSelector", "infer_task", "selection_priors"]

#: Priors whose input-layer groups have inclusion probabilities.


def selection_priors() -> tuple[str, ...]:
    """Keys of the registered priors with inclusion probabilities (read from the registry)."""
    return prior_keys(inclusion_probabilities=True)


_RULES = ("median", "fdr", "top-k")
_TASKS = ("auto", "regression", "classification")
#: A numeric target with at most this many distinct integer values counts as class labels.
MAX_AUTO_CLASSES = 10
#: Optimisation steps of the default training budget (``epochs=None``).
DEFAULT_STEPS = 12_000


def infer_task(y, max_classes: int = MAX_AUTO_CLASSES) -> tuple[str, str]:
    """Decide between regression and classification for a target vector.

    Class labels are a non-numeric target, or a numeric one whose values are all
    integers with at most ``max_classes`` distinct values; anything else is regression.

    Returns
    -------
    (task, reason)
        ``"regression"`` or ``"classification"`` and a sentence saying why.

    Raises
    ------
    ValueError
        If ``y`` has fewer than two distinct values (nothing to learn).
    """
    y = np.asarray(y)
    values = np.unique(y)
    if len(values) < 2:
        raise ValueError(
            f"the target is constant (its only value is {_plain(values[0])!r} in {len(y)} "
            "rows); "
            "a feature cannot explain a constant, choose another target column"
            if len(values)
            else "the target is empty"
        )
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        return "classification", f"the target is not numeric ({len(values)} labels)"
    kind = type_of_target(y)
    if kind in ("binary", "multiclass") and len(values) <= max_classes:
        return "classification", (
            f"the target takes {len(values)} integer values (at most {max_classes} "
            "distinct integers count as class labels)"
        )
    if kind in ("binary", "multiclass"):
        return "regression", (
            f"the target takes {len(values)} integer values, more than {max_classes}, "
            "so it is treated as a count or measurement"
        )
    return "regression", "the target takes non-integer values"


def _plain(value):
    """Return a NumPy scalar as the Python value it holds (``np.int64(3)`` -> ``3``).

    Messages then print ``3`` rather than ``np.int64(3)`` under NumPy 2.
    """
    return value.item() if isinstance(value, np.generic) else value


class FeatureSelector(SelectorMixin, BaseEstimator):
    r"""Select input features by the posterior inclusion probabilities of a Bayesian network.

    The model is an MLP ``n_features → hidden… → output`` with the chosen group prior on
    every Linear layer (the groups of the first layer are the input features), fitted by
    SVI with the local reparametrisation (:func:`pyrocompress.fit`). Features are
    standardised internally (and, for regression, the target), so the prior's scale means
    the same for every column; selection does not depend on the units of ``X``.

    * Regression: :math:`y \sim N(f(x), \sigma^2)` with :math:`\sigma` learned.
    * Binary classification: :math:`y \sim \mathrm{Bernoulli}(\mathrm{sigmoid}(f(x)))`.
    * :math:`K > 2` classes: :math:`y \sim \mathrm{Categorical}(\mathrm{softmax}(f(x)))`.

    With ``hidden=()`` the model is Bayesian linear (or logistic) regression with a
    spike-and-slab, horseshoe or normal-Jeffreys prior per coefficient.

    Parameters
    ----------
    task
        ``"auto"`` (the default: :func:`infer_task`), ``"regression"`` or
        ``"classification"``.
    prior
        ``"spike-slab"`` (the default; PIP = :math:`q(\gamma_j = 1)`, Saha et al. 2024),
        ``"group-horseshoe"`` or ``"group-nj"`` (PIP = :math:`1/(1 + \alpha_j)`, the
        complement of the group's dropout rate, Louizos et al. 2017, §3), or a
        :class:`~pyrocompress.priors.Prior` instance of one of those kinds.
    hidden
        Hidden-layer widths; ``()`` for a linear model. The default (50, 20) is the
        network measured on the Bai et al. (2020) design (``benchmarks/selection/selection_bai.py``,
        docs/results/selection-bai.md: exactly the five relevant inputs in 4 of 5 seeds,
        2026-11-23) and on the Sun et al. (2021) design (docs/results/selection-study.md).
    epochs
        Passes over the data; ``None`` (default) chooses about
        ``DEFAULT_STEPS`` = 12 000 optimisation steps whatever the data size.
    batch_size, lr
        Minibatch size and Adam learning rate (cosine-annealed).
    pretrain_epochs
        Epochs of group-lasso pre-training of the variational means before SVI
        (:func:`pyrocompress.infer.pretrain`); ``None`` (default) is a tenth of
        ``epochs``, 0 switches pre-training off.
    pretrain_penalty
        Group-lasso weight :math:`\lambda` of the pre-training, per example on the
        standardised target. The default 1.5e-3 is the value of the measured runs in
        docs/results/selection-bai.md; the run before pre-training existed (that file at
        commit 00a4285) missed :math:`x_1`, an effect through :math:`x_2/(1+x_1^2)` only,
        in 3 of 5 seeds. Other values of :math:`\lambda` have not been compared.
    kl_warmup
        Fraction of the epochs over which the KL weight rises from 0 to 1 (Sønderby et
        al. 2016): early epochs fit the data with a weakened prior, so a feature's weights
        can grow before the KL term's pull towards exclusion is at full strength.
    rule
        ``"median"`` — the median-probability model, PIP :math:`\ge 0.5` (Barbieri &
        Berger 2004); ``"fdr"`` — the largest set :math:`\{j: \mathrm{PIP}_j \ge t\}` with
        estimated Bayesian FDR :math:`\le` ``fdr_level`` (Newton et al. 2004; tied PIPs are
        kept or dropped together); ``"top-k"`` — the ``k`` largest PIPs (ties broken by
        column order).
    fdr_level
        :math:`q` of the ``"fdr"`` rule, in [0, 1) (a Python or NumPy number).
    k
        Number of features of the ``"top-k"`` rule (a positive Python or NumPy integer;
        more than ``n_features_in_`` selects every feature); ``None`` for the other rules.
    random_state
        Seed of the initialisation and of SVI, an integer in [0, 2**32); ``None`` draws
        fresh randomness.
    device
        ``"cpu"`` or ``"cuda"`` (any :class:`torch.device` specification).
    progress
        Show the training progress bar.

    Attributes
    ----------
    inclusion_probabilities_ : ndarray of shape (n_features_in_,)
        Posterior inclusion probability of each feature.
    support_ : ndarray of bool, shape (n_features_in_,)
        The selected features (also :meth:`get_support`).
    estimated_fdr_ : float
        Estimated false-discovery rate of the selection,
        :math:`\frac{1}{|S|}\sum_{j\in S}(1 - \mathrm{PIP}_j)` (0 when nothing is selected).
    cutoff_ : float or None
        The PIP cut-off of the rule used: 0.5 for ``"median"``; the smallest selected PIP
        for ``"fdr"`` (every feature at or above it is selected; ``None`` when nothing is);
        the ``k``-th largest PIP for ``"top-k"``. :meth:`plot_inclusion_probabilities`
        draws it.
    task_ : str
        ``"regression"`` or ``"classification"``.
    task_reason_ : str
        Why, when the task was inferred.
    classes_ : ndarray
        Class labels (classification only).
    module_ : BayesianNetwork
        The fitted Pyro model and guide.
    history_ : History
        Loss and timing per epoch.
    pretrain_history_ : History or None
        The pre-training's penalised loss per epoch (``None`` without pre-training).
    n_features_in_, feature_names_in_
        As in scikit-learn (names only when ``X`` is a DataFrame with string columns; in a
        :class:`~sklearn.pipeline.Pipeline` after a transformer, only with
        ``set_output(transform="pandas")``, since the transformer passes on a NumPy array).
    fit_seconds_ : float
        Wall time of :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> from pyrocompress import FeatureSelector
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(120, 5))
    >>> y = 2.0 * X[:, 0] + 0.1 * rng.normal(size=120)
    >>> sel = FeatureSelector(hidden=(), epochs=40, pretrain_epochs=0, random_state=0)
    >>> sel = sel.fit(X, y)
    >>> sel.task_, sel.inclusion_probabilities_.shape
    ('regression', (5,))
    >>> bool(sel.support_[0])
    True
    """

    def __init__(
        self,
        *,
        task: str = "auto",
        prior: str | Prior = "spike-slab",
        hidden: tuple[int, ...] = (50, 20),
        epochs: int | None = None,
        batch_size: int = 256,
        lr: float = 0.01,
        pretrain_epochs: int | None = None,
        pretrain_penalty: float = 1.5e-3,
        kl_warmup: float = 0.1,
        rule: str = "median",
        fdr_level: float = 0.1,
        k: int | None = None,
        random_state: int | None = 0,
        device: str = "cpu",
        progress: bool = False,
    ):
        self.task = task
        self.prior = prior
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_penalty = pretrain_penalty
        self.kl_warmup = kl_warmup
        self.rule = rule
        self.fdr_level = fdr_level
        self.k = k
        self.random_state = random_state
        self.device = device
        self.progress = progress

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> tuple[Prior, tuple[int, ...]]:
        if self.task not in _TASKS:
            raise ValueError(f"task must be one of {_TASKS}, got {self.task!r}")
        prior = get_prior(self.prior)
        if not prior.has_inclusion_probabilities:
            raise ValueError(
                f"the {prior.key!r} prior has no inclusion probabilities; "
                f"choose one of {selection_priors()}"
            )
        hidden = self.hidden
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = (hidden,)
        if not isinstance(hidden, tuple | list) or any(
            isinstance(h, bool) or not isinstance(h, numbers.Integral) or int(h) < 1 for h in hidden
        ):
            raise ValueError(
                f"hidden must be a tuple of positive layer widths (() for a linear model), "
                f"got {self.hidden!r}"
            )
        if self.epochs is not None:
            check("epochs", self.epochs)
        check("batch_size", self.batch_size)
        check("lr", self.lr)
        check("pretrain_epochs", self.pretrain_epochs)
        check("group_penalty", self.pretrain_penalty, label="pretrain_penalty")
        check("kl_warmup_fraction", self.kl_warmup, label="kl_warmup")
        if self.rule not in _RULES:
            raise ValueError(f"rule must be one of {_RULES}, got {self.rule!r}")
        check("fdr_level", self.fdr_level)
        if self.rule == "top-k" and self.k is None:
            raise ValueError("k (required by rule='top-k') must be a positive integer, got None")
        check("k", self.k)
        if self.random_state is not None:
            check("seed", self.random_state, label="random_state")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but CUDA is not available; use 'cpu'")
        return prior, tuple(int(h) for h in hidden)

    # ------------------------------------------------------------------------- fit
    def fit(self, X, y) -> FeatureSelector:
        """Fit the Bayesian network to ``(X, y)`` and select features; returns ``self``.

        Every hyper-parameter is validated first, before the data are read and before any
        training, so a bad value fails at once rather than after minutes of SVI.

        Raises
        ------
        ValueError
            For a bad hyper-parameter (the message names it), or unusable data: fewer than
            two samples, a constant target, NaN or infinite values.
        """
        start = time.perf_counter()
        prior, hidden = self._check_params()
        seed = None if self.random_state is None else int(self.random_state)
        with seeded(seed):  # the caller's global random state is left as it was
            return self._fit(X, y, prior, hidden, seed, start)

    def _fit(self, X, y, prior: Prior, hidden: tuple[int, ...], seed: int | None, start: float):
        checked = validate_data(self, X, y, dtype=np.float64, y_numeric=False)
        X, y = cast(tuple[np.ndarray, np.ndarray], checked)
        n, p = X.shape
        if n < 2:
            raise ValueError(f"got {n} sample; need at least 2 samples to fit")
        if self.task == "auto":
            self.task_, self.task_reason_ = infer_task(y)
        else:
            self.task_, self.task_reason_ = self.task, "set by the task parameter"

        self.x_mean_ = X.mean(0)
        scale = X.std(0)
        self.x_scale_ = np.where(scale > 0, scale, 1.0)
        Xt = torch.as_tensor((X - self.x_mean_) / self.x_scale_, dtype=torch.float32)
        if self.task_ == "classification":
            self.classes_, codes = np.unique(y, return_inverse=True)
            if len(self.classes_) < 2:
                raise ValueError("classification needs at least 2 classes in y, got 1 class")
            yt = torch.as_tensor(codes, dtype=torch.int64)
            binary = len(self.classes_) == 2
            likelihood = BernoulliLikelihood() if binary else CategoricalLikelihood()
            out = 1 if binary else len(self.classes_)
        else:
            try:
                y = np.asarray(y, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    "task='regression' needs a numeric target; use task='classification' for labels"
                ) from err
            if not np.isfinite(y).all():
                raise ValueError("y contains NaN or infinity; remove or impute those rows")
            self.y_mean_, y_scale = y.mean(), y.std()
            if not y_scale > 0:
                raise ValueError("the target is constant; a feature cannot explain it")
            self.y_scale_ = y_scale
            yt = torch.as_tensor((y - self.y_mean_) / y_scale, dtype=torch.float32)
            likelihood, out = GaussianLikelihood(), 1

        names = (
            [str(c) for c in getattr(self, "feature_names_in_")]  # noqa: B009  (set by sklearn)
            if hasattr(self, "feature_names_in_")
            else [f"x{j}" for j in range(p)]
        )
        self.module_ = bayesianize(
            mlp([p, *hidden, out]),
            prior=prior,
            likelihood=likelihood,
            feature_names=names,
            seed=seed,
        )
        batch = min(self.batch_size, n)
        steps_per_epoch = math.ceil(n / batch)
        epochs = self.epochs or max(1, math.ceil(DEFAULT_STEPS / steps_per_epoch))
        pretrain_epochs = (
            max(1, round(0.1 * epochs)) if self.pretrain_epochs is None else self.pretrain_epochs
        )
        self.pretrain_history_ = None
        if pretrain_epochs:
            self.pretrain_history_ = pretrain(
                self.module_,
                (Xt, yt),
                group_penalty=float(self.pretrain_penalty),
                epochs=int(pretrain_epochs),
                batch_size=batch,
                lr=self.lr,
                seed=seed,
                device=self.device,
            )
        self.history_ = fit_svi(
            self.module_,
            (Xt, yt),
            epochs=epochs,
            batch_size=batch,
            lr=self.lr,
            kl_warmup=round(self.kl_warmup * epochs),
            seed=seed,
            device=self.device,
            progress=self.progress,
        )
        first = next(iter(self.module_.bayesian_layers()))
        pip = Posterior(self.module_).inclusion_probabilities()[first]
        self.inclusion_probabilities_ = pip.detach().double().cpu().numpy()
        self.support_, self.estimated_fdr_, self.cutoff_ = self._select(
            self.inclusion_probabilities_
        )
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _select(self, pip: np.ndarray) -> tuple[np.ndarray, float, float | None]:
        """Apply the rule to ``pip``.

        Returns
        -------
        tuple
            The support mask, its estimated FDR and the PIP cut-off of the rule (see
            ``cutoff_``).
        """
        pip = np.asarray(pip, dtype=np.float64)
        if self.rule == "median":
            chosen, cutoff = median_probability_model(pip), 0.5
        elif self.rule == "fdr":
            chosen, _ = bayesian_fdr(pip, float(self.fdr_level))
            cutoff = float(pip[chosen].min()) if chosen else None
        else:
            k = min(int(cast(int, self.k)), len(pip))
            chosen = top_k(pip, k)
            cutoff = float(np.sort(pip)[::-1][k - 1])
        support = np.zeros(len(pip), dtype=bool)
        support[chosen] = True
        fdr = float(np.mean(1.0 - pip[support])) if support.any() else 0.0
        return support, fdr, cutoff

    # ------------------------------------------------------------------ selection
    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return self.support_

    def _rule_labels(self) -> tuple[str, str]:
        """Return the rule as ``summary()`` names it, and the label of its cut-off in the plot."""
        if self.rule == "median":
            return "median-probability (PIP >= 0.5)", "median-probability cut-off"
        if self.rule == "fdr":
            q = f"{float(self.fdr_level):g}"
            return f"bayesian-fdr (q={q})", f"Bayesian FDR ≤ {q} cut-off"
        k = int(cast(int, self.k))
        return f"top-k (k={k})", f"top-{k} cut-off"

    def plot_inclusion_probabilities(self, ax: Axes | None = None) -> Figure:
        """Draw a stem plot of the inclusion probabilities.

        The selected features are in a second colour and the cut-off of the rule used
        (``cutoff_``) is a dashed line. For ``"fdr"`` the line is the smallest selected PIP
        (Newton et al. 2004: the set is a PIP threshold), for ``"top-k"`` the ``k``-th
        largest PIP, for ``"median"`` 0.5 (Barbieri & Berger 2004); with nothing selected
        by ``"fdr"`` no line is drawn.

        Returns
        -------
        Figure
            The matplotlib Figure (see :func:`pyrocompress.plots.plot_pip_stem`).
        """
        check_is_fitted(self, "support_")
        from pyrocompress import plots

        return plots.plot_pip_stem(
            self.inclusion_probabilities_,
            feature_names=[str(n) for n in self.module_.feature_names or []],
            threshold=self.cutoff_,
            threshold_label=self._rule_labels()[1],
            selected=self.support_,
            ax=ax,
        )

    def summary(self) -> dict:
        """Return the selection as plain data.

        The dict holds ``features``, ``inclusion_probabilities`` (by name), ``selected``
        (names, in input order), ``rule`` and ``estimated_fdr``.
        """
        check_is_fitted(self, "support_")
        names = [str(n) for n in self.module_.feature_names or []]
        return {
            "features": names,
            "inclusion_probabilities": {
                name: float(p) for name, p in zip(names, self.inclusion_probabilities_)
            },
            "selected": [name for name, s in zip(names, self.support_) if s],
            "rule": self._rule_labels()[0],
            "estimated_fdr": self.estimated_fdr_,
        }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.non_deterministic = self.random_state is None
        return tags
