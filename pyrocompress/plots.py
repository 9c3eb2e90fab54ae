"""Plots (matplotlib). Each function takes an optional Axes and returns the Figure."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

__all__ = ["plot_group_histograms", "plot_loss"]


def _axes(ax, **kwargs):
    if ax is None:
        fig, ax = plt.subplots(**kwargs)
        return fig, ax
    return ax.figure, ax


def plot_loss(history, ax=None):
    """Training loss (``-ELBO / N``) per epoch, with the validation metric on a twin axis."""
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
    ax=None,
):
    """One histogram per layer of a group statistic (log α, PIP or log SNR).

    Groups that a pruning plan keeps (``kept``) and removes are drawn in two colours; a
    threshold (one number or one per layer) is marked with a vertical line.
    """
    names = list(values)
    if ax is None:
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), squeeze=False)
        axes = axes[0]
    else:
        fig, axes = ax.figure, [ax] * len(names)
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
