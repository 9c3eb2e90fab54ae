import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import pyrocompress as pc  # noqa: E402
from pyrocompress import plots  # noqa: E402
from pyrocompress.compress.pruning import pruning_curve  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    X = torch.randn(120, 6)
    y = (X[:, 0] + X[:, 1] > 0).long()
    bnn = pc.bayesianize(pc.mlp([6, 8, 2]), prior="group-nj", seed=0)
    history = pc.fit(bnn, (X, y), epochs=5, validation=(X, y), progress=False)
    return bnn, X, y, history


def _bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def _vertical_lines_at(ax, x):
    return [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [x, x]]


def test_plot_loss(fitted):
    *_, history = fitted
    fig = plots.plot_loss(history)
    ax, twin = fig.axes
    assert len(ax.get_lines()[0].get_xdata()) == 5
    assert len(twin.get_lines()[0].get_ydata()) == 5
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss (−ELBO / N)", "val error"]
    plt.close(fig)


def test_plot_group_histograms_marks_threshold_and_kept(fitted):
    bnn, *_ = fitted
    la = pc.Posterior(bnn).log_alpha()
    kept = {k: v < 0 for k, v in la.items()}
    fig = plots.plot_group_histograms(la, kept=kept, threshold=0.0)
    assert len(fig.axes) == 2
    for ax, name in zip(fig.axes, la):
        assert len(_vertical_lines_at(ax, 0.0)) == 1
        heights = sum(p.get_height() for p in _bars(ax))
        assert heights == la[name].numel()  # every group is in one bar, kept or pruned
        assert ax.get_title().startswith(f"layer {name}")
    plt.close(fig)


def test_plot_pip_stem():
    pip = torch.tensor([0.9, 0.1, 0.6, 0.2])
    fig = plots.plot_pip_stem(pip, feature_names=list("abcd"))
    ax = fig.axes[0]
    stems = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(stems[0].get_segments()) == 4
    assert any(list(ln.get_ydata()) == [0.5, 0.5] for ln in ax.get_lines())
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")
    plt.close(fig)


def _cutoff_lines(ax):
    """The dashed horizontal lines (axhline) of an Axes."""
    return [
        ln for ln in ax.get_lines() if ln.get_linestyle() == "--" and len(set(ln.get_ydata())) == 1
    ]


def test_plot_pip_stem_draws_the_given_cut_off():
    pip = torch.tensor([0.9, 0.1, 0.6, 0.2])
    fig = plots.plot_pip_stem(
        pip, threshold=0.6, threshold_label="Bayesian FDR ≤ 0.25 cut-off",
        selected=[True, False, True, False],
    )  # fmt: skip
    ax = fig.axes[0]
    (line,) = _cutoff_lines(ax)
    assert list(line.get_ydata()) == [0.6, 0.6]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["Bayesian FDR ≤ 0.25 cut-off (PIP ≥ 0.6)", "selected"]
    plt.close(fig)
    # the default is the median-probability model's 0.5; None draws no line
    fig = plots.plot_pip_stem(pip)
    assert [list(ln.get_ydata()) for ln in _cutoff_lines(fig.axes[0])] == [[0.5, 0.5]]
    plt.close(fig)
    fig = plots.plot_pip_stem(pip, threshold=None)
    assert _cutoff_lines(fig.axes[0]) == [] and fig.axes[0].get_legend() is None
    plt.close(fig)


@pytest.mark.parametrize("threshold", [1.5, -0.1, float("nan"), True, "0.5"])
def test_plot_pip_stem_refuses_a_bad_threshold(threshold):
    with pytest.raises(ValueError, match=r"threshold must be a PIP cut-off in \[0, 1\]"):
        plots.plot_pip_stem(torch.tensor([0.9, 0.1]), threshold=threshold)
    plt.close("all")


def test_plot_input_importance():
    fig = plots.plot_input_importance([0, 9, 63], (8, 8))
    img = fig.axes[0].get_images()[0].get_array()
    assert img.shape == (8, 8) and img.sum() == 3 and img[1, 1] == 1
    assert "3 of 64" in fig.axes[0].get_title()
    plt.close(fig)


def test_pruning_curve_and_plot(fitted):
    bnn, X, y, _ = fitted
    curve = pruning_curve(bnn, (X, y), fractions=[0.0, 0.5, 0.9])
    assert curve[0][0] == 0.0 and curve[-1][0] > curve[1][0] > 0.0
    assert all(0.0 <= err <= 1.0 for _, err in curve)
    fig = plots.plot_pruning_curve(curve)
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [c[0] for c in curve]
    plt.close(fig)


def test_plot_architecture_and_bits():
    fig = plots.plot_architecture([64, 100, 10], [30, 12, 10])
    assert sorted(p.get_height() for p in _bars(fig.axes[0])) == [10, 10, 12, 30, 64, 100]
    plt.close(fig)
    fig = plots.plot_bits([5, 7, 9], ["1", "3", "5"])
    assert [p.get_height() for p in _bars(fig.axes[0])] == [5, 7, 9]
    assert any(list(ln.get_ydata()) == [32, 32] for ln in fig.axes[0].get_lines())
    plt.close(fig)


def test_plot_forest_from_datatree(fitted):
    bnn, X, y, _ = fitted
    tree = pc.Posterior(bnn).to_datatree(X, y, num_samples=20)
    fig = plots.plot_forest(tree)
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "layer1_scale" in texts and "layer3_scale" in texts
    plt.close(fig)


def test_plots_draw_into_a_given_axes():
    fig, ax = plt.subplots()
    assert plots.plot_bits([3, 4], ax=ax) is fig
    assert plots.plot_architecture([4, 2], [2, 2], ax=ax) is fig
    plt.close(fig)
