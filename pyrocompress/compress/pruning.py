r"""Pruning: from posterior summaries to a pruning plan, a compact network and a report.

Rules (``prune(bnn, rule=...)``): the threshold rules of the registry in
:mod:`pyrocompress.compress.rules` (``"log_alpha"``, ``"pip"``, ``"fdr"``, ``"snr"``, and any
rule added with :func:`~pyrocompress.compress.register_rule`), each with ``threshold`` a
number or a dict from every layer name to its threshold (:cite:t:`louizos2017bayesian` set
−2.8, −3, −5 for LeNet-300-100's three layers by eye), and two search rules:

``"sparsity"``
    remove the fraction ``sparsity`` of all groups with the lowest score.
``"auto"``
    no eyeballing: the largest pruning whose validation error (or RMSE) stays within
    ``tolerance`` of the unpruned posterior-mean network. Groups are ranked by ``score``
    (group SNR by default); a global threshold is found by bisection over 200 quantiles
    of the score (the error is taken as monotone in the threshold), then each layer's
    threshold is raised further by bisection while the tolerance holds.

Scores (``score=``, for ``"sparsity"`` and ``"auto"``): ``"snr"``, ``"log_alpha"``,
``"pip"`` from the posterior; ``"output_snr"``, ``"kernel_norm"``, ``"variance_share"``
from moments propagated over the validation inputs (Gaussian prior; the self-compression of
:cite:t:`carannante2020self`; :func:`pyrocompress.analysis.unit_scores`).

Every layer keeps at least one group: a rule that would empty a layer keeps its
best-scoring group and warns.

Kept groups keep their marginal posterior-mean weights, so that pruning nothing gives
back the posterior-mean network; ``conditional=True`` uses the weights given inclusion
instead (spike-and-slab only differs; see :func:`prune`).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from pyrocompress.analysis import Posterior, unit_scores
from pyrocompress.compress.compact import (
    CompactInfo,
    build_compact,
    predict_batches,
    quantize_weights,
    weight_tensors,
)
from pyrocompress.compress.rules import PruningRule, pruning_rules
from pyrocompress.compress.rules import get_rule as get_pruning_rule
from pyrocompress.compress.surgery import (
    export_module,
    needs_graph_export,
    network_groups,
    tie_masks,
)
from pyrocompress.constraints import check, check_layer_names
from pyrocompress.infer import prepare_data
from pyrocompress.nn import BayesianNetwork

__all__ = [
    "REPORT_KEYS",
    "PruneResult",
    "PruningPlan",
    "group_scores",
    "make_plan",
    "prune",
    "pruning_curve",
]

MOMENT_SCORES = ("output_snr", "kernel_norm", "variance_share")
SCORES = ("snr", "log_alpha", "pip", *MOMENT_SCORES)

#: Keys every report has (``report.json``).
REPORT_KEYS = (
    "model",
    "prior",
    "dataset",
    "epochs",
    "seconds",
    "architecture_before",
    "architecture_after",
    "params_before",
    "params_after",
    "weight_fraction",
    "bits_per_layer",
    "compression_rate_params",
    "compression_rate_bits",
    "flops_before",
    "flops_after",
    "test_error_bayes",
    "test_error_compact",
    "file_bytes_dense",
    "quantized",
)


@dataclass
class PruningPlan:
    """Boolean group masks per layer (True = kept) and how they were chosen.

    Examples
    --------
    :func:`make_plan` (which :func:`~pyrocompress.prune` calls) makes one from a fitted
    network; here ``y`` depends on the first of four inputs only:

    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=20, batch_size=64, lr=0.05, tol=None, progress=False)
    >>> plan = pc.make_plan(bnn, "sparsity", sparsity=0.5)  # remove 6 of the 12 groups
    >>> plan.rule, plan.score, sum(plan.kept().values())
    ('sparsity', 'snr', 6)
    >>> plan.masks["1"]  # the inputs kept
    tensor([ True, False, False, False])
    >>> bnn.predict_point(X[:3], plan.masks).shape  # the pruned posterior-mean network
    torch.Size([3, 2])
    """

    masks: dict[str, torch.Tensor]
    rule: str
    score: str | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    validation_error_unpruned: float | None = None
    validation_error_pruned: float | None = None

    def kept(self) -> dict[str, int]:
        """Return the number of kept groups per layer."""
        return {k: int(v.sum()) for k, v in self.masks.items()}


@dataclass
class PruneResult:
    """The compact ``module``, the ``report`` dict and the ``plan`` behind them.

    ``mantissa_bits`` holds, by the state key of each layer's compact weight
    (``"1.weight"``), the layer's mantissa bits :math:`t`
    (:meth:`~pyrocompress.Posterior.bit_precision`): :meth:`quantized` rounds to their
    grids :math:`2^{-t}`, and :meth:`share` sizes codebooks from the rounding's error.
    ``unquantized`` is the compact network before its weights were rounded
    (``prune(..., quantize=True)``; ``None`` otherwise).

    Examples
    --------
    :func:`~pyrocompress.prune` returns one; here ``y`` depends on the first of four
    inputs only, and the automatic rule keeps that one:

    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=20, batch_size=64, lr=0.05, tol=None, progress=False)
    >>> result = pc.prune(bnn, validation=(X, y))
    >>> result.module[1]  # the compact network reads the kept input only
    SelectFeatures(1 of 4)
    >>> result.report["params_before"], result.report["params_after"] < 58
    (58, True)
    >>> torch.allclose(result.module(X), bnn.predict_point(X, result.plan.masks), atol=1e-6)
    True
    >>> sorted(result.mantissa_bits)  # each layer's precision, by its weight's state key
    ['2.weight', '4.weight']
    >>> result.quantized()(X).shape  # the weights rounded to those grids
    torch.Size([64, 2])
    >>> shared, sizes = result.share()  # weight sharing: one codebook per layer
    >>> sorted(sizes)
    ['2.weight', '4.weight']
    """

    module: nn.Module
    report: dict
    plan: PruningPlan
    info: CompactInfo
    mantissa_bits: dict[str, int] = field(default_factory=dict)
    unquantized: nn.Module | None = None

    @property
    def exact(self) -> nn.Module:
        """The compact network before any rounding (:attr:`module` unless quantised)."""
        return self.unquantized if self.unquantized is not None else self.module

    def quantized(self) -> nn.Module:
        """Return the compact network with each layer's weights on its fixed-point grid.

        :func:`~pyrocompress.compress.quantize_weights` of :attr:`exact` with
        :attr:`mantissa_bits` :cite:p:`louizos2017bayesian{§4}`: the network a packed file holds.
        """
        return quantize_weights(self.exact, self.mantissa_bits)

    def share(self, *, max_bits: int = 8) -> tuple[nn.Module, dict[str, int]]:
        """Return the weight-shared compact network and its codebook sizes.

        Each layer's weights (of :attr:`exact`) are replaced by k-means centres, as few as
        keep the mean squared change within that of rounding the layer to its
        fixed-point grid (:func:`~pyrocompress.compress.share_weights`; the weight sharing of the
        "maximum compression" of :cite:t:`louizos2017bayesian`, after :cite:t:`han2016deep`).

        Parameters
        ----------
        max_bits
            The largest index width, 1 to 16.

        Returns
        -------
        module : torch.nn.Module
            The shared network (a copy; :attr:`module` is unchanged).
        sizes : dict of str to int
            The codebook size of each layer's weight, by state key.
        """
        from pyrocompress.compress.sharing import share_weights

        exact = self.exact.state_dict()
        rounded = self.quantized().state_dict()
        budget = {  # the mean squared error of each layer's rounding
            key: float((exact[key] - rounded[key]).double().pow(2).mean())
            for key in self.mantissa_bits
        }
        return share_weights(self.exact, budget, max_bits=max_bits)


def group_scores(post: Posterior, score: str) -> dict[str, torch.Tensor]:
    """Per-group keep-scores, higher = more important: ``log SNR``, ``-log alpha`` or PIP."""
    if score == "snr":
        return {k: v.clamp_min(1e-30).log() for k, v in post.snr("group").items()}
    if score == "log_alpha":
        return {k: -v for k, v in post.log_alpha().items()}
    if score == "pip":
        return post.inclusion_probabilities()
    raise ValueError(f"score must be one of {SCORES}, got {score!r}")


def _ensure_nonempty(masks, scores, fixed=None) -> dict[str, torch.Tensor]:
    """Return ``masks`` within the fixed pruning ``fixed`` (if any), none of them empty.

    Each layer keeps at least its best-scoring allowed group.
    """
    out = {}
    for name, mask in masks.items():
        allowed = None if fixed is None else fixed[name].to(mask.device)
        if allowed is not None:
            mask = mask & allowed
        if not mask.any():
            score = scores[name]
            if allowed is not None:
                score = score.masked_fill(~allowed.to(score.device), -math.inf)
            best = int(score.argmax())
            warnings.warn(
                f"the pruning rule removes every unit of layer {name!r}; keeping its "
                f"best-scoring group ({best})",
                stacklevel=3,
            )
            mask = mask.clone()
            mask[best] = True
        out[name] = mask
    return out


def _threshold_rules() -> str:
    return ", ".join(map(repr, pruning_rules()))


def _layer_thresholds(threshold, rule: PruningRule, layers: list[str]) -> dict[str, float]:
    """Return ``threshold`` as one float per layer, validated for ``rule``.

    ``threshold`` is None, a number, or a dict naming every layer.
    """
    if threshold is None:
        values = dict.fromkeys(layers, rule.default_threshold)
    elif isinstance(threshold, dict):
        check_layer_names("a threshold dict", threshold, layers)
        values = {k: threshold[k] for k in layers}
    else:
        values = dict.fromkeys(layers, threshold)
    out: dict[str, float] = {}
    for name, t in values.items():
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise ValueError(f"threshold must be a finite number, got {t!r} for layer {name!r}")
        problem = rule.check(float(t))
        if problem is not None:
            raise ValueError(problem)
        out[name] = float(t)
    return out


def _kept_params(bnn: BayesianNetwork, masks) -> int:
    """Weights left by the masks alone (for ranking candidate plans)."""
    total = 0
    for name, layer in bnn.bayesian_layers().items():
        sizes = torch.tensor(layer.spec.group_sizes)  # groups of tied columns differ in size
        total += int(sizes[masks[name].to(torch.bool).cpu()].sum())
    return total


def make_plan(
    bnn: BayesianNetwork,
    rule: str = "auto",
    *,
    threshold: float | dict[str, float] | None = None,
    sparsity: float | None = None,
    validation=None,
    tolerance: float = 0.01,
    score: str = "snr",
    conditional: bool = False,
) -> PruningPlan:
    r"""Choose which groups to keep; see the module docstring for the rules.

    On a network restricted by :meth:`~pyrocompress.nn.BayesianNetwork.restrict`, the
    groups it removed stay removed whatever the rule says.

    Examples
    --------
    The automatic rule, the largest pruning whose validation error stays within
    ``tolerance`` of the unpruned network's; here ``y`` depends on the first of four
    inputs only:

    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=20, batch_size=64, lr=0.05, tol=None, progress=False)
    >>> plan = pc.make_plan(bnn, "auto", validation=(X, y), tolerance=0.01)
    >>> plan.masks["1"]  # the inputs kept
    tensor([ True, False, False, False])
    >>> plan.validation_error_pruned <= plan.validation_error_unpruned + 0.01
    True

    A threshold rule, with one threshold per layer (``log_alpha``: keep the groups with
    :math:`\log\alpha` below it):

    >>> plan = pc.make_plan(bnn, "log_alpha", threshold={"1": 0.0, "3": 1.0})
    >>> plan.rule, plan.thresholds, plan.kept()
    ('log_alpha', {'1': 0.0, '3': 1.0}, {'1': 4, '3': 8})
    """
    rules = ("auto", "sparsity", *pruning_rules())
    if rule not in rules:
        raise ValueError(f"rule must be one of {rules}, got {rule!r}")
    post = Posterior(bnn)
    fixed = bnn.group_masks()
    threshold_rule = get_pruning_rule(rule)
    if threshold_rule is not None:
        return _threshold_plan(post, threshold_rule, threshold, fixed)
    if threshold is not None:
        raise ValueError(f"rule={rule!r} takes no threshold (it is for {_threshold_rules()})")
    if rule == "sparsity":
        if sparsity is None:
            raise ValueError("rule='sparsity' needs sparsity, the fraction of groups to remove")
        check("sparsity", sparsity)
    scores = _scores(bnn, post, score, validation)
    if rule == "sparsity":
        flat = torch.cat([v.flatten() for v in scores.values()])
        n_drop = int(round(float(sparsity) * flat.numel()))  # type: ignore[arg-type]
        t = flat.sort().values[n_drop].item() if n_drop > 0 else -math.inf
        masks = {k: v >= t for k, v in scores.items()}
        return PruningPlan(_ensure_nonempty(masks, scores, fixed), rule, score, {"all": t})
    if validation is None:
        raise ValueError("rule='auto' needs validation data: prune(..., validation=(X, y))")
    check("tolerance", tolerance)
    X, y = prepare_data(bnn, validation, "validation", bnn.device)
    return _AutoSearch(bnn, scores, fixed, X, y, tolerance, conditional).plan(score)


def _threshold_plan(post: Posterior, rule: PruningRule, threshold, fixed) -> PruningPlan:
    """Return the plan of a registered threshold rule."""
    th = _layer_thresholds(threshold, rule, post.layer_names)
    statistic = rule.statistic(post)
    masks = {k: rule.keep(v, th[k]) for k, v in statistic.items()}
    scores = rule.scores(post)
    shown = {"all": th[post.layer_names[0]]} if not isinstance(threshold, dict) else th
    score = rule.score or rule.name
    return PruningPlan(_ensure_nonempty(masks, scores, fixed), rule.name, score, shown)


def _scores(bnn: BayesianNetwork, post: Posterior, score: str, validation):
    """Per-group keep-scores for the search rules: posterior or propagated-moment scores."""
    if score not in MOMENT_SCORES:
        return group_scores(post, score)
    if validation is None:
        raise ValueError(
            f"score={score!r} is computed from moments propagated over data: pass validation=(X, y)"
        )
    X, _ = prepare_data(bnn, validation, "validation", bnn.device)
    return unit_scores(bnn, X)[score]


class _AutoSearch:
    """The automatic rule: the largest pruning within ``tolerance`` of the validation error.

    A global threshold on the scores is found by bisection over 200 quantiles (the error
    taken as monotone in the threshold), then each layer's threshold is raised further by
    bisection while the tolerance holds.
    """

    def __init__(self, bnn: BayesianNetwork, scores, fixed, X, y, tolerance, conditional):
        self.bnn, self.scores, self.fixed = bnn, scores, fixed
        self.X, self.y, self.conditional = X, y, conditional
        self.base = bnn.point_error(X, y)
        self.limit = self.base + tolerance + 1e-12

    def evaluate(self, thresholds: dict[str, float]):
        """Return the validation error of the plan at ``thresholds``, and its masks."""
        masks = {k: v >= thresholds[k] for k, v in self.scores.items()}
        masks = _ensure_nonempty_quiet(masks, self.scores, self.fixed)
        err = self.bnn.point_error(self.X, self.y, masks, conditional=self.conditional)
        return err, masks

    def search(self, candidates: list[float], make) -> tuple[dict, float, dict] | None:
        """Bisection for the largest feasible threshold (feasibility taken as monotone)."""
        lo, hi, found = 0, len(candidates) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            th = make(candidates[mid])
            err, masks = self.evaluate(th)
            if err <= self.limit:
                found, lo = (th, err, masks), mid + 1
            else:
                hi = mid - 1
        return found

    def plan(self, score: str) -> PruningPlan:
        """Search globally, then per layer; return the plan."""
        scores = self.scores
        flat = torch.cat([v.flatten() for v in scores.values()])
        quantiles = torch.linspace(0.0, 0.995, 200, dtype=flat.dtype, device=flat.device)
        best = {k: -math.inf for k in scores}
        best_err, best_masks = self.evaluate(best)
        candidates = sorted(set(torch.quantile(flat, quantiles).tolist()))
        found = self.search(candidates, lambda t: {k: t for k in scores})
        if found is not None:
            best, best_err, best_masks = found
        for name in scores:  # per-layer refinement: raise each layer's threshold further
            above = [t for t in torch.quantile(scores[name], quantiles).tolist() if t > best[name]]
            found = self.search(sorted(set(above)), lambda t, n=name, b=best: dict(b, **{n: t}))
            kept = _kept_params(self.bnn, best_masks)
            if found is not None and _kept_params(self.bnn, found[2]) <= kept:
                best, best_err, best_masks = found
        self._warn_collapse(best_masks)
        return PruningPlan(
            best_masks,
            "auto",
            score,
            {k: float(v) for k, v in best.items()},
            validation_error_unpruned=self.base,
            validation_error_pruned=best_err,
        )

    def _warn_collapse(self, masks: dict[str, torch.Tensor]) -> None:
        """Warn when the network is no better than chance, or a layer keeps one unit.

        Chance is the error of always predicting the commonest validation class; a fit
        that diverged quietly (a learning rate too large) ends there, and the rule then
        prunes the network down to one unit a layer without losing anything.
        """
        if self.bnn.likelihood.metric_name == "error" and self.y.numel():
            counts = torch.unique(self.y, return_counts=True)[1]
            chance = 1.0 - float(counts.max()) / self.y.numel()
            if self.base >= chance - 0.5 / self.y.numel():  # float32 error rates
                warnings.warn(
                    f"the posterior-mean network's validation error {self.base:.3f} is no "
                    f"better than chance ({chance:.3f}, always the commonest class): the "
                    "fit has collapsed; train with a smaller learning rate",
                    RuntimeWarning,
                    stacklevel=4,
                )
        layers = self.bnn.bayesian_layers()
        first = next(iter(layers))  # its input groups are features: one kept is a selection
        single = [
            k
            for k, m in masks.items()
            if int(m.sum()) == 1 and m.numel() > 1 and (k != first or layers[k].groups_on_outputs)
        ]
        if single:
            warnings.warn(
                f"the automatic rule keeps a single unit of layer(s) {', '.join(single)}: "
                "the network hangs on one path; check the fit before using it",
                RuntimeWarning,
                stacklevel=4,
            )


def _ensure_nonempty_quiet(masks, scores, fixed=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _ensure_nonempty(masks, scores, fixed)


def prune(
    bnn: BayesianNetwork,
    rule: str = "auto",
    *,
    validation=None,
    test=None,
    threshold: float | dict[str, float] | None = None,
    sparsity: float | None = None,
    tolerance: float = 0.01,
    score: str = "snr",
    quantize: bool = False,
    example_input: torch.Tensor | None = None,
    metadata: dict | None = None,
    conditional: bool = False,
) -> PruneResult:
    r"""Prune a fitted network into a smaller plain network with a report.

    A chain of layers in an ``nn.Sequential`` becomes a smaller ``nn.Sequential``
    (:func:`~pyrocompress.compress.build_compact`, which also selects input features and
    flattened positions); any other traced architecture — residual additions,
    concatenations, BatchNorms, depthwise convolutions, a torchvision model — becomes an
    instance of the user's own class with fewer channels, the decisions of coupled
    channels tied (:mod:`pyrocompress.compress.surgery`). In both cases
    ``result.module(x)`` equals ``bnn.predict_point(x, result.plan.masks)``.

    Parameters
    ----------
    bnn
        A fitted :class:`~pyrocompress.nn.BayesianNetwork`.
    rule, threshold, sparsity, tolerance, score
        The pruning rule and its settings (module docstring).
    validation
        ``(X, y)``; required by ``rule="auto"``, also gives the example input.
    test
        Optional ``(X, y)``: the report's ``test_error_bayes`` (unpruned posterior-mean
        network) and ``test_error_compact``; ``None`` in the report without it.
    quantize
        Round the compact network's weights to each layer's fixed-point grid
        :math:`2^{-t}` (:cite:t:`louizos2017bayesian{§4}`;
        :func:`~pyrocompress.compress.quantize_weights`), so that :func:`~pyrocompress.save_packed`
        stores them as integer codes (about the bits the report counts; see
        :func:`~pyrocompress.compress.quantize_weights`); ``result.unquantized`` keeps the network
        before rounding, and the report's ``test_error_compact`` is the quantised network's. The
        packed file of :func:`~pyrocompress.deployable_files` quantises on its own
        (:meth:`PruneResult.quantized`), whatever this says.
    example_input
        An input for shape propagation when neither validation nor test data is given.
    metadata
        Extra report entries (``model``, ``prior``, ``dataset``, ``epochs``, ``seconds``).
    conditional
        Weights of the kept groups in the candidates of the automatic rule and in the
        compact network: marginal posterior means :math:`E[g]\,E[\tilde W]` (default,
        the weights of the posterior-mean network the automatic rule compares against), or
        means given inclusion (``True``). They differ only for the spike-and-slab prior:
        trained with the gates marginalised, a group with inclusion probability
        :math:`\pi` acts through :math:`\pi\mu`, and switching every kept group fully on
        (:math:`\mu`) gives a different network unless :math:`\pi \approx 1`
        (:func:`~pyrocompress.compress.build_compact`).

    Returns
    -------
    PruneResult
        ``.module`` (compact network, eval mode, on CPU), ``.report`` (dict with
        :data:`REPORT_KEYS` and more), ``.plan``, ``.info``.

    Examples
    --------
    >>> import torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=3, batch_size=32, tol=None, progress=False)
    >>> result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=X)
    >>> result.report["architecture_before"], len(result.report["architecture_after"])
    ([4, 8, 2], 3)
    >>> torch.allclose(result.module(X), bnn.predict_point(X, result.plan.masks), atol=1e-6)
    True
    """
    if not isinstance(bnn, BayesianNetwork):
        raise TypeError("prune expects the BayesianNetwork returned by pyrocompress.bayesianize")
    start = time.perf_counter()
    if test is not None:
        test = prepare_data(bnn, test, "test")
    plan = make_plan(
        bnn,
        rule,
        threshold=threshold,
        sparsity=sparsity,
        validation=validation,
        tolerance=tolerance,
        score=score,
        conditional=conditional,
    )
    for data in (example_input, validation, test):
        if data is not None:
            example = data if isinstance(data, torch.Tensor) else torch.as_tensor(data[0])
            break
    else:
        raise ValueError("prune needs an input shape: pass validation, test or example_input")
    example = plain_input(bnn, example)
    post = Posterior(bnn)
    graph_export = needs_graph_export(bnn)
    if graph_export:  # tie the decisions of coupled channels before the bits are read
        plan.masks = tie_masks(bnn, plan.masks, network_groups(bnn, example))
    bits = post.bit_precision(plan.masks)
    if graph_export:
        compact, info, _ = export_module(bnn, plan.masks, example, conditional=conditional)
    else:
        compact, info = build_compact(bnn, plan.masks, example, conditional=conditional)
    mantissa = {key: bits[n].mantissa for n, key in info.weight_keys.items()}
    exact = compact
    if quantize:
        compact = quantize_weights(compact, mantissa)
    report = _report(bnn, plan, info, bits, compact, test, metadata or {})
    report["quantized"] = bool(quantize)
    report["prune_seconds"] = time.perf_counter() - start
    return PruneResult(compact, report, plan, info, mantissa, exact if quantize else None)


def plain_input(bnn: BayesianNetwork, x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` as the plain network reads it: indices for an Embedding, else floats."""
    layers = list(bnn.bayesian_layers().values())
    if layers and layers[0].spec.kind == "embedding":
        return x.long()
    return x.float()


def _report(bnn: BayesianNetwork, plan, info: CompactInfo, bits, compact, test, metadata) -> dict:
    names = list(bnn.bayesian_layers())
    bits_list = [bits[n].total for n in names]
    # storage: kept weights at their layer's bits, every other parameter (biases, norms)
    # at 32 bits
    if info.layer_weights is not None:
        kept = info.layer_weights
    else:
        kept = {n: w.numel() for n, (w, _) in zip(names, weight_tensors(compact), strict=True)}
    kept_bits = sum(kept[n] * bits[n].total for n in names)
    kept_bits += 32 * (info.params_after - sum(kept.values()))
    error_bayes = error_compact = None
    if test is not None:
        device = bnn.device
        X, y = plain_input(bnn, torch.as_tensor(test[0])), torch.as_tensor(test[1])
        error_bayes = bnn.point_error(X.to(device), y.to(device))
        error_compact = bnn.likelihood.error(predict_batches(compact, X), y)
    report = {
        "model": metadata.get("model"),
        "prior": metadata.get(
            "prior", "+".join(dict.fromkeys(p.key for p in bnn.distinct_priors()))
        ),
        "dataset": metadata.get("dataset"),
        "epochs": metadata.get("epochs"),
        "seconds": metadata.get("seconds"),
        "architecture_before": info.architecture_before,
        "architecture_after": info.architecture_after,
        "params_before": info.params_before,
        "params_after": info.params_after,
        "weight_fraction": info.weights_after / info.weights_before,
        "bits_per_layer": bits_list,
        "compression_rate_params": info.params_before / info.params_after,
        "compression_rate_bits": 32.0 * info.params_before / kept_bits,
        "file_bytes_dense": 4 * info.params_before,
        "compression_rate_weights": info.weights_before / info.weights_after,
        "flops_before": info.flops_before,
        "flops_after": info.flops_after,
        "test_error_bayes": error_bayes,
        "test_error_compact": error_compact,
        "metric": bnn.likelihood.metric_name,
        "rule": plan.rule,
        "score": plan.score,
        "thresholds": plan.thresholds,
        "validation_error_unpruned": plan.validation_error_unpruned,
        "validation_error_pruned": plan.validation_error_pruned,
        "layers": names,
        "mantissa_bits": [bits[n].mantissa for n in names],
        "exponent_bits": [bits[n].exponent for n in names],
        "kept_inputs": info.kept_inputs.get(names[0]),
        "notes": (
            "params count weights and biases; compression_rate_weights counts weights only "
            "(as Louizos et al. 2017); compression_rate_bits stores kept weights at their "
            "layer's 1 + exponent + mantissa bits and biases at 32 bits"
        ),
    }
    for k, v in metadata.items():
        report.setdefault(k, v)
    return report


def pruning_curve(
    bnn: BayesianNetwork,
    validation,
    *,
    score: str = "snr",
    fractions: list[float] | None = None,
) -> list[tuple[float, float]]:
    """Return the pruning curve of ``bnn`` on ``validation``.

    The curve is the validation error (or RMSE) of the masked posterior-mean network as
    groups are removed. Groups are removed in order of ``score`` (globally); returns
    ``(fraction of weights removed, metric)`` pairs.
    """
    fractions = fractions if fractions is not None else [i / 20 for i in range(20)]
    device = bnn.device
    X, y = validation
    X, y = torch.as_tensor(X).float().to(device), torch.as_tensor(y).to(device)
    total = sum(math.prod(m.spec.weight_shape) for m in bnn.bayesian_layers().values())
    curve = []
    for f in fractions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # very sparse plans keep one unit per layer
            plan = make_plan(bnn, "sparsity", sparsity=f, score=score)
        err = bnn.point_error(X, y, plan.masks)
        curve.append((1.0 - _kept_params(bnn, plan.masks) / total, err))
    return curve
