import math
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from torch import nn  # noqa: E402

import pyrocompress as pc  # noqa: E402
from pyrocompress import plots  # noqa: E402
from pyrocompress.compress import PruningPlan, make_plan  # noqa: E402
from pyrocompress.compress.pruning import pruning_curve  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    X = torch.randn(120, 6)
    y = (X[:, 0] + X[:, 1] > 0).long()
    bnn = pc.bayesianize(pc.mlp([6, 8, 2]), prior="group-nj", seed=0)
    history = pc.fit(bnn, (X, y), epochs=5, validation=(X, y), tol=None, progress=False)
    return bnn, X, y, history


@pytest.fixture(scope="module")
def sparse_fit():
    """A fit long enough (about 3 s) that the rules prune the 4 inputs of no use."""
    torch.manual_seed(0)
    X = torch.randn(200, 6)
    y = (X[:, 0] + X[:, 1] > 0).long()
    bnn = pc.bayesianize(pc.mlp([6, 8, 2]), prior="group-nj", seed=0)
    pc.fit(bnn, (X, y), epochs=200, batch_size=50, tol=None, progress=False)
    return bnn, X, y


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def _data(values):
    """The x or y data of a Line2D, as a list."""
    return np.asarray(values).tolist()


def _vertical_lines_at(ax, x):
    return [ln for ln in ax.get_lines() if _data(ln.get_xdata()) == [x, x]]


def _dashed(ax):
    """The dashed straight lines (axhline / axvline) of an Axes."""
    return [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]


def _legend(ax):
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


def _figure_legend(fig):
    (legend,) = fig.legends
    return [t.get_text() for t in legend.get_texts()]


def _pixels(fig, dpi=100):
    """The rendered width and height of ``fig`` in pixels (it is drawn)."""
    fig.set_dpi(dpi)
    fig.canvas.draw()
    height, width, _ = np.asarray(fig.canvas.buffer_rgba()).shape  # type: ignore[attr-defined]
    return width, height


def test_plot_loss(fitted):
    *_, history = fitted
    fig = plots.plot_loss(history)
    ax, twin = fig.axes
    assert len(_data(ax.get_lines()[0].get_xdata())) == 5
    assert len(_data(twin.get_lines()[0].get_ydata())) == 5
    assert _legend(ax) == ["loss (−ELBO / N)", "val error"]
    # a few epochs: one marker each, one tick each (a one-epoch run is a point, not blank)
    assert ax.get_lines()[0].get_marker() == "o"
    assert list(ax.get_xticks()) == list(history.epoch)


# ------------------------------------------------------------------ names and rules


def test_layer_labels_name_the_layer_by_path_type_and_size():
    bnn = pc.bayesianize(pc.mlp([6, 8, 2]), prior="group-nj", seed=0)
    assert plots.layer_labels(bnn) == {"1": "layer 1: Linear 6→8", "3": "layer 3: Linear 8→2"}
    net = nn.Sequential(
        OrderedDict(
            features=nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()),
            flat=nn.Flatten(),
            fc1=nn.Linear(4 * 6 * 6, 5),
        )
    )
    labels = plots.layer_labels(pc.bayesianize(net, prior="group-nj", seed=0))
    assert labels == {"features.0": "features.0: Conv2d 1→4 (3×3)", "fc1": "fc1: Linear 144→5"}


def _plan(rule, score, thresholds):
    masks = {"1": torch.tensor([True, False]), "3": torch.tensor([True, True])}
    return PruningPlan(masks, rule, score, thresholds, 0.1, 0.12)


@pytest.mark.parametrize(
    "rule, score, thresholds, quantity, expected",
    [
        # the automatic rule's thresholds are on its score: log SNR, −log α, or the PIP
        ("auto", "snr", {"1": 1.5, "3": -math.inf}, "log_snr", {"1": 1.5}),
        ("auto", "snr", {"1": 1.5, "3": 0.2}, "pip", {}),
        ("auto", "log_alpha", {"1": 2.0, "3": 3.0}, "log_alpha", {"1": -2.0, "3": -3.0}),
        ("auto", "pip", {"1": 0.3, "3": 0.4}, "pip", {"1": 0.3, "3": 0.4}),
        ("auto", "output_snr", {"1": 0.3, "3": 0.4}, "log_snr", {}),
        ("sparsity", "snr", {"all": 0.7}, "log_snr", {"1": 0.7, "3": 0.7}),
        # the threshold rules: on their own statistic (SNR drawn on the log SNR axis)
        ("snr", "snr", {"all": 1.0}, "log_snr", {"1": 0.0, "3": 0.0}),
        ("snr", "snr", {"all": 0.0}, "log_snr", {}),  # log 0: nothing to draw
        ("pip", "pip", {"all": 0.5}, "pip", {"1": 0.5, "3": 0.5}),
        ("pip", "pip", {"all": 0.5}, "log_alpha", {}),
        ("log_alpha", "log_alpha", {"1": -3.0, "3": 0.0}, "log_alpha", {"1": -3.0, "3": 0.0}),
        ("fdr", "pip", {"all": 0.1}, "pip", {}),  # an FDR level is no PIP cut-off
    ],
)
def test_plan_thresholds_only_for_a_threshold_on_the_quantity(
    rule, score, thresholds, quantity, expected
):
    assert plots.plan_thresholds(_plan(rule, score, thresholds), quantity) == expected


def test_plan_thresholds_refuses_an_unknown_quantity():
    with pytest.raises(ValueError, match="quantity must be one of log_alpha, log_snr, pip"):
        plots.plan_thresholds(_plan("auto", "snr", {}), "snr")


@pytest.mark.parametrize(
    "rule, quantity, statistic",
    [
        ("snr", "log_snr", lambda post: {k: v.log() for k, v in post.snr("group").items()}),
        ("auto", "log_snr", lambda post: {k: v.log() for k, v in post.snr("group").items()}),
        ("log_alpha", "log_alpha", lambda post: post.log_alpha()),
    ],
)
def test_plan_thresholds_separate_the_kept_groups(sparse_fit, rule, quantity, statistic):
    """On real plans, the line drawn is the rule that pruned: kept groups lie on its kept
    side (log α below it, log SNR at or above it), pruned ones on the other."""
    bnn, X, y = sparse_fit
    plan = make_plan(bnn, rule, validation=(X, y), tolerance=0.02)
    lines = plots.plan_thresholds(plan, quantity)
    values = statistic(pc.Posterior(bnn))
    assert set(lines) == {"1", "3"}
    assert 0 < int(plan.masks["1"].sum()) < 6  # some inputs kept, some pruned
    for name, t in lines.items():
        keep = values[name] < t if quantity == "log_alpha" else values[name] >= t
        assert torch.equal(keep, plan.masks[name].cpu()), name


def test_describe_rule_says_the_rule_used():
    auto = plots.describe_rule(_plan("auto", "snr", {"1": 1.0}), metric="error")
    assert auto.startswith("rule auto: the most pruning whose validation error stays within")
    assert "(0.1 → 0.12)" in auto and "ranked by group SNR" in auto
    pip = plots.describe_rule(_plan("pip", "pip", {"all": 0.5}))
    assert pip == "rule pip: keep the groups with PIP ≥ 0.5 (the median-probability model)"
    fdr = plots.describe_rule(_plan("fdr", "pip", {"all": 0.1}))
    assert "Bayesian FDR is ≤ 0.1" in fdr
    per_layer = plots.describe_rule(_plan("log_alpha", "log_alpha", {"1": -3.0, "3": 0.0}))
    assert per_layer == "rule log_alpha: keep the groups with log α < the per-layer thresholds"


# ---------------------------------------------------------------------- histograms


def test_plot_group_histograms_marks_threshold_and_kept(fitted):
    bnn, *_ = fitted
    la = pc.Posterior(bnn).log_alpha()
    kept = {k: v < 0 for k, v in la.items()}
    fig = plots.plot_group_histograms(
        la, kept=kept, threshold=0.0, labels=plots.layer_labels(bnn), title="rule log_alpha"
    )
    assert len(fig.axes) == 2
    assert fig.get_suptitle() == "rule log_alpha"
    for ax, name in zip(fig.axes, la):
        assert len(_vertical_lines_at(ax, 0.0)) == 1
        heights = sum(p.get_height() for p in _bars(ax))
        assert heights == la[name].numel()  # every group is in one bar, kept or pruned
        n, n_kept = la[name].numel(), int(kept[name].sum())
        assert ax.get_title() == (
            f"layer {name}: Linear {'6→8' if name == '1' else '8→2'}\n"
            f"{n} groups: {n_kept} kept, {n - n_kept} pruned"
        )
    assert _figure_legend(fig) == ["kept", "pruned", "threshold"]
    # drawn into one axes: that axes' legend, with the counts
    fig, ax = plt.subplots()
    plots.plot_group_histograms({"1": la["1"]}, kept={"1": kept["1"]}, ax=ax)
    n_kept = int(kept["1"].sum())
    assert _legend(ax) == [f"kept ({n_kept})", f"pruned ({6 - n_kept})"]


def test_plot_group_histograms_axis_robust_to_outliers():
    """Issue 27: a few log SNRs at −69 (SNR clamped to 1e-30) squashed every other group
    into one bar; now they sit in the first bar, counted, and −∞ is counted, not drawn."""
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(500, generator=gen, dtype=torch.float64)
    v[:6] = -69.08
    v[6:8] = -math.inf
    kept = v > -1.0
    fig = plots.plot_group_histograms({"1": v}, kept={"1": kept}, xlabel="log SNR")
    (ax,) = fig.axes
    low, high = ax.get_xlim()
    assert -10 < low < -2 and 2 < high < 10  # the bulk of N(0, 1), not −69
    assert sum(p.get_height() for p in _bars(ax)) == 498  # the finite ones, 6 at the edge
    xlabel = ax.get_xlabel()
    assert "6 groups < " in xlabel and "in the first bar" in xlabel
    assert "2 groups at −∞, not drawn" in xlabel
    assert ax.get_title().endswith(
        f"500 groups: {int(kept.sum())} kept, {int((~kept).sum())} pruned"
    )
    assert _figure_legend(fig) == ["kept", "pruned"]


def test_robust_range():
    assert plots.robust_range([1.0, 2.0, 3.0]) == (1.0, 3.0)  # nothing far out: min, max
    assert plots.robust_range([2.0, 2.0]) == (1.5, 2.5)  # one value: a unit around it
    assert plots.robust_range([math.nan, math.inf]) == (0.0, 1.0)
    assert plots.robust_range([1.0, 2.0], include=[5.0, math.inf]) == (1.0, 5.0)


def test_plot_group_histograms_many_layers_stay_within_max_width():
    values = {str(i): torch.linspace(0, 1, 10) for i in range(10)}
    fig = plots.plot_group_histograms(values, xlabel="PIP", value_range=(0.0, 1.0))
    assert len(fig.axes) == 10  # four to a row, three rows
    assert fig.get_size_inches()[0] <= plots.MAX_WIDTH
    assert {ax.get_xlim() for ax in fig.axes} == {(-0.02, 1.02)}


def test_plot_group_histograms_bad_input():
    with pytest.raises(ValueError, match="values is empty"):
        plots.plot_group_histograms({})
    with pytest.raises(ValueError, match="value_range must be"):
        plots.plot_group_histograms({"1": torch.ones(3)}, value_range=(1.0, 0.0))


# ---------------------------------------------------------------------------- PIPs


def test_plot_pip_stem():
    pip = torch.tensor([0.9, 0.1, 0.6, 0.2])
    fig = plots.plot_pip_stem(pip, feature_names=list("abcd"))
    ax = fig.axes[0]
    stems = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(stems[0].get_segments()) == 4
    assert _dashed(ax) == [] and ax.get_legend() is None  # no rule given: no line
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")


def test_plot_pip_stem_draws_the_given_cut_off():
    pip = torch.tensor([0.9, 0.1, 0.6, 0.2])
    fig = plots.plot_pip_stem(
        pip, threshold=0.6, threshold_label="Bayesian FDR ≤ 0.25 cut-off",
        selected=[True, False, True, False],
    )  # fmt: skip
    ax = fig.axes[0]
    (line,) = _dashed(ax)
    assert _data(line.get_ydata()) == [0.6, 0.6]
    assert _figure_legend(fig) == [
        "selected (2 of 4)",
        "not selected (2)",
        "Bayesian FDR ≤ 0.25 cut-off (PIP ≥ 0.6)",
    ]
    fig = plots.plot_pip_stem(pip, threshold=0.5)
    assert [_data(ln.get_ydata()) for ln in _dashed(fig.axes[0])] == [[0.5, 0.5]]


def test_plot_pip_stem_legend_wider_than_a_narrow_figure_wraps_inside_it():
    """The CLI's pip.png of 10 features clipped its one-row legend at both edges (session
    18): the legend now takes as many rows as it needs to lie within the figure."""
    pip = torch.linspace(0, 1, 10)
    fig = plots.plot_pip_stem(
        pip, threshold=0.5, threshold_label="median-probability model", selected=pip >= 0.5,
        feature_names=[f"f{i}" for i in range(10)], title="median rule",
    )  # fmt: skip
    fig.canvas.draw()
    (legend,) = fig.legends
    box = legend.get_window_extent()
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width and box.y0 >= 0
    assert len(_figure_legend(fig)) == 3  # every entry is still there
    many = torch.linspace(0, 1, 60)  # a figure wide enough for the three in one row
    wide = plots.plot_pip_stem(
        many, threshold=0.5, threshold_label="median-probability model", selected=many >= 0.5,
    )  # fmt: skip
    wide.canvas.draw()
    (one_row,) = wide.legends
    assert len(_figure_legend(wide)) == 3
    assert one_row.get_window_extent().height < box.height


def test_plot_pip_stem_of_ten_thousand_inputs_is_readable():
    """Issue 27: MNIST's pip.png was 10,568 × 330 pixels of unnamed stems. Now: at most
    MAX_WIDTH inches, the top 40 named, every PIP against its rank, the rest summarised."""
    gen = torch.Generator().manual_seed(0)
    pip = torch.rand(10_000, generator=gen)
    kept = pip > 0.3
    kept[int(pip.argmax())] = False  # a high PIP pruned (a rule on another statistic)
    names = [f"pixel_{i // 100}_{i % 100}" for i in range(10_000)]
    fig = plots.plot_pip_stem(
        pip, feature_names=names, selected=kept, selected_labels=("kept", "pruned"),
        title="rule auto: ...", xlabel="input pixel",
    )  # fmt: skip
    width, height = _pixels(fig, dpi=100)
    assert width <= 100 * plots.MAX_WIDTH and height <= 500
    top, ranks = fig.axes
    order = torch.argsort(pip, descending=True, stable=True)[:40]
    assert [t.get_text() for t in top.get_xticklabels()] == [names[i] for i in order]
    stems = [c for c in top.collections if isinstance(c, LineCollection)]
    assert sum(len(c.get_segments()) for c in stems) == 40
    red = [c for c in stems if np.asarray(c.get_color())[0, 0] > 0.5]  # C3 (red) = pruned
    assert sum(len(c.get_segments()) for c in red) == int((~kept[order]).sum()) >= 1
    assert _figure_legend(fig) == [
        f"kept ({int(kept.sum())} of 10000)",
        f"pruned ({int((~kept).sum())})",
    ]
    assert _dashed(top) == [] and _dashed(ranks) == []  # the rule is no PIP threshold
    (points,) = [c for c in ranks.collections if isinstance(c, PathCollection)]
    assert np.asarray(points.get_offsets()).shape == (10_000, 2)
    rest = ~torch.isin(torch.arange(10_000), order)
    assert f"the other 9960: median PIP {pip[rest].median():.2g}" in ranks.get_xlabel()
    assert f"{int(kept[rest].sum())} kept, {int((~kept[rest]).sum())} pruned" in ranks.get_xlabel()
    assert fig.get_suptitle() == "rule auto: ..."


def test_plot_pip_stem_threshold_on_both_panels_when_the_rule_is_one():
    pip = torch.linspace(0, 1, 100)
    fig = plots.plot_pip_stem(pip, threshold=0.5, selected=pip >= 0.5, top_k=10)
    assert [_data(ln.get_ydata()) for ax in fig.axes for ln in _dashed(ax)] == [[0.5, 0.5]] * 2


def test_plot_pip_stem_into_a_given_axes_summarises_the_rest():
    fig, ax = plt.subplots()
    pip = torch.linspace(0, 1, 50)
    assert plots.plot_pip_stem(pip, top_k=5, ax=ax, title="t") is fig
    assert len(fig.axes) == 1 and ax.get_title() == "t"
    assert "the other 45" in ax.get_xlabel()
    assert plots.plot_pip_stem(pip, threshold=0.5, ax=ax) is fig
    assert _legend(ax) == ["cut-off (PIP ≥ 0.5)"]


@pytest.mark.parametrize("threshold", [1.5, -0.1, float("nan"), True, "0.5"])
def test_plot_pip_stem_refuses_a_bad_threshold(threshold):
    with pytest.raises(ValueError, match=r"threshold must be a PIP cut-off in \[0, 1\]"):
        plots.plot_pip_stem(torch.tensor([0.9, 0.1]), threshold=threshold)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"top_k": 0}, "top_k must be a positive integer"),
        ({"feature_names": ["a"]}, "feature_names has 1 names for 2 PIPs"),
        ({"selected": [True]}, "selected has 1 entries for 2 PIPs"),
    ],
)
def test_plot_pip_stem_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plots.plot_pip_stem(torch.tensor([0.9, 0.1]), **kwargs)


# ---------------------------------------------------------------- input importance


def test_plot_input_importance():
    fig = plots.plot_input_importance([0, 9, 63], (8, 8))
    ax = fig.axes[0]
    img = np.asarray(ax.get_images()[0].get_array())
    assert img.shape == (8, 8) and img.sum() == 3 and img[1, 1] == 1
    assert "3 of 64" in ax.get_title()
    assert _legend(ax) == ["kept (3)", "pruned (61)"]


def test_plot_input_importance_with_values():
    values = torch.linspace(-2, 2, 64)
    values[5] = -69.0  # an outlier: the colour scale is that of the rest
    fig = plots.plot_input_importance(list(range(32)), (8, 8), values=values, values_label="PIP")
    mask_ax, value_ax, colorbar = fig.axes
    assert _legend(mask_ax) == ["kept (32)", "pruned (32)"]
    assert _legend(value_ax) == ["outline of the kept pixels"]
    assert colorbar.get_ylabel() == "PIP"
    low, high = value_ax.get_images()[0].get_clim()
    assert low > -10 and high == pytest.approx(2.0)
    (outline,) = [c for c in value_ax.collections if isinstance(c, LineCollection)]
    assert len(outline.get_segments()) == 8  # rows 0..3 kept: one edge per column


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (([0], (8,)), {}, "image_shape must be"),
        (([64], (8, 8)), {}, r"kept_inputs must be pixel indices in \[0, 64\)"),
        (([0], (8, 8)), {"values": torch.ones(10)}, "values has 10 entries for 8x8"),
    ],
)
def test_plot_input_importance_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plots.plot_input_importance(*args, **kwargs)


# -------------------------------------------------------------------- other plots


def test_pruning_curve_and_plot(fitted):
    bnn, X, y, _ = fitted
    curve = pruning_curve(bnn, (X, y), fractions=[0.0, 0.5, 0.9])
    assert curve[0][0] == 0.0 and curve[-1][0] > curve[1][0] > 0.0
    assert all(0.0 <= err <= 1.0 for _, err in curve)
    fig = plots.plot_pruning_curve(curve, score="log SNR", chosen=(0.4, 0.1))
    ax = fig.axes[0]
    assert _data(ax.get_lines()[0].get_xdata()) == [c[0] for c in curve]
    assert _data(ax.get_lines()[1].get_xdata()) == [0.4]
    assert _legend(ax) == ["removing the lowest-ranked groups", "the pruned network"]
    assert ax.get_xlabel() == "fraction of weights removed (groups ranked by log SNR)"


def test_plot_architecture_and_bits():
    fig = plots.plot_architecture([64, 100, 10], [30, 12, 10], names=["inputs", "a", "b"])
    ax = fig.axes[0]
    assert sorted(p.get_height() for p in _bars(ax)) == [10, 10, 12, 30, 64, 100]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "inputs\n64→30",
        "a\n100→12",
        "b\n10→10",
    ]
    fig = plots.plot_bits([5, 7, 9], ["layer 1: Linear 6→8", "fc", "3"])
    ax = fig.axes[0]
    assert [p.get_height() for p in _bars(ax)] == [5, 7, 9]
    assert any(_data(ln.get_ydata()) == [32, 32] for ln in ax.get_lines())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["layer 1:\nLinear 6→8", "fc", "3"]
    with pytest.raises(ValueError, match="one entry per layer interface"):
        plots.plot_architecture([4, 2], [2, 2], names=["inputs"])


def test_plot_forest_from_datatree(fitted):
    bnn, X, y, _ = fitted
    tree = pc.Posterior(bnn).to_datatree(X, y, num_samples=20)
    fig = plots.plot_forest(tree)
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "layer1_scale" in texts and "layer3_scale" in texts
    assert fig.get_suptitle() == "forest plot of layer1_scale, layer3_scale"  # every group


def test_plot_forest_of_many_groups_shows_and_says_a_subset():
    """Issue 27: forest.png silently showed the first 40 groups, untitled, unlabelled."""
    bnn = pc.bayesianize(pc.mlp([30, 3, 2]), prior="group-nj", seed=0)
    X, y = torch.randn(20, 30), torch.randint(0, 2, (20,))
    pc.infer.record_information(bnn, (X, y))  # (what the PIPs are measured against)
    tree = pc.Posterior(bnn).to_datatree(X, y, num_samples=10)
    kept = np.arange(30) % 3 == 0
    fig = plots.plot_forest(tree, ["layer1_scale"], max_groups=6, kept=kept, title="layer 1")
    title = fig.get_suptitle()
    assert title.startswith("layer 1 (names: green kept, red pruned; 10 of 30 kept)")
    assert "showing 6 of 30 groups: the 3 largest and the 3 smallest by posterior mean" in title
    labels_ax, forest_ax = fig.axes
    assert forest_ax.get_xlabel().startswith("posterior draws: median (dot), 50 %")
    draws = np.abs(tree["posterior"]["layer1_scale"].values).mean(axis=(0, 1))
    order = np.argsort(-draws, kind="stable")
    expected = [*order[:3], *order[-3:]]
    rows = sorted(labels_ax.texts, key=lambda t: -t.get_position()[1])  # top to bottom
    names = [t.get_text() for t in rows if t.get_text().isdigit()]
    assert names == [str(i) for i in expected]
    colours = [t.get_color() for t in rows if t.get_text().isdigit()]
    assert colours == [plots.KEPT if kept[i] else plots.PRUNED for i in expected]
    assert [_data(ln.get_ydata()) for ln in forest_ax.get_lines() if ln.get_linestyle() == ":"] == [
        [2.5, 2.5]
    ]  # the line between the largest and the smallest


def test_plot_forest_bad_input(fitted):
    bnn, X, y, _ = fitted
    tree = pc.Posterior(bnn).to_datatree(X, y, num_samples=5)
    with pytest.raises(ValueError, match="max_groups must be an integer of at least 2"):
        plots.plot_forest(tree, max_groups=1)
    with pytest.raises(ValueError, match="kept is the mask of the groups of one variable"):
        plots.plot_forest(tree, kept=[True] * 6)  # two variables


def test_plots_draw_into_a_given_axes():
    fig, ax = plt.subplots()
    assert plots.plot_bits([3, 4], ax=ax) is fig
    assert plots.plot_architecture([4, 2], [2, 2], ax=ax) is fig
    fig, ax = plt.subplots()
    assert plots.plot_input_importance([0], (2, 2), values=torch.ones(4), ax=ax) is fig
