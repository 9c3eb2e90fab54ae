"""The registries, proved from outside the package: a prior, a Bayesian layer type, an op
rule and a pruning rule defined only in this file work end to end (fit, posterior,
moments, prune, export, files, the CLI). Every registration is undone after its test."""

from __future__ import annotations

import json
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pyrocompress as pc
from pyrocompress.compress import rules as pruning_rules_module
from pyrocompress.nn import convert as convert_module
from pyrocompress.nn import rules as op_rules_module
from pyrocompress.priors import registry as prior_registry
from pyrocompress.priors.base import LOG_VAR_INIT, LayerGuide, LayerSpec, variance


@pytest.fixture
def private_registries(monkeypatch):
    """Registrations made in a test go to copies of the registries, dropped afterwards."""
    monkeypatch.setattr(prior_registry, "_REGISTRY", dict(prior_registry._REGISTRY))
    monkeypatch.setattr(convert_module, "_LAYERS", dict(convert_module._LAYERS))
    monkeypatch.setattr(op_rules_module, "_RULES", dict(op_rules_module._RULES))
    monkeypatch.setattr(pruning_rules_module, "_RULES", dict(pruning_rules_module._RULES))
    yield
    op_rules_module._VERSION[0] += 1  # graphs traced with the test's rules are stale


# ------------------------------------------------------------------------- a new prior
class ScaledNormalGuide(LayerGuide):
    """Its guide family: a log-normal scale per group, with the weights and bias."""

    def _gate_init(self):
        g = self.spec.num_groups
        self.declare("scale_loc", torch.zeros(g), role="loc")
        self.declare("scale_log_var", LOG_VAR_INIT + torch.zeros(g), role="log_var")

    def _gate_guide(self):
        q = dist.LogNormal(self.scale_loc, (0.5 * self.scale_log_var).exp())
        pyro.sample(self.spec.site("scale"), q.to_event(1))

    def gate_moments(self, *, conditional=False):
        m, v = self.scale_loc, variance(self.scale_log_var)
        return (m + 0.5 * v).exp(), (2 * m + 2 * v).exp()


class ScaledNormal(pc.Prior):
    """One positive scale per group, log-normal under prior and guide: w = z * w~,
    log z ~ N(0, spread^2) (the KL of two log-normals is analytic in torch)."""

    hyper_parameters = ("spread",)
    guide_family = ScaledNormalGuide

    def __init__(self, spread: float = 1.0):
        super().__init__()
        self.spread = float(spread)

    def _gate_priors(self, spec, zero):
        return {"scale": dist.LogNormal(zero, zero + self.spread).expand((spec.num_groups,))
                .to_event(1)}  # fmt: skip

    def gate(self, spec, values):
        return values["scale"]

    def gate_log_prior(self, spec, values):
        # log z ~ N(0, spread^2): the density of log z, for the inclusion probabilities
        return lambda log_z: -0.5 * (log_z / self.spread) ** 2

    def local_gate(self, spec, batch_size, qs):
        q = qs["scale"]
        eps = pc.effects.example_noise((batch_size, *q.loc.shape), q.loc)
        return (q.loc + q.scale * eps).exp()


# --------------------------------------------------------------- a new Bayesian layer
class BayesianConv1d(pc.nn.BayesianLayer):
    """The Bayesian counterpart of ``nn.Conv1d`` (groups: output channels)."""

    input_axis = output_axis = 1

    def __init__(self, conv: nn.Conv1d, *, name: str, prior: pc.Prior):
        shape = tuple(conv.weight.shape)
        super().__init__(LayerSpec(name, "conv1d", shape, conv.bias is not None), prior)
        self.stride, self.padding = conv.stride, conv.padding

    def _op(self, x, weight, bias):
        return F.conv1d(x, weight, bias, self.stride, self.padding)

    def to_plain(self, weight, bias):
        plain = nn.Conv1d(weight.shape[1], weight.shape[0], weight.shape[2], self.stride,
                          self.padding, bias=bias is not None)  # fmt: skip
        with torch.no_grad():
            plain.weight.copy_(weight)
            if bias is not None:
                plain.bias.copy_(bias)
        return plain


class Shift(nn.Module):
    """``x + 1``: an op without weights, and with f(0) = 1, so that a pruned channel still
    sends a constant on, which pruning must fold into the next layer's bias."""

    def forward(self, x):
        return x + 1.0


def _register_everything():
    pc.register_prior("test-scaled-normal")(ScaledNormal)
    pc.register_layer(nn.Conv1d, lambda name, m, prior: BayesianConv1d(m, name=name, prior=prior))
    pc.register_op(
        nn.Conv1d,
        pc.OpRule(
            args=("in_channels", "out_channels", "kernel_size", "stride", "padding"),
            flops=lambda m, s: 2 * math.prod(m.weight.shape) * s[-1],
        ),
    )
    pc.register_op(
        Shift, pc.OpRule(moments=lambda op, x: pc.nn.MV(x.mean + 1.0, x.var), mask="same", args=())
    )


def _signals(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, 12, generator=g)
    y = (X[:, 0, :6].mean(1) > 0).long() + (X[:, 1, 6:].mean(1) > 0.3).long()
    return X, y


def _model():
    return nn.Sequential(
        nn.Conv1d(2, 6, 3), Shift(), nn.Conv1d(6, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(40, 3)
    )


def test_a_prior_a_layer_type_and_an_op_defined_here_work_end_to_end(private_registries, tmp_path):
    _register_everything()
    assert "test-scaled-normal" in pc.priors.prior_keys(inclusion_probabilities=True)
    X, y = _signals()
    prior = {"0": "test-scaled-normal", "2": ScaledNormal(0.5), "5": "group-nj"}
    bnn = pc.bayesianize(_model(), prior=prior, seed=0)
    assert isinstance(bnn.net[0], BayesianConv1d) and bnn.priors["2"] == ScaledNormal(0.5)
    pc.fit(bnn, (X, y), epochs=3, batch_size=32, seed=0, progress=False)
    post = pc.Posterior(bnn)
    assert [v.shape for v in post.inclusion_probabilities().values()] == [(6,), (5,), (40,)]
    # the guide's variance bounds come from the declared roles, not from parameter names
    assert len(bnn.guide.log_var_bounds()) == 3 * 3  # weight, bias and scale per layer
    # a plan that removes channels of the first Conv1d: Shift sends a constant on from them
    masks = {n: torch.ones(m.spec.num_groups, dtype=torch.bool)
             for n, m in bnn.bayesian_layers().items()}  # fmt: skip
    masks["0"][[1, 4]] = False
    masks["2"][3] = False
    bnn.restrict(masks)
    result = pc.prune(bnn, "snr", threshold=0.0, example_input=X, test=(X, y))
    bnn.restrict(None)
    assert result.report["architecture_after"][:3] == [2, 4, 4]
    # the compact network computes the masked posterior-mean network (float32 rounding)
    torch.testing.assert_close(result.module(X), bnn.predict_point(X, result.plan.masks))
    assert result.report["prior"] == "test-scaled-normal+group-nj"
    pc.save_compact(result.module, tmp_path / "m.pt")
    torch.testing.assert_close(pc.load_compact(tmp_path / "m.pt")(X), result.module(X))


def test_a_registered_op_rule_gives_moments(private_registries):
    _register_everything()
    X, y = _signals()
    bnn = pc.bayesianize(_model(), "gaussian", seed=0)
    pc.fit(bnn, (X, y), epochs=2, batch_size=32, objective="moments", seed=0, progress=False)
    mean, var = pc.propagate(bnn, X)
    # the first layer's output moments plus one are what the second layer receives
    _, _, inputs = pc.propagate(bnn, X, record=True)
    first = bnn.net[0]
    weight, bias = first.posterior_moments(bnn.guide["0"])
    m0, v0 = first.output_moments(X, torch.zeros_like(X), weight, bias)
    torch.testing.assert_close(inputs["2"][0], m0 + 1.0)
    torch.testing.assert_close(inputs["2"][1], v0)
    assert mean.shape == (len(X), 3) and bool((var > 0).all())
    assert set(pc.unit_scores(bnn, X)["variance_share"]) == {"0", "2", "5"}


def test_a_pruning_rule_defined_here_reaches_prune_and_the_cli(private_registries, tmp_path):
    from pyrocompress.cli import main

    strict = pc.compress.PruningRule(
        "snr-strict",
        statistic=lambda post: post.snr("group"),
        keep=lambda v, t: v >= t,
        scores=lambda post: post.snr("group"),
        default_threshold=2.0,
        check=lambda t: None if t >= 0 else f"an SNR threshold must be >= 0, got {t}",
    )
    pc.register_rule(strict)
    X, y = _signals()
    bnn = pc.bayesianize(pc.mlp([24, 6, 3]), "group-nj", seed=0)
    pc.fit(bnn, (X.flatten(1), y), epochs=2, batch_size=32, seed=0, progress=False)
    with pytest.warns(UserWarning, match="removes every unit"):
        plan = pc.make_plan(bnn, "snr-strict", threshold=1e6)
    assert plan.rule == "snr-strict" and all(int(m.sum()) == 1 for m in plan.masks.values())
    with pytest.raises(ValueError, match="an SNR threshold must be >= 0"):
        pc.make_plan(bnn, "snr-strict", threshold=-1.0)
    out = tmp_path / "out"
    argv = ["compress", "--model", "mlp:64-8-10", "--prior", "group-nj", "--dataset", "digits",
            "--epochs", "1", "--rule", "snr-strict", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "report.json").read_text())["rule"] == "snr-strict"


def test_registering_a_taken_prior_key_is_refused(private_registries):
    class Other(ScaledNormal):
        pass

    pc.register_prior("test-scaled-normal")(ScaledNormal)
    pc.register_prior("test-scaled-normal")(ScaledNormal)  # the same class again: fine
    with pytest.raises(ValueError, match="is taken by"):
        pc.register_prior("test-scaled-normal")(Other)
    with pytest.raises(ValueError, match="a search rule"):
        pc.register_rule(
            pc.compress.PruningRule(
                "auto", statistic=dict, keep=lambda v, t: v, scores=dict, default_threshold=0
            )
        )


def test_unknown_modules_name_both_registries():
    class Weighted(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3))

        def forward(self, x):
            return x * self.w

    with pytest.raises(TypeError, match="register_layer for a layer with weights"):
        pc.bayesianize(nn.Sequential(nn.Linear(3, 3), Weighted()), "group-nj")


def test_prior_hyper_parameters_may_be_lists():
    """A list-valued hyper-parameter is part of the prior's identity (hashable)."""

    class Levels(ScaledNormal):
        hyper_parameters = ("spread", "levels")

        def __init__(self, levels=(1, 2)):
            super().__init__()
            self.levels = list(levels)

    assert hash(Levels()) == hash(Levels([1, 2])) and Levels() == Levels((1, 2))
    assert Levels() != Levels([1, 3])
    X, y = _signals()
    bnn = pc.bayesianize(pc.mlp([24, 4, 3]), Levels(), seed=0)
    pc.fit(bnn, (X.flatten(1), y), epochs=1, batch_size=32, seed=0, progress=False)
