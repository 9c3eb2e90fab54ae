r"""A scikit-learn feature selector driven by posterior inclusion probabilities.

:class:`FeatureSelector` fits a Bayesian neural network whose input layer carries a group
prior — one group per input feature, the weights leaving that input — and selects the
features whose posterior inclusion probability (PIP) passes a rule from
:mod:`pyrocompress.selection`. Because the network is nonlinear, a feature enters through
interactions and curvature as well as linearly, where the Lasso only sees linear effects
:cite:p:`saha2024efficient{§4}`; :cite:p:`bai2020efficient{§5}`.

It is a plain scikit-learn estimator: hyper-parameters are set in ``__init__`` only, the
Pyro model is created in :meth:`FeatureSelector.fit` and held in ``module_`` (the
estimator is not itself a module), so :func:`sklearn.base.clone`, grid search and
:class:`~sklearn.pipeline.Pipeline` work as for any transformer. The fitted network
also predicts (:meth:`FeatureSelector.predict`, ``predict_proba``, ``score``: the
posterior predictive, :func:`pyrocompress.predict`), so the selector can be
cross-validated as a model.
"""

from __future__ import annotations

import copy
import math
import numbers
import time
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y, validate_data

from pyrocompress.analysis import Posterior, Prediction
from pyrocompress.analysis import predict as posterior_predict
from pyrocompress.constraints import check
from pyrocompress.distributions import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
)
from pyrocompress.infer import elbo_estimate, pretrain
from pyrocompress.infer import fit as fit_svi
from pyrocompress.nn import bayesianize, mlp
from pyrocompress.priors import Prior, get_prior, prior_keys
from pyrocompress.priors.conditional import GUIDES
from pyrocompress.rng import intra_op_threads, seeded
from pyrocompress.selection.encoding import (
    InputEncoding,
    build_encoding,
    check_groups,
    encode_frame,
    is_frame,
    non_numeric_columns,
)
from pyrocompress.selection.rules import bayesian_fdr, median_probability_model, top_k

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Budget", "FeatureSelector", "infer_task", "selection_priors", "training_budget"]

#: Priors whose input-layer groups have inclusion probabilities.


def selection_priors() -> tuple[str, ...]:
    """Keys of the registered priors with inclusion probabilities (read from the registry)."""
    return prior_keys(inclusion_probabilities=True)


_RULES = ("median", "fdr", "top-k")
_TASKS = ("auto", "regression", "classification")
#: A numeric target with at most this many distinct integer values counts as class labels.
MAX_AUTO_CLASSES = 10
#: Optimisation steps of the default training budget (``epochs=None``) with minibatches.
DEFAULT_STEPS = 12_000
#: Largest number of rows trained in full batches by the default budget.
FULL_BATCH_ROWS = 2048
#: Maximum number of full-batch steps (epochs) of the default budget.
FULL_BATCH_STEPS = 4000
#: Adam learning rate of full-batch steps (when ``lr=None``); minibatch steps use 0.01.
FULL_BATCH_LR = 0.03
MINIBATCH_LR = 0.01
#: Convergence test of the full-batch default budget (:func:`pyrocompress.fit`'s tol, window).
DEFAULT_TOL = 5e-3
CONVERGENCE_WINDOW = 100


class Budget(NamedTuple):
    """The training budget of one :meth:`FeatureSelector.fit` (see :func:`training_budget`).

    ``epochs`` is the maximum when ``tol`` is set (:func:`pyrocompress.fit` may stop
    earlier); ``kl_warmup`` and ``pretrain_epochs`` are numbers of epochs.
    """

    batch_size: int
    epochs: int
    lr: float
    tol: float | None
    window: int
    kl_warmup: int
    pretrain_epochs: int
    threads: int | None


def training_budget(
    n: int,
    *,
    epochs: int | None = None,
    batch_size: int = 256,
    lr: float | None = None,
    max_steps: int | None = None,
    tol: float | None = DEFAULT_TOL,
    kl_warmup: float = 0.1,
    pretrain_epochs: int | None = None,
) -> Budget:
    """Return the budget of a selector fit on ``n`` rows (the rule of :class:`FeatureSelector`).

    * ``epochs`` given: ``epochs`` passes in minibatches of ``batch_size``, no
      convergence stop (the behaviour before the rule existed).
    * ``n <= FULL_BATCH_ROWS``: full-batch steps, at most ``max_steps`` (default
      ``FULL_BATCH_STEPS``), learning rate ``FULL_BATCH_LR``, and :func:`pyrocompress.fit`'s
      convergence stop with ``tol`` over windows of ``CONVERGENCE_WINDOW`` epochs
      (``tol=None``: all the steps, cosine-annealed).
    * larger ``n``: minibatches of ``batch_size``, ``max_steps`` (default
      ``DEFAULT_STEPS``) steps, cosine-annealed, no convergence stop.

    The KL warm-up takes the fraction ``kl_warmup`` of the (maximum) epochs, the
    pre-training a tenth of them unless ``pretrain_epochs`` is given. ``threads`` is 1
    for the full-batch rule (on the CPU, the fit runs with one torch intra-op thread and
    restores the caller's number after: the matrices of a small table are too small for
    threads to pay, and under load they cost several times the step,
    docs/results/small-data.md), else ``None`` (torch's setting).
    """
    if epochs is None and n <= FULL_BATCH_ROWS:
        batch, total = n, int(max_steps or FULL_BATCH_STEPS)
        lr, stop, threads = FULL_BATCH_LR if lr is None else lr, tol, 1
    else:
        batch = min(batch_size, n)
        steps = int(max_steps or DEFAULT_STEPS)
        total = epochs or max(1, math.ceil(steps / math.ceil(n / batch)))
        lr, stop, threads = MINIBATCH_LR if lr is None else lr, None, None
    pretrain = max(1, round(0.1 * total)) if pretrain_epochs is None else int(pretrain_epochs)
    warmup = round(kl_warmup * total)
    return Budget(batch, int(total), float(lr), stop, CONVERGENCE_WINDOW, warmup, pretrain, threads)


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

    Categorical features: a column of a pandas DataFrame that is categorical, string or
    object (any non-numeric dtype) with :math:`k` levels becomes :math:`k` one-hot input
    columns, all levels (no reference level: one gate multiplies the :math:`k` columns'
    weights, so none is privileged), standardised as every input column. The :math:`k`
    columns form one group with one gate: the feature is kept or dropped as a whole and
    has one inclusion probability (the group selection of :cite:t:`yuan2006model`, with a gate per
    group as in :cite:t:`louizos2017bayesian{§3}`). Boolean columns are one 0/1 column. A missing
    value in a non-numeric column is refused (fill it with a level of its own). ``groups`` ties
    columns of ``X`` in the same way (a spline basis, dummy codes of your own). Everything the
    selector reports is per column of ``X`` (each column carrying its group's PIP and decision), so
    ``get_support()``, ``feature_names_in_`` and :meth:`transform` work as for any scikit-learn
    selector; per group see ``group_inclusion_probabilities_``. The rules decide per group
    (``"top-k"`` picks ``k`` groups, and the FDR is over groups).

    Prediction: :meth:`predict`, :meth:`predict_proba` (classification) and :meth:`score`
    (accuracy, or :math:`R^2` for regression, as scikit-learn's classifiers and
    regressors) use the fitted network's posterior predictive on the inputs encoded and
    standardised as in :meth:`fit` (with all features; the selection does not refit
    anything), so ``cross_val_score(FeatureSelector(), X, y)`` measures how well the
    network the PIPs come from predicts held-out data (the selector is not tagged as a
    classifier, so scikit-learn's default folds are not stratified: pass
    ``cv=StratifiedKFold(5)`` for that). :meth:`summary` is a DataFrame of the selection,
    :meth:`summary_dict` the same as plain data.

    Parameters
    ----------
    task
        ``"auto"`` (the default: :func:`infer_task`), ``"regression"`` or
        ``"classification"``.
    prior
        ``"spike-slab"`` (the default; PIP = :math:`q(\gamma_j = 1)`, :cite:p:`saha2024efficient`),
        ``"group-horseshoe"``, ``"regularized-horseshoe"`` or ``"group-nj"`` (PIP = the
        posterior probability :math:`P(\kappa_j < \tfrac12 \mid \text{data})` that the
        feature's shrinkage factor lets more than half of its signal through,
        :cite:p:`carvalho2010horseshoe`; :meth:`pyrocompress.Posterior.inclusion_probabilities`),
        or a :class:`~pyrocompress.priors.Prior` instance of one of those kinds.
    groups
        ``None`` (default: each column of ``X`` is its own group), or one label per column
        of ``X`` (strings or integers): columns with equal labels share one gate and are
        selected or dropped together, with one inclusion probability. A tied group is
        named by its label, a lone column by its own name.
    hidden
        Hidden-layer widths; ``()`` for a linear model. The default (50, 20) is the
        network measured on the :cite:t:`bai2020efficient` design
        (``benchmarks/selection/selection_bai.py``, docs/results/selection-bai.md: exactly the five
        relevant inputs in 4 of 5 seeds, 2026-11-23) and on the :cite:t:`sun2021consistent` design
        (docs/results/selection-study.md).
    guide
        The guide's family of the weights: ``"mean-field"`` or ``"conditional"``
        (Gaussian given their group's gate, :mod:`pyrocompress.priors.conditional`; for
        priors with a continuous gate), as in :func:`~pyrocompress.bayesianize`.
    epochs
        Passes over the data in minibatches of ``batch_size``, cosine-annealed, as many
        as given; ``None`` (default): the budget follows the data (:func:`training_budget`).
        Up to ``FULL_BATCH_ROWS`` = 2048 rows, every step takes the whole data set (a
        full batch) and training stops when the ELBO has converged
        (:func:`pyrocompress.fit` with ``tol`` and windows of ``CONVERGENCE_WINDOW`` = 100
        epochs: the relative change of the mean loss between two windows, plus two
        standard errors of its Monte-Carlo noise, is below ``tol``; then a cosine decay of
        the learning rate over one window), after at most ``max_steps`` =
        ``FULL_BATCH_STEPS`` = 4000 steps. A full batch because at that size a step's
        cost is mostly the fixed cost of tracing the Pyro programs, not the data
        (``docs/results/small-data.md`` times a step by batch size), so a minibatch step
        costs nearly as much and sees a fraction of the data. Above 2048 rows:
        ``max_steps`` = ``DEFAULT_STEPS`` = 12 000 minibatch steps, cosine-annealed, with
        no convergence stop — the budget of the measured selection studies
        (docs/results/selection-bai.md, selection-study.md), where the stop has not been
        validated.
    max_steps
        The largest number of optimisation steps of the default budget (``epochs=None``);
        ``None``: 4000 full-batch or 12 000 minibatch steps (see ``epochs``).
    tol
        Convergence tolerance of the full-batch default budget (see ``epochs``);
        ``None`` runs all ``max_steps``. With the default 5e-3, diabetes with 50 noise
        columns stops after 1300 of the 4000 steps and selects bmi, bp and s5; longer
        runs select noise columns too, ones the Lasso also keeps (the 12 000-step budget
        before this rule adds noise49, docs/results/select-speed.md at commit ac7ffa8;
        ten times the maximum without the stop adds noise21, noise43 and noise49 and
        reaches a lower loss: ``benchmarks/selection/select_speed.py``,
        docs/results/select-speed.md).
    batch_size, lr
        Minibatch size (when minibatches are used, see ``epochs``) and Adam learning
        rate; ``lr=None`` (default): ``FULL_BATCH_LR`` = 0.03 for full-batch steps
        (measured against 0.01 and 0.05 in docs/results/select-speed.md at commit
        ac7ffa8), 0.01 for
        minibatch steps.
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
        Fraction of the epochs over which the KL weight rises from 0 to 1
        :cite:p:`sonderby2016ladder`: early epochs fit the data with a weakened prior, so a
        feature's weights can grow before the KL term's pull towards exclusion is at full strength.
    rule
        ``"median"`` — the median-probability model, PIP :math:`\ge 0.5`
        :cite:p:`barbieri2004optimal`; ``"fdr"`` — the largest set
        :math:`\{j: \mathrm{PIP}_j \ge t\}` with estimated Bayesian FDR :math:`\le`
        ``fdr_level`` (:cite:t:`newton2004detecting`; tied PIPs are kept or dropped together);
        ``"top-k"`` — the ``k`` largest PIPs (ties broken by column order).
    fdr_level
        :math:`q` of the ``"fdr"`` rule, in [0, 1) (a Python or NumPy number).
    k
        Number of features of the ``"top-k"`` rule (a positive Python or NumPy integer;
        more than ``n_features_in_`` selects every feature); ``None`` for the other rules.
    random_state
        Seed of the initialisation and of SVI, an integer in [0, 2**32); ``None`` draws
        fresh randomness. It also seeds the posterior draws of :meth:`predict` (0 when
        ``None``), so that predictions are a function of the fitted model and ``X``.
    n_init
        Number of initialisations (default 1). With more, the network is fitted from
        ``n_init`` seeds (``random_state`` first, then seeds derived from it) and the fit with
        the highest ELBO (:func:`~pyrocompress.infer.elbo_estimate`, 200 draws) is kept, as
        :class:`~sklearn.cluster.KMeans` keeps its best ``n_init`` run. SVI's objective has
        local optima: on the :cite:t:`bai2020efficient` design an input that acts only
        through an interaction was switched off before the network learnt it in some fits
        (docs/results/selection-bai.md, docs/results/selection-study.md). A higher ELBO is a
        fit closer to the model's posterior, which is not always the sparser selection: on
        the diabetes table with 50 noise columns the better optimum keeps more of them
        (docs/results/select-speed.md). Time grows ``n_init``-fold.
    predict_samples
        Number of posterior draws of :meth:`predict`, :meth:`predict_proba` and
        :meth:`score` (at least 2; :func:`pyrocompress.predict`).
    device
        ``"cpu"`` or ``"cuda"`` (any :class:`torch.device` specification).
    progress
        Show the training progress bar.

    Attributes
    ----------
    inclusion_probabilities_ : ndarray of shape (n_features,)
        Posterior inclusion probability of each feature (column of ``X``): its group's.
    support_ : ndarray of bool, shape (n_features,)
        The selected features (also ``get_support()``); a group's columns together.
    group_inclusion_probabilities_ : ndarray of shape (n_groups,)
        Posterior inclusion probability of each group (of each column of ``X`` without
        ``groups``; a categorical column's one-hot columns are one group).
    groups_ : ndarray of int, shape (n_features,)
        Group of each column of ``X``, numbered ``0..n_groups-1`` in order of appearance.
    group_names_ : list of str
        Name of each group: its label in ``groups``, or its column's name.
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
        Loss and timing per epoch, and why training stopped (``history_.stop_reason``,
        ``history_.converged_at``).
    budget_ : Budget
        The budget used: batch size, (maximum) epochs, learning rate, ``tol``, window,
        KL warm-up and pre-training epochs (:func:`training_budget`).
    pretrain_history_ : History or None
        The pre-training's penalised loss per epoch (``None`` without pre-training).
    n_features_in_, feature_names_in_
        As in scikit-learn (names only when ``X`` is a DataFrame with string columns; in a
        :class:`~sklearn.pipeline.Pipeline` after a transformer, only with
        ``set_output(transform="pandas")``, since the transformer passes on a NumPy array).
    x_mean_, x_scale_ : ndarray of shape (n_inputs,)
        Mean and standard deviation of each input column of the network (the one-hot
        columns of a categorical feature each have their own), used to standardise them.
    fit_seconds_ : float
        Wall time of :meth:`fit`.
    elbo_ : float
        The kept fit's ELBO per example, in nats: an estimate from 200 draws seeded by
        ``random_state`` (0 when ``None``) of the objective SVI maximised
        (:func:`~pyrocompress.infer.elbo_estimate`, which says where that objective only
        approximates the ELBO). Fits of the same data compare by it.
    init_elbos_, init_elbo_ses_ : ndarray of shape (n_init,)
        Each initialisation's ELBO per example and its Monte-Carlo standard error (the
        same draws for every initialisation, so their differences are more precise).
    best_init_ : int
        Index of the kept initialisation (0 is the one seeded by ``random_state``).

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
    >>> sel.predict(X[:3]).shape  # the posterior predictive mean, in the units of y
    (3,)
    """

    def __init__(
        self,
        *,
        task: str = "auto",
        prior: str | Prior = "spike-slab",
        hidden: tuple[int, ...] = (50, 20),
        guide: str = "mean-field",
        groups=None,
        epochs: int | None = None,
        max_steps: int | None = None,
        tol: float | None = DEFAULT_TOL,
        batch_size: int = 256,
        lr: float | None = None,
        pretrain_epochs: int | None = None,
        pretrain_penalty: float = 1.5e-3,
        kl_warmup: float = 0.1,
        rule: str = "median",
        fdr_level: float = 0.1,
        k: int | None = None,
        random_state: int | None = 0,
        n_init: int = 1,
        predict_samples: int = 100,
        device: str = "cpu",
        progress: bool = False,
    ):
        self.task = task
        self.prior = prior
        self.hidden = hidden
        self.guide = guide
        self.groups = groups
        self.epochs = epochs
        self.max_steps = max_steps
        self.tol = tol
        self.batch_size = batch_size
        self.lr = lr
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_penalty = pretrain_penalty
        self.kl_warmup = kl_warmup
        self.rule = rule
        self.fdr_level = fdr_level
        self.k = k
        self.random_state = random_state
        self.n_init = n_init
        self.predict_samples = predict_samples
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
        if self.guide not in GUIDES:
            raise ValueError(f"guide must be one of {GUIDES}, got {self.guide!r}")
        self._check_budget_params()
        check("pretrain_epochs", self.pretrain_epochs)
        check("group_penalty", self.pretrain_penalty, label="pretrain_penalty")
        check("kl_warmup_fraction", self.kl_warmup, label="kl_warmup")
        check_groups(self.groups, None)  # its form; its length once X is read
        if self.rule not in _RULES:
            raise ValueError(f"rule must be one of {_RULES}, got {self.rule!r}")
        check("fdr_level", self.fdr_level)
        if self.rule == "top-k" and self.k is None:
            raise ValueError("k (required by rule='top-k') must be a positive integer, got None")
        check("k", self.k)
        if self.random_state is not None:
            check("seed", self.random_state, label="random_state")
        check("n_init", self.n_init)
        self._check_predict_samples()
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but CUDA is not available; use 'cpu'")
        return prior, tuple(int(h) for h in hidden)

    def _check_predict_samples(self) -> int:
        """Validate ``predict_samples`` and return it."""
        value = check("num_samples", self.predict_samples, label="predict_samples")
        if int(value) < 2:
            raise ValueError(
                "predict_samples must be at least 2 (the predictive's standard deviation "
                f"needs two draws), e.g. 100; got {value!r}"
            )
        return int(value)

    def _check_budget_params(self) -> None:
        """Validate ``epochs``, ``max_steps``, ``tol``, ``batch_size`` and ``lr``."""
        for name, value in (("epochs", self.epochs), ("max_steps", self.max_steps)):
            if value is not None:
                check(name, value)
        check("tol", self.tol)
        check("batch_size", self.batch_size)
        if self.lr is not None:
            check("lr", self.lr)

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
        X, y = self._encode(X, y)  # one-hot columns of non-numeric features; groups
        n, p = X.shape
        if n < 2:
            raise ValueError(f"got {n} sample; need at least 2 samples to fit")
        if self.task == "auto":
            self.task_, self.task_reason_ = infer_task(y)
        else:
            self.task_, self.task_reason_ = self.task, "set by the task parameter"

        self.x_mean_, scale = _column_moments(X)
        self.x_scale_ = np.where(scale > 0, scale, 1.0)
        Xt = torch.as_tensor((X - self.x_mean_) / self.x_scale_, dtype=torch.float32)
        _warn_lost_columns(X, Xt, encoding_names=self._encoding.column_names)
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

        encoding = self._encoding
        budget = training_budget(
            n,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            max_steps=self.max_steps,
            tol=self.tol,
            kl_warmup=self.kl_warmup,
            pretrain_epochs=self.pretrain_epochs,
        )
        self.budget_ = budget
        seeds = _init_seeds(seed, int(self.n_init))
        elbos: list[float] = []
        ses: list[float] = []
        best = -math.inf
        cpu = torch.device(self.device).type == "cpu"
        with intra_op_threads(budget.threads if cpu else None):
            for i, init_seed in enumerate(seeds):
                with seeded(init_seed):  # the network's initial weights
                    network = mlp([p, *hidden, out])
                module = bayesianize(
                    network,
                    prior=prior,
                    # its own copy: a Gaussian likelihood's noise scale is a parameter
                    likelihood=copy.deepcopy(likelihood),
                    feature_names=encoding.column_names,
                    groups=encoding.column_groups if encoding.tied else None,
                    guide=self.guide,
                    seed=init_seed,
                )
                pretrained = None
                if budget.pretrain_epochs:
                    pretrained = pretrain(
                        module,
                        (Xt, yt),
                        group_penalty=float(self.pretrain_penalty),
                        epochs=budget.pretrain_epochs,
                        batch_size=budget.batch_size,
                        lr=budget.lr,
                        seed=init_seed,
                        device=self.device,
                    )
                history = fit_svi(
                    module,
                    (Xt, yt),
                    epochs=budget.epochs,
                    batch_size=budget.batch_size,
                    lr=budget.lr,
                    kl_warmup=budget.kl_warmup,
                    tol=budget.tol,
                    window=budget.window,
                    seed=init_seed,
                    device=self.device,
                    progress=self.progress,
                )
                # every initialisation judged on the same draws (seeded by random_state)
                estimate = elbo_estimate(module, (Xt, yt), num_particles=200, seed=seed or 0)
                elbos.append(estimate.mean)
                ses.append(estimate.se)
                value = estimate.mean if math.isfinite(estimate.mean) else -math.inf
                if i == 0 or value > best:  # a NaN ELBO never wins over a finite one
                    best = value
                    self.module_, self.history_ = module, history
                    self.pretrain_history_, self.best_init_ = pretrained, i
        self.init_elbos_, self.init_elbo_ses_ = np.array(elbos), np.array(ses)
        self.elbo_ = float(self.init_elbos_[self.best_init_])
        first = next(iter(self.module_.bayesian_layers()))
        pip = Posterior(self.module_).inclusion_probabilities()[first]  # one per group
        self.group_inclusion_probabilities_ = pip.detach().double().cpu().numpy()
        self.groups_ = encoding.feature_groups
        self.group_names_ = list(encoding.group_names)
        group_support, self.estimated_fdr_, self.cutoff_ = self._select(
            self.group_inclusion_probabilities_
        )
        # each column of X takes its group's PIP and decision (get_support is per column)
        self.inclusion_probabilities_ = self.group_inclusion_probabilities_[self.groups_]
        self.support_ = group_support[self.groups_]
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _encode(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Validate ``X`` and ``y``; return the input columns of the network and the target.

        A DataFrame with non-numeric columns has them one-hot encoded (every level a
        column, the columns of a feature one group, :mod:`pyrocompress.selection.encoding`);
        any other ``X`` is converted to float64 as scikit-learn does. Sets
        ``n_features_in_`` and ``feature_names_in_`` (the columns of ``X``) and
        ``_encoding``, with the groups of ``groups``.
        """
        levels = None  # the one-hot levels of each column of a DataFrame with text columns
        if is_frame(X) and non_numeric_columns(X):
            validate_data(self, X, y, skip_check_array=True)  # names and n_features_in_
            blocks, levels = encode_frame(X, self._input_names(X.shape[1]))
            checked = check_X_y(
                np.concatenate(blocks, axis=1),
                y,
                dtype=np.float64,  # type: ignore[arg-type]  (a dtype is accepted)
                y_numeric=False,
                estimator=self,
            )
        else:
            checked = validate_data(self, X, y, dtype=np.float64, y_numeric=False)
        Xc, yc = cast(tuple[np.ndarray, np.ndarray], checked)
        names = self._input_names(Xc.shape[1] if levels is None else len(levels))
        self._encoding: InputEncoding = build_encoding(names, levels, self.groups)
        return Xc, yc

    def _input_names(self, p: int) -> list[str]:
        """Names of the ``p`` columns of ``X``: ``feature_names_in_``, or ``x0``, ``x1``..."""
        if hasattr(self, "feature_names_in_"):
            return [str(c) for c in getattr(self, "feature_names_in_")]  # noqa: B009
        return [f"x{j}" for j in range(p)]

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

    def transform(self, X):
        """Reduce ``X`` to the selected columns (features).

        A DataFrame given to a selector fitted on one with non-numeric columns comes back
        as the DataFrame of its selected columns, their dtypes kept (a categorical column
        stays categorical, ready for the user's own encoder): a NumPy array of mixed
        columns would be of no use. Any other ``X`` is reduced as scikit-learn does (a
        NumPy array, or a DataFrame under ``set_output(transform="pandas")``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The columns the selector was fitted on.

        Returns
        -------
        ndarray or DataFrame of shape (n_samples, n_selected)
            The selected columns.
        """
        check_is_fitted(self, "support_")
        if is_frame(X) and self._encoding.levels:
            validate_data(self, X, reset=False, skip_check_array=True)
            return self._transform(X)
        return super().transform(X)

    def _rule_labels(self) -> tuple[str, str]:
        """Return the rule as ``summary_dict()`` names it, and the label of its plot cut-off."""
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
        (:cite:t:`newton2004detecting`: the set is a PIP threshold), for ``"top-k"`` the ``k``-th
        largest PIP, for ``"median"`` 0.5 :cite:p:`barbieri2004optimal`; with nothing selected
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
            feature_names=list(self._encoding.feature_names),
            threshold=self.cutoff_,
            threshold_label=self._rule_labels()[1],
            selected=self.support_,
            ax=ax,
        )

    def summary(self) -> pd.DataFrame:
        """Return the selection as a DataFrame: one row per feature (column of ``X``).

        Returns
        -------
        pandas.DataFrame
            Columns ``feature`` (its name), ``pip`` (inclusion probability, its group's),
            ``selected`` (bool) and ``group`` (its group's name: the feature's own unless
            ``groups`` ties it to others), in the order of the columns of ``X``. The
            run-level results are in ``attrs``: ``rule`` (as :meth:`summary_dict` names
            it), ``estimated_fdr``, ``cutoff`` (``cutoff_``) and ``task``.

        Examples
        --------
        ``sel.summary().sort_values("pip", ascending=False)`` ranks the features;
        ``sel.summary().attrs["estimated_fdr"]`` is the selection's estimated FDR.
        """
        import pandas as pd

        check_is_fitted(self, "support_")
        table = pd.DataFrame(
            {
                "feature": list(self._encoding.feature_names),
                "pip": np.asarray(self.inclusion_probabilities_, dtype=np.float64),
                "selected": np.asarray(self.support_, dtype=bool),
                "group": [self.group_names_[g] for g in self.groups_],
            }
        )
        table.attrs.update(
            rule=self._rule_labels()[0],
            estimated_fdr=float(self.estimated_fdr_),
            cutoff=self.cutoff_,
            task=self.task_,
        )
        return table

    def summary_dict(self) -> dict:
        """Return the selection as plain data (what ``pyrocompress select`` writes).

        The dict holds ``features``, ``inclusion_probabilities`` (by name), ``selected``
        (names, in input order), ``rule`` and ``estimated_fdr``; JSON-ready.
        """
        check_is_fitted(self, "support_")
        names = list(self._encoding.feature_names)  # the columns of X, not the one-hot ones
        return {
            "features": names,
            "inclusion_probabilities": {
                name: float(p) for name, p in zip(names, self.inclusion_probabilities_)
            },
            "selected": [name for name, s in zip(names, self.support_) if s],
            "rule": self._rule_labels()[0],
            "estimated_fdr": self.estimated_fdr_,
        }

    def effects(self) -> dict:
        r"""Return each input column's effect, posterior mean and sd, for a linear model.

        Only with ``hidden=()`` (``--hidden 0``), where the network is
        :math:`f(x) = \sum_j \beta_j z_j + b` on the standardised columns
        :math:`z_j = (x_j - m_j) / s_j`: the effect of column :math:`j` is its effective
        weight :math:`\beta_j = g_j \tilde w_j` (gate times weight; :meth:`Posterior.weight_mean`
        and :meth:`~Posterior.weight_var`, the marginal posterior over the gate included,
        so a dropped column's effect is shrunk towards 0). It is given per unit of the
        column (divided by :math:`s_j`) and

        * regression: in units of ``y`` (times the target's sd), the change of the
          predicted mean per unit of :math:`x_j`;
        * binary classification: the change of the log-odds of ``classes_[1]`` per unit;
        * more classes: one effect per class, the change of that class's logit (logits are
          identified only up to a common shift, so compare classes, not the values).

        Its sign is the direction; the sd is the posterior (guide) sd, so a mean within
        about two sd of 0 has no clear direction. The mean-field guide ignores posterior
        correlations between columns, which correlated columns have.

        Returns
        -------
        dict
            ``{"units": str, "classes": list | None, "columns": {name: {"mean": m,
            "sd": s}}}``, with ``m`` and ``s`` numbers, or lists by class for more than two
            classes. Column names are those of the network's inputs (``name=level`` for a
            one-hot column).

        Raises
        ------
        ValueError
            If the selector has hidden layers (the effect of an input is then not one
            number).
        """
        check_is_fitted(self, "support_")
        layers = self.module_.bayesian_layers()
        if len(layers) != 1:
            raise ValueError(
                "effects() needs the linear model (hidden=(), --hidden 0): with hidden layers "
                "an input's effect depends on the other inputs"
            )
        name = next(iter(layers))
        post = Posterior(self.module_)
        mean = post.weight_mean()[name].detach().double().cpu().numpy()  # [out, p]
        sd = np.sqrt(post.weight_var()[name].detach().double().cpu().numpy())
        scale = np.asarray(self.x_scale_, dtype=np.float64)
        mean, sd = mean / scale, sd / scale
        if self.task_ == "regression":
            mean, sd = mean * self.y_scale_, sd * self.y_scale_
            units = "units of y per unit of the column"
        elif len(self.classes_) == 2:
            units = f"log-odds of class {_plain_label(self.classes_[1])!r} per unit of the column"
        else:
            units = "each class's logit per unit of the column"
        single = mean.shape[0] == 1
        columns = {}
        for j, column in enumerate(self._encoding.column_names):
            m, s = mean[:, j], sd[:, j]
            columns[column] = (
                {"mean": float(m[0]), "sd": float(s[0])}
                if single
                else {"mean": m.tolist(), "sd": s.tolist()}
            )
        classes = None if self.task_ == "regression" else [_plain_label(c) for c in self.classes_]
        return {"units": units, "classes": classes, "columns": columns}

    # ----------------------------------------------------------------- prediction
    def predictive(self, X) -> Prediction:
        """Return the posterior predictive of the fitted network at ``X``.

        ``X`` is encoded and standardised as in :meth:`fit` and handed to
        :func:`pyrocompress.predict` with ``predict_samples`` draws, seeded by
        ``random_state`` (0 when ``None``). The result is in the network's units: class
        probabilities in the order of ``classes_``, or the standardised target (see
        :meth:`predict` for the target's units).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The columns the selector was fitted on.

        Returns
        -------
        Prediction
            :class:`pyrocompress.analysis.Prediction`.
        """
        check_is_fitted(self, "support_")
        num_samples = self._check_predict_samples()
        Xt = self._network_inputs(X)
        seed = 0 if self.random_state is None else int(self.random_state)
        return posterior_predict(self.module_, Xt, num_samples=num_samples, seed=seed)

    def predict(self, X, return_std: bool = False):
        """Predict the target of ``X`` from the posterior predictive.

        Classification: the class of largest predictive probability
        (:meth:`predict_proba`). Regression: the predictive mean, in the units of ``y``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The columns the selector was fitted on (all of them, not the selected ones).
        return_std
            Regression only: also return the predictive standard deviation, in the units
            of ``y``, observation noise included (as
            :class:`~sklearn.gaussian_process.GaussianProcessRegressor`).

        Returns
        -------
        ndarray of shape (n_samples,), or (mean, std)
            The predictions (and their standard deviations).

        Raises
        ------
        ValueError
            For ``return_std=True`` with a classification (use :meth:`predict_proba`).
        """
        check_is_fitted(self, "support_")
        if return_std and self.task_ == "classification":
            raise ValueError(
                "return_std is for regression; for a classification, predict_proba gives "
                "the class probabilities and pyrocompress.predict their uncertainty"
            )
        pred = self.predictive(X)
        if self.task_ == "classification":
            return self.classes_[pred.mean.numpy().argmax(axis=1)]
        mean = pred.mean.double().numpy() * self.y_scale_ + self.y_mean_
        if return_std:
            return mean, pred.sd.double().numpy() * self.y_scale_
        return mean

    def _has_classes(self) -> bool:
        """Whether :meth:`predict_proba` applies (``available_if``: classification)."""
        if getattr(self, "task_", self.task) == "regression":
            raise AttributeError(
                "predict_proba is for classification; this selector does regression "
                "(predict(X, return_std=True) gives the predictive mean and sd)"
            )
        return True

    @available_if(_has_classes)
    def predict_proba(self, X) -> np.ndarray:
        """Return the posterior predictive class probabilities of ``X``.

        The mean over ``predict_samples`` posterior draws of each draw's class
        probabilities (softmax, or sigmoid, of the network's output).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The columns the selector was fitted on.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``; rows sum to 1.
        """
        check_is_fitted(self, "support_")
        probs = self.predictive(X).mean.double().numpy()
        return probs / probs.sum(axis=1, keepdims=True)

    def score(self, X, y, sample_weight=None) -> float:
        """Return the accuracy (classification) or :math:`R^2` (regression) on ``(X, y)``.

        As :meth:`sklearn.base.ClassifierMixin.score` and
        :meth:`sklearn.base.RegressorMixin.score`, of :meth:`predict`.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            True targets.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the samples.

        Returns
        -------
        float
            The score; higher is better.
        """
        check_is_fitted(self, "support_")
        predicted = self.predict(X)
        if self.task_ == "classification":
            return float(accuracy_score(y, predicted, sample_weight=sample_weight))
        return float(r2_score(y, predicted, sample_weight=sample_weight))

    def _network_inputs(self, X) -> torch.Tensor:
        """Return new inputs as the network's standardised input columns (as in fit).

        A selector fitted on a DataFrame with non-numeric columns needs such a DataFrame:
        its one-hot columns are those of the levels seen in fit (a level not seen then
        sets none of them, with a warning); any other ``X`` is checked as scikit-learn
        does (number and names of the columns, finite values).
        """
        encoding = self._encoding
        if encoding.levels:
            if not is_frame(X):
                raise ValueError(
                    "the selector was fitted on a DataFrame with non-numeric columns "
                    f"({', '.join(encoding.feature_names[j] for j in encoding.levels)}); "
                    "give a DataFrame with the same columns"
                )
            validate_data(self, X, reset=False, skip_check_array=True)
            columns = _onehot_known_levels(X, encoding.feature_names, encoding.levels)
        else:
            columns = validate_data(self, X, reset=False, dtype=np.float64)
        Xc = check_array(columns, dtype="float64")
        return torch.as_tensor((Xc - self.x_mean_) / self.x_scale_, dtype=torch.float32)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.non_deterministic = self.random_state is None
        return tags


def _init_seeds(seed: int | None, n_init: int) -> list[int | None]:
    """Seeds of ``n_init`` initialisations: ``seed`` first, then seeds derived from it.

    The derived seeds come from :class:`numpy.random.SeedSequence` (independent streams,
    not ``seed + 1``, which would be another replication's ``random_state``); with
    ``seed=None`` every initialisation draws fresh randomness.
    """
    if seed is None:
        return [None] * n_init
    children = np.random.SeedSequence(seed).spawn(n_init - 1)
    return [seed, *(int(c.generate_state(1)[0]) for c in children)]


def _column_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return each column's mean and standard deviation, without overflow or underflow.

    Each column is divided by its largest magnitude first, so that columns around 1e300
    (whose squares overflow float64) or 1e-200 (whose squares underflow) keep their
    spread: ``X.std(0)`` would give inf or 0 for them, and their standardised column
    would be all zeros.
    """
    X = np.asarray(X, dtype=np.float64)
    size = np.abs(X).max(axis=0) if X.size else np.zeros(X.shape[1])
    size = np.where(size > 0, size, 1.0)
    unit = X / size
    return unit.mean(0) * size, unit.std(0) * size


def _onehot_known_levels(X, names: list[str], levels: dict[int, list]) -> np.ndarray:
    """Return the input columns of DataFrame ``X`` with the one-hot ``levels`` of fit.

    Parameters
    ----------
    X
        A DataFrame with the columns the selector was fitted on.
    names
        The columns' names (for messages).
    levels
        The levels seen in fit of each one-hot encoded column, by position.

    Raises
    ------
    ValueError
        For a missing value in a one-hot encoded column (as in fit).
    """
    import warnings

    n = X.shape[0]
    blocks = []
    for j in range(X.shape[1]):
        col = X.iloc[:, j]
        if j not in levels:
            blocks.append(col.to_numpy(dtype=np.float64, na_value=np.nan).reshape(n, 1))
            continue
        missing = col.isna().to_numpy()
        if missing.any():
            rows = ", ".join(map(str, np.flatnonzero(missing)[:5].tolist()))
            raise ValueError(
                f"column {names[j]!r} of X has missing values (rows {rows}); fill them as "
                "for fit (X[col].fillna('missing'))"
            )
        values = col.to_numpy()
        onehot = np.stack([values == level for level in levels[j]], axis=1).astype(np.float64)
        unseen = ~onehot.any(axis=1)
        if unseen.any():
            found = sorted({str(v) for v in values[unseen]})
            warnings.warn(
                f"column {names[j]!r} of X has levels not seen in fit ({', '.join(found[:5])}); "
                "their rows set none of its one-hot columns",
                UserWarning,
                stacklevel=4,
            )
        blocks.append(onehot)
    return np.concatenate(blocks, axis=1)


def _warn_lost_columns(X: np.ndarray, Xt: torch.Tensor, encoding_names: list[str]) -> None:
    """Warn when a varying column is constant (or not finite) after standardisation."""
    import warnings

    varying = np.ptp(np.asarray(X, dtype=np.float64), axis=0) > 0 if len(X) else []
    lost = [
        encoding_names[j] if j < len(encoding_names) else str(j)
        for j in range(Xt.shape[1])
        if varying[j] and (not torch.isfinite(Xt[:, j]).all() or float(Xt[:, j].std()) == 0.0)
    ]
    if lost:
        warnings.warn(
            f"standardising the features lost {len(lost)} varying column(s) to float32 "
            f"overflow or underflow ({', '.join(lost[:5])}); rescale them",
            RuntimeWarning,
            stacklevel=3,
        )


def _plain_label(value: Any) -> Any:
    """Return a class label as a JSON-ready Python value."""
    return value.item() if hasattr(value, "item") else value
