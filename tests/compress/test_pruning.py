import pytest
import torch
from torch import nn

import pyrocompress as pc
from pyrocompress.compress import build_compact, count_flops, load_compact, save_compact
from pyrocompress.compress.pruning import REPORT_KEYS, make_plan, prune


def _trained(net, prior, X, y, epochs=3):
    bnn = pc.bayesianize(net, prior=prior, seed=0)
    pc.fit(bnn, (X, y), epochs=epochs, batch_size=64, lr=1e-2, progress=False)
    return bnn


def _random_masks(bnn, frac=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for name, layer in bnn.bayesian_layers().items():
        m = torch.rand(layer.spec.num_groups, generator=g) > frac
        m[0] = True
        masks[name] = m
    return masks


@pytest.mark.parametrize("prior", ["gaussian", "group-nj", "group-horseshoe", "spike-slab"])
def test_compact_mlp_equals_masked_network(prior):
    torch.manual_seed(0)
    X, y = torch.randn(64, 12), torch.randint(0, 3, (64,))
    bnn = _trained(pc.mlp([12, 20, 15, 3]), prior, X, y, epochs=1)
    masks = _random_masks(bnn)
    compact, info = build_compact(bnn, masks, X)
    conditional, _ = build_compact(bnn, masks, X, conditional=True)
    with torch.no_grad():
        torch.testing.assert_close(compact(X), bnn.predict_point(X, masks), rtol=1e-5, atol=1e-5)
        expected = bnn.predict_point(X, masks, conditional=True)
        torch.testing.assert_close(conditional(X), expected, rtol=1e-5, atol=1e-5)
    # physically smaller: kept inputs of layer k+1 are the rows of layer k
    linears = [m for m in compact if isinstance(m, nn.Linear)]
    names = list(masks)
    assert linears[0].in_features == int(masks[names[0]].sum())
    assert linears[0].out_features == int(masks[names[1]].sum())
    assert linears[1].out_features == int(masks[names[2]].sum())
    assert linears[2].out_features == 3
    assert info.architecture_after == [
        int(masks[names[0]].sum()),
        int(masks[names[1]].sum()),
        int(masks[names[2]].sum()),
        3,
    ]
    assert info.params_after == sum(p.numel() for p in compact.parameters())


@pytest.mark.parametrize("act", [nn.ReLU, nn.Sigmoid])
def test_compact_conv_equals_masked_network(act):
    """Channels through Flatten; Sigmoid checks the folding of f(0) != 0 into the bias."""
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 6, 3), act(), nn.MaxPool2d(2),
        nn.Conv2d(6, 5, 3), act(),
        nn.Flatten(), nn.Linear(5 * 2 * 2, 7), act(), nn.Linear(7, 4),
    )  # fmt: skip
    X, y = torch.randn(32, 1, 10, 10), torch.randint(0, 4, (32,))
    bnn = _trained(net, "group-nj", X, y, epochs=1)
    masks = _random_masks(bnn, frac=0.4, seed=3)
    compact, info = build_compact(bnn, masks, X)
    with torch.no_grad():
        expected = bnn.predict_point(X, masks)
        got = compact(X)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    convs = [m for m in compact if isinstance(m, nn.Conv2d)]
    assert convs[0].out_channels <= int(masks["0"].sum())
    assert convs[1].in_channels == convs[0].out_channels
    assert info.architecture_before == [1, 6, 5, 20, 7, 4]
    assert info.flops_after < info.flops_before
    assert info.flops_after == count_flops(compact, X)


def test_flops_of_lenet5():
    net = pc.lenet5_caffe()
    x = torch.zeros(1, 1, 28, 28)
    macs = 20 * 25 * 24 * 24 + 50 * 20 * 25 * 8 * 8 + 800 * 500 + 500 * 10
    assert count_flops(net, x) == 2 * macs


def test_save_and_load_compact_weights_only(tmp_path):
    torch.manual_seed(0)
    X, y = torch.randn(64, 12), torch.randint(0, 3, (64,))
    bnn = _trained(pc.mlp([12, 20, 3]), "group-nj", X, y, epochs=1)
    masks = _random_masks(bnn)
    compact, _ = build_compact(bnn, masks, X)
    path = tmp_path / "model.pt"
    save_compact(compact, path, model="mlp")
    payload = torch.load(path, weights_only=True)
    assert payload["metadata"] == {"model": "mlp"}
    loaded = load_compact(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), compact(X))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_load_compact_rejects_other_files(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a pyrocompress compact model"):
        load_compact(path)


def test_rules_and_report_keys(relevant_data):
    X, y = relevant_data
    bnn = _trained(pc.mlp([8, 16, 2]), "spike-slab", X, y, epochs=5)
    pip = pc.Posterior(bnn).inclusion_probabilities()
    plan = make_plan(bnn, "pip")
    for name in pip:
        expected = pip[name] >= 0.5
        if expected.any():
            assert torch.equal(plan.masks[name], expected)
    plan = make_plan(bnn, "sparsity", sparsity=0.5)
    total = sum(m.numel() for m in plan.masks.values())
    assert abs(sum(int(m.sum()) for m in plan.masks.values()) - total / 2) <= 1
    result = prune(bnn, "auto", validation=(X[:200], y[:200]), test=(X[200:], y[200:]))
    assert set(REPORT_KEYS) <= set(result.report)
    r = result.report
    assert 0 <= r["test_error_bayes"] <= 1 and 0 <= r["test_error_compact"] <= 1
    assert r["params_after"] <= r["params_before"]
    assert r["compression_rate_params"] == pytest.approx(r["params_before"] / r["params_after"])
    assert r["validation_error_pruned"] <= r["validation_error_unpruned"] + 0.01 + 1e-9


def test_spike_slab_pruning_nothing_gives_back_the_posterior_mean_network(relevant_data):
    """Inclusion probabilities away from 1: the weights given inclusion (mu) make another
    network than the posterior mean (pi * mu); the default compact network is the latter."""
    X, y = relevant_data
    bnn = _trained(pc.mlp([8, 16, 2]), "spike-slab", X, y, epochs=1)
    pip = pc.Posterior(bnn).inclusion_probabilities()
    assert any(((p > 0.05) & (p < 0.95)).any() for p in pip.values())  # the case at hand
    everything = {k: torch.ones_like(v, dtype=torch.bool) for k, v in pip.items()}
    compact, _ = build_compact(bnn, everything, X)
    conditional, _ = build_compact(bnn, everything, X, conditional=True)
    with torch.no_grad():
        mean = bnn.predict_point(X)
        torch.testing.assert_close(compact(X), mean, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(conditional(X), mean, rtol=1e-3, atol=1e-3)
    result = prune(bnn, "pip", threshold=0.0, test=(X, y))
    assert result.report["test_error_compact"] == pytest.approx(result.report["test_error_bayes"])
    result = prune(bnn, "pip", threshold=0.0, test=(X, y), conditional=True)
    assert result.report["params_after"] == result.report["params_before"]


def test_rule_validation(relevant_data):
    X, y = relevant_data
    bnn = _trained(pc.mlp([8, 4, 2]), "group-nj", X, y, epochs=1)
    with pytest.raises(ValueError, match="rule must be one of"):
        make_plan(bnn, "magic")
    with pytest.raises(ValueError, match="needs validation data"):
        make_plan(bnn, "auto")
    with pytest.raises(ValueError, match="sparsity"):
        make_plan(bnn, "sparsity", sparsity=1.5)
    with pytest.raises(ValueError, match="PIP threshold"):
        make_plan(bnn, "pip", threshold=2.0)


@pytest.mark.parametrize("rule", ["log_alpha", "pip", "snr"])
def test_per_layer_thresholds_apply_each_layers_own_threshold(relevant_data, rule):
    """threshold as a dict (Louizos et al.'s per-layer log alpha thresholds): each layer is
    cut at its own value, exactly as the single-number rule with that value cuts it."""
    X, y = relevant_data
    bnn = _trained(pc.mlp([8, 6, 4, 2]), "group-nj", X, y, epochs=5)
    post = pc.Posterior(bnn)
    names = post.layer_names
    scores = {
        "log_alpha": post.log_alpha(),
        "pip": post.inclusion_probabilities(),
        "snr": post.snr("group"),
    }[rule]
    # per layer, a threshold at that layer's median score: about half its groups kept
    th = {k: float(v.median()) for k, v in scores.items()}
    plan = make_plan(bnn, rule, threshold=th)
    assert plan.thresholds == th
    for name in names:
        single = make_plan(bnn, rule, threshold=th[name])
        assert torch.equal(plan.masks[name], single.masks[name]), name
    # the layers' thresholds differ, so one number cannot give the same plan
    assert len(set(th.values())) > 1


def test_per_layer_thresholds_must_name_every_layer(relevant_data):
    X, y = relevant_data
    bnn = _trained(pc.mlp([8, 4, 2]), "group-nj", X, y, epochs=1)
    names = pc.Posterior(bnn).layer_names
    with pytest.raises(ValueError, match=r"name every layer exactly.*missing"):
        make_plan(bnn, "log_alpha", threshold={names[0]: -3.0})
    with pytest.raises(ValueError, match=r"unknown \['fc9'\]"):
        make_plan(bnn, "log_alpha", threshold={**dict.fromkeys(names, -3.0), "fc9": 0.0})
    with pytest.raises(ValueError, match="finite number.*for layer"):
        make_plan(bnn, "snr", threshold={**dict.fromkeys(names, 1.0), names[0]: float("nan")})
    with pytest.raises(ValueError, match="takes no threshold"):
        make_plan(bnn, "sparsity", sparsity=0.5, threshold=0.1)


def test_rule_that_empties_a_layer_keeps_best_unit_and_warns(relevant_data):
    X, y = relevant_data
    bnn = _trained(pc.mlp([8, 4, 2]), "group-nj", X, y, epochs=1)
    with pytest.warns(UserWarning, match="removes every unit"):
        plan = make_plan(bnn, "log_alpha", threshold=-1e9)
    assert all(int(m.sum()) == 1 for m in plan.masks.values())


def test_quantize_rounds_weights_to_each_layers_fixed_point_grid(relevant_data):
    X, y = relevant_data
    bnn = _trained(pc.mlp([8, 16, 2]), "group-nj", X, y, epochs=3)
    result = prune(bnn, "pip", validation=(X, y), quantize=True)
    linears = [m for m in result.module if isinstance(m, nn.Linear)]
    assert len(linears) == len(result.report["mantissa_bits"])
    for layer, t in zip(linears, result.report["mantissa_bits"], strict=True):
        steps = layer.weight / 2.0**-t
        torch.testing.assert_close(steps, steps.round(), rtol=0, atol=1e-4)
    plain = prune(bnn, "pip", validation=(X, y))
    assert result.report["architecture_after"] == plain.report["architecture_after"]


@pytest.mark.parametrize("prior", ["group-nj", "spike-slab"])
def test_restrict_fixes_a_pruning_through_training_and_pruning(prior):
    """A restricted network ignores the removed groups' parameters, keeps them removed in
    later plans, and its compact network equals its posterior-mean network."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 9), nn.ReLU(),
        nn.Linear(9, 3),
    )  # fmt: skip
    X, y = torch.randn(96, 1, 8, 8), torch.randint(0, 3, (96,))
    bnn = _trained(net, prior, X, y, epochs=1)
    masks = _random_masks(bnn, frac=0.4, seed=5)
    bnn.restrict(masks)
    assert all(torch.equal(bnn.group_masks()[k], masks[k]) for k in masks)
    before = bnn.predict_point(X)
    with torch.no_grad():  # parameters of removed groups no longer matter
        for name, layer in bnn.bayesian_layers().items():
            drop = ~masks[name]
            w = bnn.guide[name].weight_loc
            if layer.spec.kind == "linear":
                w[:, drop] += 5.0
            else:
                w[drop] += 5.0
                bnn.guide[name].bias_loc[drop] += 5.0
    torch.testing.assert_close(bnn.predict_point(X), before)
    pc.fit(bnn, (X, y), epochs=2, batch_size=32, lr=1e-2, progress=False)
    for rule, kw in (("snr", {"threshold": 0.0}), ("auto", {"validation": (X, y)})):
        plan = make_plan(bnn, rule, **kw)
        for name in masks:
            assert not (plan.masks[name] & ~masks[name]).any()
    result = prune(bnn, "snr", threshold=0.0, test=(X, y))
    assert result.report["test_error_compact"] == pytest.approx(result.report["test_error_bayes"])
    bnn.restrict(None)
    assert bnn.group_masks() is None


def test_restrict_validates_its_masks(relevant_data):
    X, y = relevant_data
    bnn = _trained(pc.mlp([8, 4, 2]), "group-nj", X, y, epochs=1)
    names = list(bnn.bayesian_layers())
    with pytest.raises(ValueError, match="one boolean group mask for every Bayesian layer"):
        bnn.restrict({names[0]: torch.ones(8, dtype=torch.bool)})
    full = {n: torch.ones(layer.spec.num_groups, dtype=torch.bool) for n, layer in
            bnn.bayesian_layers().items()}  # fmt: skip
    with pytest.raises(ValueError, match="has 3 entries"):
        bnn.restrict({**full, names[0]: torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="removes every group"):
        bnn.restrict({**full, names[1]: torch.zeros(4, dtype=torch.bool)})


def test_a_collapsed_fit_is_warned_about_when_pruned():
    """Issue 25: at lr 0.5 training stays finite but ends at chance level, and the
    automatic rule prunes it to one unit a layer; both are now said."""
    import warnings

    from pyrocompress import data as datasets

    splits = datasets.load_dataset("digits", seed=0)
    bnn = pc.bayesianize(pc.mlp([64, 16, 10]), "spike-slab", seed=0)
    pc.fit(bnn, splits.train, epochs=10, lr=0.5, progress=False, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pc.prune(bnn, validation=(splits.val.X, splits.val.y))
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert any("no better than chance" in m for m in messages), messages
    assert any("keeps a single unit of layer(s) 3" in m for m in messages), messages
