"""The redesign's contracts: effects instead of hidden state, one RNG policy, cheap import,
the traced graph for nested and custom-forward models, and registries that a prior and an
op rule defined only in this file can join end to end."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import pyrocompress as pc


def _xy(n=120, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()
    return X, y.clamp_max(classes - 1)


# ------------------------------------------------------------------------ import cost
def test_import_loads_neither_sklearn_nor_pyplot_and_is_cheap():
    code = (
        "import sys, time\n"
        "import torch, pyro\n"
        "t = time.perf_counter()\n"
        "import pyrocompress\n"
        "dt = time.perf_counter() - t\n"
        "bad = [m for m in ('sklearn', 'matplotlib.pyplot') if m in sys.modules]\n"
        "print(dt, bad)\n"
    )
    times = []
    for _ in range(3):  # the least of three runs: the machine is shared
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        dt, bad = out.stdout.split(" ", 1)
        assert bad.strip() == "[]", bad
        times.append(float(dt))
    assert min(times) <= 0.5, times
    assert pc.FeatureSelector.__name__ == "FeatureSelector"  # still reachable, lazily


# ------------------------------------------------------------------------- RNG policy
def _global_states():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def _assert_same(a, b):
    assert torch.equal(a[0], b[0])
    assert np.array_equal(a[1], b[1])
    assert a[2] == b[2]


def test_seeded_functions_leave_the_callers_global_rng_state_alone():
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    X, y = _xy()
    model = pc.mlp([6, 5, 3])  # torch's own layer initialisation draws from the global stream
    before = _global_states()
    bnn = pc.bayesianize(model, "group-nj", seed=1)
    _assert_same(before, _global_states())
    pc.fit(bnn, (X, y), epochs=1, batch_size=40, seed=2, progress=False)
    _assert_same(before, _global_states())
    pc.pretrain(bnn, (X, y), epochs=1, batch_size=40, seed=3)
    _assert_same(before, _global_states())
    pytest.importorskip("sklearn")
    sel = pc.FeatureSelector(hidden=(4,), epochs=2, pretrain_epochs=1, random_state=0)
    sel.fit(X.numpy(), y.numpy())
    _assert_same(before, _global_states())


def test_same_seed_same_result_whatever_the_global_state():
    X, y = _xy()
    results = []
    for outer in (0, 99):
        torch.manual_seed(outer)
        bnn = pc.bayesianize(pc.mlp([6, 5, 3]), "group-horseshoe", seed=4)
        pc.fit(bnn, (X, y), epochs=2, batch_size=40, seed=5, progress=False)
        results.append(bnn.state_dict())
    for k, v in results[0].items():
        assert torch.equal(v, results[1][k]), k


# ----------------------------------------------------------------------- point effect
def test_nested_point_estimates_are_reentrant():
    X, _ = _xy()
    bnn = pc.bayesianize(pc.mlp([6, 5, 3]), "group-nj", seed=0)
    masks = {
        name: torch.arange(m.spec.num_groups) % 2 == 0 for name, m in bnn.bayesian_layers().items()
    }
    with torch.no_grad(), bnn.point_estimate():
        full = bnn.net(X)
        with bnn.point_estimate(masks):
            masked = bnn.net(X)
        again = bnn.net(X)  # the outer block's weights are back: not prior draws
        assert torch.equal(again, full)
        assert not torch.equal(masked, full)
    torch.testing.assert_close(full, bnn.predict_point(X))
    torch.testing.assert_close(masked, bnn.predict_point(X, masks))


# --------------------------------------------------------- nested and custom forwards
class _Net(nn.Module):
    """A traceable model with its own forward (functional ReLU and flatten)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc1 = nn.Linear(4 * 4 * 4, 10)
        self.fc2 = nn.Linear(10, 3)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = torch.flatten(x, 1)
        x = nn.functional.relu(self.fc1(x))
        return self.fc2(x)


def _image_data(n=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 1, 6, 6, generator=g)
    y = (X[:, 0, 2:4, 2:4].mean((1, 2)) > 0).long() + (X[:, 0, 0, 0] > 1).long()
    return X, y


MODELS = {
    "nested-sequential": (
        lambda: nn.Sequential(
            nn.Sequential(nn.Flatten(), nn.Linear(6, 7), nn.ReLU()), nn.Linear(7, 3)
        ),
        _xy,
    ),
    "custom-forward": (_Net, _image_data),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_function_works_on_nested_and_custom_forward_models(name, tmp_path):
    make, data = MODELS[name]
    X, y = data()
    model = make()
    # moments: gaussian prior, both objectives
    for objective in ("elbo", "moments"):
        bnn = pc.bayesianize(model, "gaussian", seed=0)
        pc.fit(bnn, (X, y), epochs=2, batch_size=30, objective=objective, seed=0, progress=False)
    mean, var = pc.propagate(bnn, X)
    assert mean.shape == (len(X), 3) and bool((var >= 0).all())
    scores = pc.unit_scores(bnn, X)
    assert set(scores["variance_share"]) == set(bnn.bayesian_layers())
    for rule, kw in {
        "auto": {"validation": (X, y)},
        "snr": {},
        "log_alpha": {},
        "sparsity": {"sparsity": 0.3},
    }.items():
        result = pc.prune(bnn, rule, test=(X, y), example_input=X, **kw)
        torch.testing.assert_close(result.module(X), bnn.predict_point(X, result.plan.masks))
    gated = pc.bayesianize(model, "spike-slab", seed=0)
    pc.fit(gated, (X, y), epochs=1, batch_size=30, seed=0, progress=False)
    for rule in ("pip", "fdr"):
        result = pc.prune(gated, rule, example_input=X)
        torch.testing.assert_close(result.module(X), gated.predict_point(X, result.plan.masks))
    if isinstance(result.module, nn.Sequential):
        pc.save_compact(result.module, tmp_path / "m.pt")
        loaded = pc.load_compact(tmp_path / "m.pt")
    else:  # the user's own class is rebuilt by its factory
        assert type(result.module) is type(model)
        pc.save_compact(result.module, tmp_path / "m.pt", factory=f"{__file__}:{name_of(model)}")
        loaded = pc.load_compact(tmp_path / "m.pt", factory=type(model))
    torch.testing.assert_close(loaded(X), result.module(X))


def name_of(model: nn.Module) -> str:
    return type(model).__name__


def test_untraceable_forward_is_refused_with_the_reason():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow
                return self.fc(x)
            return -self.fc(x)

    bnn = pc.bayesianize(Branchy(), "gaussian", seed=0)
    X, _ = _xy()
    with pytest.raises(TypeError, match="torch.fx cannot trace"):
        pc.propagate(bnn, X)


def test_a_residual_sum_with_the_input_keeps_its_channels_and_stays_exact():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 3)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)) + x)

    X, y = _xy()
    bnn = pc.bayesianize(Residual(), "group-nj", seed=0)
    pc.fit(bnn, (X, y), epochs=2, batch_size=40, seed=0, progress=False)
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=X)
    # the six summed channels are the input's too, which cannot shrink: all stay
    assert type(result.module) is Residual and result.module.a.out_features == 6
    torch.testing.assert_close(result.module(X), bnn.predict_point(X, result.plan.masks))


def test_cli_reaches_every_pruning_rule(tmp_path, capsys):
    from pyrocompress.cli import main

    base = ["compress", "--model", "mlp:64-8-10", "--prior", "spike-slab", "--dataset", "digits"]
    base += ["--epochs", "1", "--quiet"]
    for rule, threshold in (("pip", "0.5"), ("fdr", "0.2"), ("log_alpha", "0"), ("snr", "0.5")):
        out = tmp_path / rule
        assert main([*base, "--rule", rule, "--threshold", threshold, "--out", str(out)]) == 0
        report = __import__("json").loads((out / "report.json").read_text())
        assert report["rule"] == rule
    assert main([*base, "--rule", "pip", "--threshold", "1.5", "--out", str(tmp_path / "x")]) == 2
    assert "--threshold 1.5 for --rule pip" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_point_estimate_under_a_block_of_sample_sites_and_under_a_block_of_everything():
    """The point weights are a Pyro effect: a block of sample sites leaves them, a block
    that hides every message hides them as it hides every effect (documented)."""
    import pyro.poutine as poutine

    X, _ = _xy()
    bnn = pc.bayesianize(pc.mlp([6, 5, 3]), "group-horseshoe", seed=0)
    with torch.no_grad(), bnn.point_estimate():
        point = bnn.net(X)
        with poutine.block(hide_types=["sample"]):
            assert torch.equal(bnn.net(X), point)
        with poutine.block():
            assert not torch.equal(bnn.net(X), point)  # the layers sample from the prior


def test_the_traced_graph_does_not_keep_a_network_alive():
    import gc
    import weakref

    from pyrocompress.nn.graph import network_graph

    net = nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 2))
    assert len(network_graph(net).chain()) == 3
    ref = weakref.ref(net)
    del net
    gc.collect()
    assert ref() is None


def test_layers_are_ordered_by_the_data_flow_not_by_declaration():
    class HeadFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 3)  # declared first, called last
            self.body = nn.Linear(6, 8)

        def forward(self, x):
            return self.head(torch.relu(self.body(x)))

    X, y = _xy()
    bnn = pc.bayesianize(HeadFirst(), "group-nj", feature_names=list("abcdef"), seed=0)
    assert list(bnn.bayesian_layers()) == ["body", "head"]
    pc.pretrain(bnn, (X, y), epochs=1, batch_size=40)  # the group penalty on the inputs
    history = pc.fit(bnn, (X, y), epochs=1, batch_size=40, progress=False,
                     max_weight_variance={"body": 0.04})  # fmt: skip
    assert len(history) == 1
    result = pc.prune(bnn, "snr", threshold=0.0, example_input=X)
    assert result.report["architecture_before"] == [6, 8, 3]


def test_pruning_refuses_layers_that_disagree_on_the_unit_axis():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Linear(4, 2))  # Linear on width
    bnn = pc.bayesianize(net, "group-nj", seed=0)
    with pytest.raises(TypeError, match="gives its units along axis 1, the second reads axis -1"):
        pc.prune(bnn, "snr", threshold=0.0, example_input=torch.randn(2, 1, 6, 6))


def test_a_bare_layer_prunes_and_exports():
    X, _ = _xy()
    bnn = pc.bayesianize(nn.Linear(6, 3), "group-nj", seed=0)
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=X)
    torch.testing.assert_close(result.module(X), bnn.predict_point(X, result.plan.masks))


def test_view_size_and_slicing_in_a_custom_forward(tmp_path):
    class Viewed(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 5), nn.Linear(5, 3)

        def forward(self, x):
            h = torch.relu(self.a(x.view(x.size(0), -1)))
            return self.b(h)

    class Sliced(Viewed):
        def forward(self, x):
            return self.b(torch.relu(self.a(x))[:, :5])

    X, y = _xy()
    for make in (Viewed, Sliced):
        bnn = pc.bayesianize(make(), "gaussian", seed=0)
        pc.fit(bnn, (X, y), epochs=1, batch_size=40, objective="moments", progress=False)
        mean, var = pc.propagate(bnn, X)
        assert mean.shape == (len(X), 3) and bool((var > 0).all())
        if make is Viewed:  # the full covariance agrees with the diagonal on the diagonal
            full_mean, full_cov = pc.propagate(bnn, X, covariance="full")
            torch.testing.assert_close(full_mean, mean)
            assert full_cov.shape == (len(X), 3, 3)
    for make in (Viewed, Sliced):  # exported as the user's class, its forward kept
        bnn = pc.bayesianize(make(), "group-nj", seed=0)
        result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=X)
        assert type(result.module) is make and result.module.a.out_features < 5
        torch.testing.assert_close(result.module(X), bnn.predict_point(X, result.plan.masks))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("epochs", "an integer in [1, 1000000]"),
        ("max_steps", "an integer >= 1"),
        ("lr", "a number > 0"),
        ("tolerance", "a number in [0, 1)"),
        ("seed", "an integer in [0, 4294967295]"),
        ("pretrain_epochs", "an integer >= 0 or None"),
    ],
)
def test_constraint_descriptions(name, expected):
    from pyrocompress.constraints import PARAMETERS, check

    assert PARAMETERS[name].describe() == expected
    with pytest.raises(ValueError, match=rf"^{name} must be {re.escape(expected)}"):
        check(name, -7.5 if name != "pretrain_epochs" else -1)
    for bad in (True, float("nan"), "3"):
        assert not PARAMETERS[name].admits(bad)
