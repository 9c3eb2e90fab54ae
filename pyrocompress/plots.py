"""Plots (matplotlib). Each function takes an optional Axes and returns the Figure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from xarray import DataTree

    from pyrocompress.infer import History

__all__ = [
    "plot_architecture",
    "plot_bits",
    "plot_forest",
    "plot_group_histograms",
    "plot_input_importance",
    "plot_loss",
    "plot_pip_stem",
    "plot_pruning_curve",
]


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


def plot_loss(history: History, ax: Axes | None = None) -> Figure:
    """Plot the training loss (``-ELBO / N``) per epoch, with the validation metric.

    The validation metric, when recorded, is drawn on a twin axis.

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
    ax.plot(history.epoch, history.loss, color="C0", label="loss (−ELBO / N)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per example")
    ax.set_yscale("log" if min(history.loss) > 0 else "linear")
    handles = ax.get_lines()
    vals = [v for v in history.val_metric if not math.isnan(v)]
    if vals:
        ax2 = ax.twinx()
        ax2.plot(history.epoch, history.val_metric, color="C1", label=f"val {history.metric_name}")
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
    ax: Axes | None = None,
) -> Figure:
    """Plot one histogram per layer of a group statistic (log α, PIP or log SNR).

    Groups that a pruning plan keeps (``kept``) and removes are drawn in two colours; a
    threshold (one number or one per layer) is marked with a vertical line.

    Parameters
    ----------
    values
        The statistic of each group, by layer name.
    kept
        Boolean masks of the kept groups, by layer name.
    threshold
        A threshold, or one per layer name.
    xlabel
        Label of the x axes.
    ax
        Axes to draw every layer into; one axes per layer in a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    names = list(values)
    if ax is None:
        fig, grid = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), squeeze=False)
        axes = list(grid[0])
    else:
        fig, axes = _figure(ax), [ax] * len(names)
    for a, name in zip(axes, names, strict=True):
        v = values[name].detach().cpu().float().flatten()
        finite = v[torch.isfinite(v)]
        if finite.numel() == 0:
            continue
        bins = torch.linspace(finite.min().item(), finite.max().item() + 1e-9, 31).tolist()
        if kept is not None and name in kept:
            k = kept[name].cpu().bool().flatten()
            a.hist(v[k & torch.isfinite(v)].numpy(), bins=bins, color="C2", label="kept")
            a.hist(v[~k & torch.isfinite(v)].numpy(), bins=bins, color="C3", label="pruned")
            a.legend(fontsize=8)
        else:
            a.hist(finite.numpy(), bins=bins, color="C0")
        t = threshold.get(name) if isinstance(threshold, dict) else threshold
        if t is not None and math.isfinite(t):
            a.axvline(t, color="k", linestyle="--", linewidth=1)
        a.set_title(f"layer {name} ({v.numel()} groups)", fontsize=9)
        a.set_xlabel(xlabel)
    axes[0].set_ylabel("groups")
    fig.tight_layout()
    return fig


def plot_pip_stem(
    pip: ArrayLike | torch.Tensor,
    *,
    feature_names: list[str] | None = None,
    threshold: float | None = 0.5,
    threshold_label: str | None = None,
    selected: ArrayLike | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw a stem plot of the inclusion probability of every input feature.

    Parameters
    ----------
    pip
        Posterior inclusion probabilities, one per input feature.
    feature_names
        Tick labels (drawn for at most 40 features).
    threshold
        The PIP cut-off of the selection rule, drawn as a dashed horizontal line; ``None``
        draws none. The default 0.5 is the median-probability model (Barbieri & Berger
        2004); for the Bayesian-FDR rule (Newton et al. 2004) pass the smallest selected
        PIP, for top-k the k-th largest PIP (``FeatureSelector.cutoff_`` is that value,
        and :meth:`FeatureSelector.plot_inclusion_probabilities` passes it).
    threshold_label
        Legend entry of the line, which gets ``" (PIP ≥ t)"`` appended; default
        ``"cut-off"``.
    selected
        Boolean mask of the selected features, drawn in a second colour.
    ax
        Axes to draw into; a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    Raises
    ------
    ValueError
        If ``threshold`` is not a number in [0, 1] or ``None``.
    """
    p = torch.as_tensor(pip).detach().cpu().float().flatten().numpy()
    if threshold is not None and not (
        isinstance(threshold, int | float | np.integer | np.floating)
        and not isinstance(threshold, bool)
        and 0 <= threshold <= 1
    ):
        raise ValueError(
            f"threshold must be a PIP cut-off in [0, 1] or None (no line), got {threshold!r}"
        )
    fig, ax = _axes(ax, figsize=(max(4.0, 0.12 * len(p) + 2), 3))
    ax.stem(range(len(p)), p, basefmt=" ")
    if selected is not None:
        idx = np.flatnonzero(np.asarray(selected, dtype=bool))
        if len(idx):
            ax.stem(idx, p[idx], linefmt="C3-", markerfmt="C3o", basefmt=" ", label="selected")
    if threshold is not None:
        t = float(threshold)
        label = threshold_label or "cut-off"
        ax.axhline(t, color="k", linestyle="--", linewidth=1, label=f"{label} (PIP ≥ {t:.3g})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=7)
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("inclusion probability")
    ax.set_xlabel("input feature")
    if feature_names is not None and len(feature_names) <= 40:
        ax.set_xticks(range(len(p)), feature_names, rotation=90, fontsize=7)
    fig.tight_layout()
    return fig


def plot_input_importance(
    kept_inputs: Sequence[int],
    image_shape: tuple[int, int],
    *,
    values: ArrayLike | torch.Tensor | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Show the input pixels a pruned network keeps (or ``values`` per pixel) as an image.

    Parameters
    ----------
    kept_inputs
        The kept pixel indices (the report's ``kept_inputs``).
    image_shape
        Height and width of an input image.
    values
        A value per pixel to show instead (with a colour bar).
    ax
        Axes to draw into; a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    n = image_shape[0] * image_shape[1]
    fig, ax = _axes(ax, figsize=(3.2, 3.2))
    if values is None:
        img = torch.zeros(n)
        img[torch.as_tensor(list(kept_inputs), dtype=torch.long)] = 1.0
        ax.imshow(img.reshape(image_shape).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"kept input pixels: {len(kept_inputs)} of {n}", fontsize=9)
    else:
        v = torch.as_tensor(values).detach().cpu().float().reshape(image_shape)
        im = ax.imshow(v.numpy(), cmap="viridis")
        fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_pruning_curve(
    curve: Iterable[tuple[float, float]], *, metric: str = "error", ax: Axes | None = None
) -> Figure:
    """Plot the validation metric against the fraction of weights removed.

    Parameters
    ----------
    curve
        ``(fraction removed, metric)`` pairs, the output of
        :func:`pyrocompress.compress.pruning_curve`.
    metric
        Name of the metric, for the labels.
    ax
        Axes to draw into; a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    curve = list(curve)
    fig, ax = _axes(ax, figsize=(5, 3.5))
    frac, err = zip(*curve, strict=True) if curve else ((), ())
    ax.plot(frac, err, marker="o", markersize=3)
    ax.set_xlabel("fraction of weights removed")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"validation {metric} against pruning")
    fig.tight_layout()
    return fig


def plot_architecture(before: list[int], after: list[int], *, ax: Axes | None = None) -> Figure:
    """Plot the width of every layer interface (inputs first) before and after pruning.

    Parameters
    ----------
    before, after
        Widths (units or channels) of the interfaces, inputs first.
    ax
        Axes to draw into; a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    fig, ax = _axes(ax, figsize=(5, 3.5))
    x = torch.arange(len(before)).numpy()
    ax.bar(x - 0.2, before, width=0.4, label="before", color="C7")
    ax.bar(x + 0.2, after, width=0.4, label="after", color="C2")
    ax.set_xticks(x, [f"{b}→{a}" for b, a in zip(before, after, strict=True)], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("units / channels")
    ax.legend(fontsize=8)
    ax.set_title("architecture")
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
        Tick labels; the layer positions when omitted.
    ax
        Axes to draw into; a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    fig, ax = _axes(ax, figsize=(4, 3))
    names = layer_names or [str(i) for i in range(len(bits_per_layer))]
    ax.bar(range(len(bits_per_layer)), bits_per_layer, color="C0")
    ax.set_xticks(range(len(bits_per_layer)), names)
    ax.axhline(32, color="k", linestyle=":", linewidth=1)
    ax.set_ylabel("bits per weight")
    ax.set_xlabel("layer")
    ax.set_title("fixed-point precision")
    fig.tight_layout()
    return fig


def plot_forest(
    tree: DataTree, var_names: list[str] | None = None, coords: dict[str, Any] | None = None
) -> Figure:
    """Draw an arviz-plots forest plot of posterior variables of a DataTree.

    arviz-plots lays out its own figure, so this function takes no Axes.

    Parameters
    ----------
    tree
        A DataTree of :meth:`~pyrocompress.Posterior.to_datatree`.
    var_names
        Posterior variables to show; the group scales (``*_scale``) by default.
    coords
        Coordinates to select, as in arviz-plots.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    import arviz_plots as azp

    if var_names is None:
        names = (str(v) for v in tree["posterior"].data_vars)  # (variable names are str)
        var_names = [v for v in names if v.endswith("_scale")]
    pc = azp.plot_forest(
        tree, var_names=var_names, coords=coords, backend="matplotlib", combined=True
    )
    return pc.viz["figure"].item()
