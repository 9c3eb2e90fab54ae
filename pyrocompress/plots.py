"""Plots (matplotlib). Each function takes an optional Axes and returns the Figure.

Conventions shared by the plots:

* kept groups are green (``C2``), pruned ones red (``C3``), and legends count them;
* a dashed line marks a threshold only where the pruning rule is a threshold on the
  plotted quantity (:func:`plan_thresholds`); the rule itself is said in words by
  :func:`describe_rule` (the automatic rule prunes by a tolerance on the validation
  error, so its plots colour what it kept rather than draw a PIP of 0.5);
* layers are named by their path in the module tree, with their type and size
  (:func:`layer_labels`: ``"layer 1: Linear 784→300"``, ``"features.3: Conv2d 20→50 (5×5)"``);
* a figure is at most :data:`MAX_WIDTH` inches wide whatever the number of layers or
  features: hundreds of features are shown as the top ``k`` by PIP with their names and
  the rest summarised (:func:`plot_pip_stem`), a forest plot of many groups shows the
  most and the least included and says so (:func:`plot_forest`);
* axis limits come from the bulk of the values (:func:`robust_range`), and the values
  beyond them are drawn at the edge and counted in the axis label.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from xarray import DataTree

    from pyrocompress.compress import PruningPlan
    from pyrocompress.infer import History
    from pyrocompress.nn import BayesianNetwork

__all__ = [
    "MAX_WIDTH",
    "QUANTITIES",
    "describe_rule",
    "layer_labels",
    "plan_thresholds",
    "plot_architecture",
    "plot_bits",
    "plot_forest",
    "plot_group_histograms",
    "plot_input_importance",
    "plot_loss",
    "plot_pip_stem",
    "plot_pruning_curve",
    "robust_range",
]

#: The widest figure any function here makes, in inches (1,100 pixels at 100 dpi).
MAX_WIDTH = 11.0
#: Colours of kept and pruned groups.
KEPT, PRUNED = "C2", "C3"
#: The quantities a pruning threshold can be drawn on (:func:`plan_thresholds`).
QUANTITIES = ("log_alpha", "log_snr", "pip")
#: The rules that search for their thresholds (:func:`pyrocompress.make_plan`).
SEARCH_RULES = ("auto", "sparsity")


def _figure(ax: Axes) -> Figure:
    """Return the figure ``ax`` is drawn in (the top-level one for a subfigure's axes)."""
    fig = ax.get_figure(root=True)
    if fig is None:  # an Axes is made in a figure; only a detached one has none
        raise ValueError("ax does not belong to a figure")
    return fig


def _axes(ax: Axes | None, **kwargs: Any) -> tuple[Figure, Axes]:
    """Return ``ax`` and its figure, or a new figure and axes made with ``kwargs``."""
    if ax is None:
        fig, new_ax = plt.subplots(**kwargs)
        return fig, new_ax
    return _figure(ax), ax


def _numpy(values: ArrayLike | torch.Tensor) -> np.ndarray:
    """Return ``values`` as a flat float64 NumPy array (a tensor detached, on the CPU)."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().flatten().numpy()
    return np.asarray(values, dtype=np.float64).flatten()


def _suptitle(fig: Figure, text: str) -> None:
    """Set a figure title, wrapped to the figure's width (about 14 characters an inch)."""
    width = max(30, int(fig.get_size_inches()[0] * 14))
    lines = [textwrap.fill(line, width) for line in text.split("\n")]
    fig.suptitle("\n".join(lines), fontsize=9)


def _short_name(name: str) -> str:
    """``"1"`` -> ``"layer 1"`` (an ``nn.Sequential`` index); a module path stays as it is."""
    return f"layer {name}" if name.replace(".", "").isdigit() else name


def layer_labels(bnn: BayesianNetwork) -> dict[str, str]:
    """Return a label for each Bayesian layer: its module path, type and size.

    A layer of an ``nn.Sequential`` is named by its index, which says little on its own;
    the label adds the layer's type and its inputs → outputs (and kernel), e.g.
    ``"layer 1: Linear 784→300"``, ``"fc1: Linear 784→300"``,
    ``"features.3: Conv2d 20→50 (5×5)"``.

    Parameters
    ----------
    bnn
        The network.

    Returns
    -------
    dict of str to str
        The labels, by layer name (the keys of
        :meth:`~pyrocompress.nn.BayesianNetwork.bayesian_layers`).
    """
    out = {}
    for name, layer in bnn.bayesian_layers().items():
        n_out, n_in, *kernel = layer.spec.weight_shape
        kind = type(layer).__name__.removeprefix("Bayesian")
        size = f" ({'×'.join(map(str, kernel))})" if kernel else ""
        out[name] = f"{_short_name(name)}: {kind} {n_in}→{n_out}{size}"
    return out


def _label(labels: dict[str, str] | None, name: str) -> str:
    return labels[name] if labels is not None and name in labels else _short_name(name)


def robust_range(
    values: ArrayLike | torch.Tensor, *, include: Iterable[float] = ()
) -> tuple[float, float]:
    """Return axis limits that show the bulk of ``values``, not their far outliers.

    The limits are the 2 % and 98 % quantiles of the finite values, each moved out by
    the width between them, and no further than the smallest and largest value: only a
    value more than that width beyond the bulk is left out (a group whose SNR is 0 has a
    log SNR of −∞, or −69 when clamped to 1e-30, and would squash every other group
    into one bar). The finite numbers of ``include`` (a threshold) are always inside.

    Parameters
    ----------
    values
        The values.
    include
        Values the limits must contain.

    Returns
    -------
    tuple of float
        ``(low, high)`` with ``low < high``; ``(0, 1)`` when no value is finite.
    """
    v = _numpy(values)
    v = v[np.isfinite(v)]
    extra = [float(t) for t in include if t is not None and math.isfinite(t)]
    if v.size == 0 and not extra:
        return 0.0, 1.0
    if v.size:
        q_lo, q_hi = (float(q) for q in np.quantile(v, [0.02, 0.98]))
        width = q_hi - q_lo
        lo, hi = max(float(v.min()), q_lo - width), min(float(v.max()), q_hi + width)
    else:
        lo, hi = math.inf, -math.inf
    lo, hi = min([lo, *extra]), max([hi, *extra])
    if hi <= lo:  # one value: a unit interval around it
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _outside_note(v: np.ndarray, lo: float, hi: float, noun: str = "groups") -> list[str]:
    """Phrases counting the values beyond ``[lo, hi]`` and the infinite or missing ones."""
    notes = []
    finite = np.isfinite(v)
    for count, text in (
        (int((v[finite] < lo).sum()), f"< {lo:.3g} in the first bar"),
        (int((v[finite] > hi).sum()), f"> {hi:.3g} in the last bar"),
        (int(np.isneginf(v).sum()), "at −∞, not drawn"),
        (int(np.isposinf(v).sum()), "at +∞, not drawn"),
        (int(np.isnan(v).sum()), "undefined (NaN), not drawn"),
    ):
        if count:
            notes.append(f"{count} {noun} {text}")
    return notes


# ------------------------------------------------------------------------ pruning rules


def _same(t: float) -> float:
    return t


def _negate(t: float) -> float:
    return -t


def _log(t: float) -> float:
    return math.log(t) if t > 0 else -math.inf


#: For each plotted quantity, the threshold rules (by name) that are a threshold on it,
#: and the map from the rule's threshold to the quantity's axis.
_RULES_ON_AXIS: dict[str, dict[str, Callable[[float], float]]] = {
    "log_alpha": {"log_alpha": _same},  # keep log α < t
    "log_snr": {"snr": _log},  # keep SNR ≥ t
    "pip": {"pip": _same},  # keep PIP ≥ t (median-probability model at 0.5)
}
#: For each plotted quantity, the scores of the search rules that are it (up to a map):
#: a search rule keeps the groups whose score is at least its threshold.
_SCORES_ON_AXIS: dict[str, dict[str, Callable[[float], float]]] = {
    "log_alpha": {"log_alpha": _negate},  # the score is −log α
    "log_snr": {"snr": _same},  # the score is log SNR
    "pip": {"pip": _same},
}
#: How each threshold rule keeps a group, ``{t}`` its threshold.
_RULE_TEXT = {
    "log_alpha": "keep the groups with log α < {t}",
    "pip": "keep the groups with PIP ≥ {t}",
    "fdr": "keep, in each layer, the most groups whose Bayesian FDR is ≤ {t}",
    "snr": "keep the groups with SNR ≥ {t}",
}
#: The search rules' scores, in words.
_SCORE_TEXT = {
    "snr": "group SNR",
    "log_alpha": "−log α",
    "pip": "inclusion probability",
    "output_snr": "output SNR",
    "kernel_norm": "kernel norm",
    "variance_share": "variance share",
}


def _plan_threshold(plan: PruningPlan, name: str) -> float | None:
    """Return the threshold of layer ``name`` (one per layer, or one as ``"all"``)."""
    return plan.thresholds.get(name, plan.thresholds.get("all"))


def plan_thresholds(plan: PruningPlan, quantity: str) -> dict[str, float]:
    """Return the thresholds of ``plan`` on the axis of ``quantity``, by layer.

    A threshold is returned only where the plan's rule is a threshold on that quantity:
    ``"log_alpha"`` on log α, ``"snr"`` on SNR (its log for the ``"log_snr"`` axis),
    ``"pip"`` on the PIP; and for the search rules (``"auto"``, ``"sparsity"``), the
    threshold they found on their score when the score is the quantity (``score="snr"``:
    log SNR; ``"log_alpha"``: −log α, so the line is at minus the threshold; ``"pip"``).
    The Bayesian-FDR rule (a data-dependent cut-off), a score propagated from moments, or
    a rule registered by a user have none, and neither has a layer whose threshold is
    infinite (the automatic rule prunes nothing there). The masks of the plan, not these
    lines, say what was kept: a layer that a rule would empty keeps its best group.

    Parameters
    ----------
    plan
        The :class:`~pyrocompress.compress.PruningPlan` (``prune(...).plan``).
    quantity
        One of :data:`QUANTITIES`: ``"log_alpha"``, ``"log_snr"`` or ``"pip"``.

    Returns
    -------
    dict of str to float
        The thresholds to draw, by layer name; empty when none is to be drawn.

    Raises
    ------
    ValueError
        If ``quantity`` is not one of :data:`QUANTITIES`.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {', '.join(QUANTITIES)}; got {quantity!r}")
    search = plan.rule in SEARCH_RULES
    table = _SCORES_ON_AXIS if search else _RULES_ON_AXIS
    convert = table[quantity].get((plan.score if search else plan.rule) or "")
    if convert is None:
        return {}
    out = {}
    for name in plan.masks:
        t = _plan_threshold(plan, name)
        if t is not None and math.isfinite(t) and math.isfinite(convert(float(t))):
            out[name] = convert(float(t))
    return out


def describe_rule(plan: PruningPlan, *, metric: str = "error") -> str:
    """Return the pruning rule of ``plan`` in words, for a plot's title.

    Parameters
    ----------
    plan
        The :class:`~pyrocompress.compress.PruningPlan`.
    metric
        The validation metric's name (``"error"``, ``"rmse"``).

    Returns
    -------
    str
        E.g. ``"rule auto: the most pruning whose validation error stays within the
        tolerance (0.0364 → 0.0464); groups ranked by group SNR"`` or ``"rule pip: keep
        the groups with PIP ≥ 0.5 (the median-probability model)"``.
    """
    score = _SCORE_TEXT.get(plan.score or "", plan.score or "score")
    if plan.rule == "auto":
        text = f"rule auto: the most pruning whose validation {metric} stays within the tolerance"
        before, after = plan.validation_error_unpruned, plan.validation_error_pruned
        if before is not None and after is not None:
            text += f" ({before:.3g} → {after:.3g})"
        return f"{text}; groups ranked by {score}"
    if plan.rule == "sparsity":
        return f"rule sparsity: the groups of lowest {score} removed"
    values = sorted({t for t in plan.thresholds.values() if t is not None})
    t = f"{values[0]:g}" if len(values) == 1 else "the per-layer thresholds"
    template = _RULE_TEXT.get(plan.rule)
    if template is None:
        return f"rule {plan.rule} (threshold {t})"
    text = f"rule {plan.rule}: {template.format(t=t)}"
    if plan.rule == "pip" and values == [0.5]:
        text += " (the median-probability model)"
    return text


# ------------------------------------------------------------------------------- plots


def plot_loss(history: History, ax: Axes | None = None) -> Figure:
    """Plot the training loss (``-ELBO / N``) per epoch, with the validation metric.

    The validation metric, when recorded, is drawn on a twin axis; with 30 epochs or
    fewer each epoch is a marker (a one-epoch run is a point, not an empty plot).

    Parameters
    ----------
    history
        The :class:`~pyrocompress.infer.History` of :func:`~pyrocompress.fit`.
    ax
        Axes to draw into; a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    fig, ax = _axes(ax, figsize=(6, 3.5))
    marker = "o" if len(history.epoch) <= 30 else None
    ax.plot(history.epoch, history.loss, color="C0", marker=marker, markersize=3,
            label="loss (−ELBO / N)")  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per example")
    low, high = min(history.loss), max(history.loss)
    ax.set_yscale("log" if low > 0 and high / low > 10 else "linear")  # a decade or more
    if len(history.epoch) <= 10:
        ax.set_xticks(list(history.epoch))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = ax.get_lines()
    vals = [v for v in history.val_metric if not math.isnan(v)]
    if vals:
        ax2 = ax.twinx()
        ax2.plot(history.epoch, history.val_metric, color="C1", marker=marker, markersize=3,
                 label=f"val {history.metric_name}")  # fmt: skip
        ax2.set_ylabel(f"validation {history.metric_name}")
        handles = handles + ax2.get_lines()
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    ax.set_title("SVI training")
    fig.tight_layout()
    return fig


def plot_group_histograms(
    values: dict[str, torch.Tensor],
    *,
    kept: dict[str, torch.Tensor] | None = None,
    threshold: float | dict[str, float] | None = None,
    xlabel: str = "log α",
    labels: dict[str, str] | None = None,
    title: str | None = None,
    threshold_label: str = "threshold",
    value_range: tuple[float, float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Plot one histogram per layer of a group statistic (log α, PIP or log SNR).

    Groups that a pruning plan keeps (``kept``) and removes are stacked in two colours,
    counted in the legend; a threshold (one number or one per layer) is a dashed line.
    The x range is ``value_range``, or :func:`robust_range` of each layer's values (and
    its threshold): values beyond it are drawn in the edge bars, infinite ones are left
    out, and both are counted under the axis. The layers are laid out four to a row.

    Parameters
    ----------
    values
        The statistic of each group, by layer name.
    kept
        Boolean masks of the kept groups, by layer name.
    threshold
        A threshold, or one per layer name (a layer without one has no line); pass only
        a threshold of the rule on this statistic (:func:`plan_thresholds`).
    xlabel
        Label of the x axes.
    labels
        The title of each layer's histogram, by layer name (:func:`layer_labels`); its
        name (``"layer 1"`` for an index) when omitted.
    title
        A title of the figure (the rule, :func:`describe_rule`).
    threshold_label
        The legend entry of the threshold line.
    value_range
        Fixed x limits (``(0, 1)`` for PIPs).
    ax
        Axes to draw every layer into; one axes per layer in a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        If ``values`` is empty, or ``value_range`` is not an increasing pair.
    """
    names = list(values)
    if not names:
        raise ValueError("values is empty: pass one tensor of group statistics per layer")
    if value_range is not None and not value_range[0] < value_range[1]:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    if ax is None:
        cols = min(len(names), 4)
        rows = math.ceil(len(names) / cols)
        size = (min(MAX_WIDTH, 0.6 + 3.0 * cols), 3.1 * rows + (0.8 if title else 0.4))
        fig, grid = plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")
        axes = list(grid.flat)
        for extra in axes[len(names) :]:
            fig.delaxes(extra)
        first_column = {id(row[0]) for row in grid}
    else:
        fig, axes = _figure(ax), [ax] * len(names)
        first_column = {id(ax)}
    own = ax is None  # one legend for the figure, the counts in each layer's title
    drawn = {"kept": False, "threshold": False}
    for a, name in zip(axes, names, strict=False):
        t = threshold.get(name) if isinstance(threshold, dict) else threshold
        t = float(t) if t is not None and math.isfinite(t) else None
        mask = None if kept is None or name not in kept else kept[name]
        heading = _histogram(a, _numpy(values[name]), mask, t, value_range, xlabel, threshold_label)
        a.set_title(f"{_label(labels, name)}\n{heading}", fontsize=9)
        drawn["kept"] |= mask is not None
        drawn["threshold"] |= t is not None
        if not own and a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
        if id(a) in first_column:
            a.set_ylabel("groups")
    if not own:
        fig.tight_layout()
        return fig
    handles: list[Any] = []
    if drawn["kept"]:
        handles += [Patch(color=KEPT, label="kept"), Patch(color=PRUNED, label="pruned")]
    if drawn["threshold"]:
        handles.append(Line2D([], [], color="k", linestyle="--", label=threshold_label))
    _figure_legend(fig, handles, title)
    return fig


def _figure_legend(fig: Figure, handles: list[Any], title: str | None) -> None:
    """Put one legend under the axes of a constrained-layout figure, and its title."""
    if title:
        _suptitle(fig, title)
    for ncols in range(len(handles), 0, -1):  # one row, or as many as fit the width
        legend = fig.legend(handles=handles, loc="outside lower center", ncols=ncols,
                            fontsize=8, frameon=False)  # fmt: skip
        if ncols == 1 or legend.get_window_extent().width <= fig.bbox.width:
            return
        legend.remove()  # wider than the figure: a saved image would clip it at both edges


def _histogram(
    ax: Axes,
    v: np.ndarray,
    kept: torch.Tensor | None,
    t: float | None,
    value_range: tuple[float, float] | None,
    xlabel: str,
    threshold_label: str,
) -> str:
    """Draw one layer's histogram (kept and pruned stacked); return its title's counts."""
    finite = np.isfinite(v)
    lo, hi = value_range or robust_range(v, include=() if t is None else (t,))
    bins = np.linspace(lo, hi, 31).tolist()
    shown = np.clip(v[finite], lo, hi)
    heading = f"{v.size} groups"
    if kept is not None:
        k = kept.detach().cpu().bool().flatten().numpy()
        ax.hist([shown[k[finite]], shown[~k[finite]]], bins=bins, stacked=True,
                color=[KEPT, PRUNED],
                label=[f"kept ({int(k.sum())})", f"pruned ({int((~k).sum())})"])  # fmt: skip
        heading += f": {int(k.sum())} kept, {int((~k).sum())} pruned"
    else:
        ax.hist(shown, bins=bins, color="C0")
    if t is not None:
        ax.axvline(t, color="k", linestyle="--", linewidth=1, label=threshold_label)
    pad = 0.02 * (hi - lo)
    ax.set_xlim(lo - pad, hi + pad)
    notes = _outside_note(v, lo, hi)
    ax.set_xlabel("\n".join([xlabel, *notes]), fontsize=9 if not notes else 8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return heading


def _check_threshold(threshold: object) -> float | None:
    if threshold is None:
        return None
    if (
        isinstance(threshold, int | float | np.integer | np.floating)
        and not isinstance(threshold, bool)
        and 0 <= threshold <= 1
    ):
        return float(threshold)
    raise ValueError(
        f"threshold must be a PIP cut-off in [0, 1] or None (no line), got {threshold!r}"
    )


def plot_pip_stem(
    pip: ArrayLike | torch.Tensor,
    *,
    feature_names: Sequence[str] | None = None,
    threshold: float | None = None,
    threshold_label: str | None = None,
    selected: ArrayLike | None = None,
    selected_labels: tuple[str, str] = ("selected", "not selected"),
    top_k: int = 40,
    xlabel: str = "input feature",
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw the inclusion probability (PIP) of every input feature, readable for thousands.

    Up to ``top_k`` features are a stem plot in input order, named on the axis. With
    more, the left panel is the ``top_k`` of highest PIP, sorted and named, and the right
    one every feature's PIP against its rank, so that the rest are summarised (their
    median and largest PIP, and how many are selected, are under the axis); the figure is
    :data:`MAX_WIDTH` inches wide at most. Selected features (``selected``: the plan's or
    the selector's mask, not a PIP cut-off) are green, the others red, with their counts
    in the legend.

    Parameters
    ----------
    pip
        Posterior inclusion probabilities, one per input feature.
    feature_names
        The features' names (their indices when omitted).
    threshold
        The PIP cut-off of the selection rule, drawn as a dashed line; ``None`` (the
        default) draws none. Pass it only when the rule is a threshold on the PIP: 0.5
        for the median-probability model :cite:p:`barbieri2004optimal`; for the Bayesian-FDR rule
        :cite:p:`newton2004detecting` the smallest selected PIP, for top-k the k-th largest
        (``FeatureSelector.cutoff_`` is that value, and
        :meth:`FeatureSelector.plot_inclusion_probabilities` passes it). A rule that ranks by
        something else (``prune``'s automatic rule ranks by SNR) has none: its selection is in
        ``selected``.
    threshold_label
        Legend entry of the line, which gets ``" (PIP ≥ t)"`` appended; default
        ``"cut-off"``.
    selected
        Boolean mask of the selected (kept) features.
    selected_labels
        The legend's names of the selected and the other features (``("kept",
        "pruned")`` for a pruning plan).
    top_k
        The most features drawn one by one.
    xlabel
        What a feature is (``"input pixel"``, ``"output channel of conv1"``).
    title
        The figure's title (the rule, :func:`describe_rule`); the axes' title when
        ``ax`` is given.
    ax
        Axes to draw into (the ``top_k`` panel only, the rest summarised under its
        axis); a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; its first axes holds the stems and the cut-off line.

    Raises
    ------
    ValueError
        If ``threshold`` is not a number in [0, 1] or ``None``, ``top_k`` is not a
        positive integer, or ``feature_names`` or ``selected`` is not one per feature.
    """
    p = _numpy(pip)
    n, t = len(p), _check_threshold(threshold)
    names, sel = _check_features(n, top_k, feature_names, selected)
    subset = n > top_k
    shown = np.argsort(-p, kind="stable")[:top_k] if subset else np.arange(n)
    rest_ax = None
    if ax is not None:
        fig, main = _figure(ax), ax
    elif subset:
        fig, (main, rest_ax) = plt.subplots(
            1, 2, figsize=(MAX_WIDTH, 4.6), width_ratios=(3, 2), layout="constrained"
        )
    else:
        width = min(MAX_WIDTH, max(5.0, 0.16 * n + 2.5))
        fig, main = plt.subplots(figsize=(width, 4.0), layout="constrained")
    _stems(main, np.arange(len(shown)), p[shown], None if sel is None else sel[shown])
    handles: list[Any] = []
    if sel is not None:
        k = int(sel.sum())
        handles += [
            Line2D([], [], color=KEPT, marker="o", label=f"{selected_labels[0]} ({k} of {n})"),
            Line2D([], [], color=PRUNED, marker="o", label=f"{selected_labels[1]} ({n - k})"),
        ]
    if t is not None:
        label = f"{threshold_label or 'cut-off'} (PIP ≥ {t:.3g})"
        handles.append(main.axhline(t, color="k", linestyle="--", linewidth=1, label=label))
    main.set_ylim(-0.02, 1.05)
    main.set_ylabel("inclusion probability (PIP)")
    if names is not None or subset:
        ticks = [names[i] if names is not None else str(i) for i in shown]
        main.set_xticks(
            range(len(shown)), ticks, rotation=90, fontsize=7 if len(shown) <= 40 else 5
        )
    else:
        main.xaxis.set_major_locator(MaxNLocator(integer=True))
    if subset:
        rest = _rest_summary(p, shown, sel, selected_labels)
        main.set_title(f"the {len(shown)} of highest PIP, of {n}", fontsize=9)
        main.set_xlabel(f"{xlabel} (sorted by PIP)" + (f"\n{rest}" if rest_ax is None else ""))
        if rest_ax is not None:
            _rank_panel(rest_ax, p, sel, len(shown), t, rest)
    else:
        main.set_xlabel(xlabel)
    if ax is None:  # the legend above the panels, under the title
        _figure_legend(fig, handles, title)
        return fig
    if handles:
        main.legend(handles=handles, fontsize=7)
    if title is not None:
        main.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _check_features(
    n: int, top_k: object, feature_names: Sequence[str] | None, selected: ArrayLike | None
) -> tuple[list[str] | None, np.ndarray | None]:
    """Check the arguments of :func:`plot_pip_stem`; return the names and the mask."""
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if feature_names is not None and len(feature_names) != n:
        raise ValueError(
            f"feature_names has {len(feature_names)} names for {n} PIPs: give one name a feature"
        )
    sel = None if selected is None else np.asarray(selected, dtype=bool).flatten()
    if sel is not None and len(sel) != n:
        raise ValueError(f"selected has {len(sel)} entries for {n} PIPs: one per feature")
    return (None if feature_names is None else [str(f) for f in feature_names]), sel


def _stems(ax: Axes, x: np.ndarray, p: np.ndarray, sel: np.ndarray | None) -> None:
    """Stems at ``x``, green where ``sel`` and red elsewhere (blue without ``sel``)."""
    if sel is None:
        ax.stem(x, p, basefmt=" ")
        return
    for mask, colour in ((sel, KEPT), (~sel, PRUNED)):
        if mask.any():
            ax.stem(x[mask], p[mask], linefmt=f"{colour}-", markerfmt=f"{colour}o", basefmt=" ")


def _rest_summary(
    p: np.ndarray, shown: np.ndarray, sel: np.ndarray | None, labels: tuple[str, str]
) -> str:
    """Summarise the features not drawn one by one (their PIPs, how many selected)."""
    rest = np.setdiff1d(np.arange(len(p)), shown)
    if rest.size == 0:
        return ""
    text = (
        f"the other {rest.size}: median PIP {np.median(p[rest]):.2g}, largest {p[rest].max():.2g}"
    )
    if sel is not None:
        k = int(sel[rest].sum())
        text += f"\n{k} {labels[0]}, {rest.size - k} {labels[1]}"
    return text


def _rank_panel(
    ax: Axes, p: np.ndarray, sel: np.ndarray | None, k: int, t: float | None, note: str
) -> None:
    """Every PIP against its rank (largest first), the top ``k`` shaded."""
    order = np.argsort(-p, kind="stable")
    ranks = np.arange(1, len(p) + 1)
    colours = "C0" if sel is None else np.where(sel[order], KEPT, PRUNED)
    ax.axvspan(0.5, k + 0.5, color="0.9", zorder=0)
    ax.scatter(ranks, p[order], c=colours, s=8 if len(p) <= 2000 else 3, linewidths=0)
    if t is not None:
        ax.axhline(t, color="k", linestyle="--", linewidth=1)
    ax.set_xlim(0, len(p) + 1)
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(f"all {len(p)} by PIP rank (shaded: the left panel)", fontsize=9)
    ax.set_xlabel("rank by PIP" + (f"\n{note}" if note else ""), fontsize=9)


def plot_input_importance(
    kept_inputs: Sequence[int],
    image_shape: tuple[int, int],
    *,
    values: ArrayLike | torch.Tensor | None = None,
    values_label: str = "value",
    ax: Axes | None = None,
) -> Figure:
    """Show which input pixels a pruned network keeps, and a value per pixel.

    The kept pixels are green and the pruned ones dark, with a legend counting each.
    With ``values`` (the statistic that ranked the pixels, e.g. their log SNR or PIP), a
    second panel shows them with a colour bar (its limits :func:`robust_range`; beyond
    them, the end colours) and the outline of the kept pixels in white.

    Parameters
    ----------
    kept_inputs
        The kept pixel indices, row-major (the report's ``kept_inputs``).
    image_shape
        Height and width of an input image.
    values
        A value per pixel.
    values_label
        What the values are, for the colour bar.
    ax
        Axes to draw into: the kept pixels, or the values (with the outline) when
        ``values`` is given; a new figure (of one or two panels) when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        If ``image_shape`` is not two positive integers, a kept index is not a pixel,
        or ``values`` is not one per pixel.
    """
    if len(image_shape) != 2 or not all(isinstance(s, int | np.integer) and s > 0
                                        for s in image_shape):  # fmt: skip
        raise ValueError(
            f"image_shape must be (height, width), two positive ints; got {image_shape}"
        )
    h, w = int(image_shape[0]), int(image_shape[1])
    idx = np.asarray(list(kept_inputs), dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= h * w):
        raise ValueError(f"kept_inputs must be pixel indices in [0, {h * w}) for {h}x{w} images")
    mask = np.zeros(h * w, dtype=bool)
    mask[idx] = True
    mask = mask.reshape(h, w)
    if values is None:
        fig, ax = _axes(ax, figsize=(3.6, 4.0))
        _mask_panel(ax, mask)
        fig.tight_layout()
        return fig
    v = _numpy(values)
    if v.size != h * w:
        raise ValueError(f"values has {v.size} entries for {h}x{w} = {h * w} pixels")
    v = v.reshape(h, w)
    if ax is None:
        fig, (mask_ax, value_ax) = plt.subplots(1, 2, figsize=(7.6, 4.0))
        _mask_panel(mask_ax, mask)
    else:
        fig, value_ax = _figure(ax), ax
    _value_panel(fig, value_ax, v, mask, values_label)
    fig.tight_layout()
    return fig


def _value_panel(fig: Figure, ax: Axes, v: np.ndarray, mask: np.ndarray, label: str) -> None:
    """Draw a value per pixel with a colour bar, and the outline of the kept pixels."""
    lo, hi = robust_range(v)
    shown = np.ma.masked_invalid(np.clip(v, lo, hi))  # ±∞ clip to the ends; NaN is blank
    im = ax.imshow(shown, cmap="viridis", vmin=lo, vmax=hi)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label(label, fontsize=8)
    if mask.any() and not mask.all():
        ax.add_collection(LineCollection(_edges(mask), colors="w", linewidths=1.2))
        outline = Line2D([], [], color="w", label="outline of the kept pixels")
        ax.legend(handles=[outline], loc="upper center", bbox_to_anchor=(0.5, -0.02),
                  fontsize=8, facecolor="0.3", labelcolor="w")  # fmt: skip
    ax.set_title(f"{label} of each input pixel", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _edges(mask: np.ndarray) -> list[list[tuple[float, float]]]:
    """Return the pixel edges between kept and pruned pixels, in image coordinates."""
    segments = []
    for r, c in zip(*np.nonzero(mask[:, 1:] != mask[:, :-1]), strict=True):
        segments.append([(c + 0.5, r - 0.5), (c + 0.5, r + 0.5)])  # between columns c, c+1
    for r, c in zip(*np.nonzero(mask[1:, :] != mask[:-1, :]), strict=True):
        segments.append([(c - 0.5, r + 0.5), (c + 0.5, r + 0.5)])  # between rows r, r+1
    return segments


def _mask_panel(ax: Axes, mask: np.ndarray) -> None:
    """Draw the kept pixels (green) and pruned ones (dark), with a legend below the image."""
    k, n = int(mask.sum()), mask.size
    ax.imshow(mask.astype(float), cmap=ListedColormap(["0.15", KEPT]), vmin=0, vmax=1)
    handles = [
        Patch(facecolor=KEPT, edgecolor="0.4", label=f"kept ({k})"),
        Patch(facecolor="0.15", edgecolor="0.4", label=f"pruned ({n - k})"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2,
              fontsize=8, frameon=False)  # fmt: skip
    ax.set_title(f"kept input pixels: {k} of {n}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_pruning_curve(
    curve: Iterable[tuple[float, float]],
    *,
    metric: str = "error",
    score: str | None = None,
    chosen: tuple[float, float] | None = None,
    chosen_label: str = "the pruned network",
    ax: Axes | None = None,
) -> Figure:
    """Plot the validation metric against the fraction of weights removed.

    Parameters
    ----------
    curve
        ``(fraction removed, metric)`` pairs, the output of
        :func:`pyrocompress.compress.pruning_curve`.
    metric
        Name of the metric, for the labels.
    score
        What ranked the groups removed (``"group SNR"``), for the axis label.
    chosen
        ``(fraction removed, metric)`` of the plan the rule chose, marked with a star.
    chosen_label
        Its legend entry.
    ax
        Axes to draw into; a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    curve = list(curve)
    fig, ax = _axes(ax, figsize=(5.5, 3.8))
    frac, err = zip(*curve, strict=True) if curve else ((), ())
    ax.plot(frac, err, marker="o", markersize=3, label="removing the lowest-ranked groups")
    if chosen is not None:
        ax.plot([chosen[0]], [chosen[1]], linestyle="none", marker="*", markersize=12,
                color=KEPT, markeredgecolor="k", label=chosen_label)  # fmt: skip
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel("fraction of weights removed" + (f" (groups ranked by {score})" if score else ""))
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"validation {metric} against pruning")
    fig.tight_layout()
    return fig


def plot_architecture(
    before: list[int],
    after: list[int],
    *,
    names: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Plot the width of every layer interface (inputs first) before and after pruning.

    Parameters
    ----------
    before, after
        Widths (units or channels) of the interfaces, inputs first.
    names
        A name for each interface (``"inputs"``, ``"layer 1 out"``).
    ax
        Axes to draw into; a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        If ``before``, ``after`` and ``names`` differ in length.
    """
    if len(before) != len(after) or (names is not None and len(names) != len(before)):
        raise ValueError(
            f"before ({len(before)}), after ({len(after)}) and names must give one entry "
            "per layer interface"
        )
    fig, ax = _axes(ax, figsize=(min(MAX_WIDTH, max(5.0, 1.2 * len(before) + 1)), 3.8))
    x = np.arange(len(before))
    ax.bar(x - 0.2, before, width=0.4, label="before", color="C7")
    ax.bar(x + 0.2, after, width=0.4, label="after", color=KEPT)
    ticks = [f"{b}→{a}" for b, a in zip(before, after, strict=True)]
    if names is not None:
        ticks = [f"{name}\n{tick}" for name, tick in zip(names, ticks, strict=True)]
    ax.set_xticks(x, ticks, fontsize=8 if len(before) <= 8 else 6)
    ax.set_yscale("log")
    ax.set_ylabel("units / channels")
    ax.set_xlabel("layer interface, inputs first")
    ax.legend(fontsize=8)
    ax.set_title("architecture before and after pruning")
    fig.tight_layout()
    return fig


def plot_bits(
    bits_per_layer: list[int], layer_names: list[str] | None = None, *, ax: Axes | None = None
) -> Figure:
    """Plot the bits per weight (sign + exponent + mantissa) of every layer.

    Parameters
    ----------
    bits_per_layer
        Bits per weight of each layer.
    layer_names
        Tick labels (:func:`layer_labels`; a label ``"name: what"`` is set on two
        lines); the layer positions when omitted.
    ax
        Axes to draw into; a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    n = len(bits_per_layer)
    fig, ax = _axes(ax, figsize=(min(MAX_WIDTH, max(4.5, 1.5 * n + 1)), 3.6))
    names = layer_names or [str(i) for i in range(n)]
    ax.bar(range(n), bits_per_layer, color="C0")
    ax.set_xticks(range(n), [name.replace(": ", ":\n", 1) for name in names],
                  fontsize=8 if n <= 6 else 6)  # fmt: skip
    ax.axhline(32, color="k", linestyle=":", linewidth=1, label="float32")
    ax.legend(fontsize=8, loc="center right")
    ax.set_ylabel("bits per weight")
    ax.set_xlabel("layer")
    ax.set_title("fixed-point precision (sign + exponent + mantissa)")
    fig.tight_layout()
    return fig


def plot_forest(
    tree: DataTree,
    var_names: list[str] | None = None,
    coords: dict[str, Any] | None = None,
    *,
    max_groups: int = 40,
    kept: ArrayLike | torch.Tensor | None = None,
    title: str | None = None,
    xlabel: str | None = None,
) -> Figure:
    """Draw an arviz-plots forest plot of posterior variables of a DataTree.

    Each row is a group's posterior draws: their median (dot), 50 % (thick) and 90 %
    (thin) equal-tailed intervals. A single variable with more than ``max_groups`` groups
    (and no ``coords``) is cut to the ``max_groups // 2`` groups of largest posterior
    mean magnitude and the rest of smallest, in that order with a dotted line between
    them, and the title says so. With ``kept`` (one variable), the names of the kept
    groups are green and the pruned ones red. arviz-plots lays out its own figure, so
    this function takes no Axes.

    Parameters
    ----------
    tree
        A DataTree of :meth:`~pyrocompress.Posterior.to_datatree`.
    var_names
        Posterior variables to show; the group scales (``*_scale``) by default.
    coords
        Coordinates to select, as in arviz-plots (then every selected group is shown).
    max_groups
        The most groups of one variable shown.
    kept
        Boolean mask of the kept groups of the one variable shown, in the order of its
        group dimension (the plan's mask of its layer).
    title
        The title (e.g. which layer); ``"forest plot of <variables>"`` by default.
    xlabel
        The label of the intervals' axis.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        If ``max_groups`` is not an integer of at least 2, or ``kept`` is given for
        other than one variable of one group dimension, or not one per group.
    """
    import arviz_plots as azp

    if isinstance(max_groups, bool) or not isinstance(max_groups, int) or max_groups < 2:
        raise ValueError(f"max_groups must be an integer of at least 2, got {max_groups!r}")
    posterior = tree["posterior"]
    if var_names is None:
        names = (str(v) for v in posterior.data_vars)  # (variable names are str)
        var_names = [v for v in names if v.endswith("_scale")]
    if not var_names:
        raise ValueError("var_names is empty: name a posterior variable (e.g. 'layer1_scale')")
    sample_dims = ("chain", "draw")
    dims = [str(d) for d in posterior[var_names[0]].dims if d not in sample_dims]
    single = len(var_names) == 1 and len(dims) == 1
    mask = None if kept is None else _numpy(kept).astype(bool)
    if mask is not None and (not single or mask.size != posterior[var_names[0]].sizes[dims[0]]):
        raise ValueError(
            "kept is the mask of the groups of one variable: pass one variable of one group "
            "dimension and one boolean per group"
        )
    note, split = None, None
    if coords is None and single and posterior[var_names[0]].sizes[dims[0]] > max_groups:
        da = posterior[var_names[0]]
        dim, n = dims[0], da.sizes[dims[0]]
        size = np.asarray(abs(da).mean(dim=[d for d in da.dims if d in sample_dims]))
        order = np.argsort(-size, kind="stable")
        top, bottom = max_groups // 2, max_groups - max_groups // 2
        picked = np.concatenate([order[:top], order[-bottom:]])
        coords = {dim: np.asarray(da[dim])[picked]}
        note = (
            f"showing {max_groups} of {n} groups: the {top} largest and the {bottom} smallest "
            f"by posterior mean |{var_names[0]}|"
        )
        split = bottom - 0.5  # rows are drawn from the top, the last at y = 0
    rows = 0
    for var in var_names:
        da = posterior[var]
        if coords is not None:
            da = da.sel({k: v for k, v in coords.items() if k in da.dims})
        rows += math.prod(s for d, s in da.sizes.items() if d not in sample_dims)
    pc = azp.plot_forest(
        tree,
        var_names=var_names,
        coords=coords,
        backend="matplotlib",
        combined=True,
        point_estimate="median",
        ci_kind="eti",
        ci_probs=(0.5, 0.9),
        labels=dims if single else None,  # one variable: its name is in the title
        figure_kwargs={"figsize": (7.5, min(14.0, 1.6 + 0.22 * rows))},
    )
    fig = pc.viz["figure"].item()
    forest_ax = pc.viz["plot"].sel(column="forest").item()
    forest_ax.set_xlabel(
        xlabel or "posterior draws: median (dot), 50 % (thick) and 90 % (thin) intervals"
    )
    if split is not None:
        forest_ax.axhline(split, color="0.5", linestyle=":", linewidth=1)
    head = title or f"forest plot of {', '.join(var_names)}"
    if mask is not None:
        _colour_labels(pc.viz["plot"].sel(column="labels").item(), posterior[var_names[0]],
                       dims[0], mask)  # fmt: skip
        head += f" (names: green kept, red pruned; {int(mask.sum())} of {mask.size} kept)"
    _suptitle(fig, head + (f"\n{note}" if note else ""))
    return fig


def _colour_labels(ax: Axes, da: Any, dim: str, mask: np.ndarray) -> None:
    """Colour the group names of a forest plot's label column by ``mask``."""
    kept = {str(c): bool(k) for c, k in zip(np.asarray(da[dim]), mask, strict=True)}
    for text in ax.texts:
        if text.get_text() in kept:
            text.set_color(KEPT if kept[text.get_text()] else PRUNED)
