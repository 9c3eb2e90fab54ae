"""Every code path honours the device (issue 7, item 6).

Each test runs on the CPU and, where a CUDA device is present, again on it (the ``cuda``
cases are skipped otherwise): training with every prior and objective, the posterior
summaries, pruning and export of a network trained on the device, moment propagation,
checkpoint and resume, diagnostics and the command line.
"""

import json
import math

import pytest
import torch
from torch import nn

import pyrocompress as pc
from pyrocompress.cli import main

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ),
]
PRIORS = ("gaussian", "group-nj", "group-horseshoe", "spike-slab")


def _images(n=96, seed=0):
    """Tiny 1×8×8 images whose class is the brighter half (left or right)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 1, 8, 8, generator=g)
    y = (X[..., :4].mean((1, 2, 3)) > X[..., 4:].mean((1, 2, 3))).long()
    return X, y


def _convnet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 6),
        nn.ReLU(),
        nn.Linear(6, 2),
    )


def _on(module: nn.Module, device: str) -> bool:
    return all(p.device.type == device for p in module.parameters())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("local_reparam", [True, False])
def test_training_stays_on_the_device(device, prior, local_reparam):
    if prior == "spike-slab" and not local_reparam:
        pytest.skip("spike-and-slab gates are marginalised only in the local reparametrisation")
    X, y = _images()
    bnn = pc.bayesianize(_convnet(), prior, seed=0)
    h = pc.fit(
        bnn,
        (X, y),
        validation=(X, y),
        epochs=2,
        batch_size=32,
        lr=1e-2,
        local_reparam=local_reparam,
        device=device,
        progress=False,
        seed=0,
    )
    assert all(math.isfinite(v) for v in h.loss)
    assert 0.0 <= h.val_metric[-1] <= 1.0
    assert _on(bnn, device)
    # data left on the CPU are moved to the network's device by every evaluator
    assert 0.0 <= bnn.point_error(X, y) <= 1.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("prior", PRIORS)
def test_posterior_summaries_pruning_and_export_of_a_network_on_the_device(device, prior):
    X, y = _images()
    bnn = pc.bayesianize(_convnet(), prior, seed=0)
    pc.fit(bnn, (X, y), epochs=2, batch_size=32, lr=1e-2, device=device, progress=False)
    post = pc.Posterior(bnn)
    for summary in (post.snr("group"), post.snr("weight"), post.weight_var()):
        for name, v in summary.items():
            assert v.device.type == device, name
            assert torch.isfinite(v).all(), name
    if bnn.prior.has_inclusion_probabilities:
        for v in post.inclusion_probabilities().values():
            assert ((v >= 0) & (v <= 1)).all()
    bits = post.bit_precision()
    assert all(2 <= b.total <= 32 for b in bits.values())

    result = pc.prune(bnn, "auto", validation=(X, y), test=(X, y), tolerance=0.05)
    assert _on(bnn, device)  # pruning reads the posterior where it is
    compact = result.module.to(device)
    with torch.no_grad():
        out = compact(X.to(device))
    assert out.shape == (len(X), 2) and out.device.type == device
    assert 0.0 <= result.report["test_error_compact"] <= 1.0


@pytest.mark.parametrize("device", DEVICES)
def test_moments_objective_and_predictions_on_the_device(device):
    X, y = _images()
    bnn = pc.bayesianize(_convnet(), "gaussian", seed=0)
    h = pc.fit(
        bnn, (X, y), epochs=2, batch_size=32, lr=1e-2, objective="moments", device=device,
        progress=False,
    )  # fmt: skip
    assert all(math.isfinite(v) for v in h.loss)
    mean, var = pc.propagate(bnn, X[:8].to(device))
    assert mean.device.type == device and (var >= 0).all()
    pred = pc.predictive_moments(bnn, X)  # inputs on the CPU are moved
    assert torch.allclose(pred["probs"].sum(-1).cpu(), torch.ones(len(X)), atol=1e-5)
    for score, layers in pc.unit_scores(bnn, X).items():
        assert all(torch.isfinite(s).all() for s in layers.values()), score
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 6), nn.ReLU(), nn.Linear(6, 2))
    mlp = pc.bayesianize(mlp, "gaussian", seed=0)
    pc.fit(mlp, (X, y), epochs=1, batch_size=32, objective="moments", device=device, progress=False)
    full = pc.predictive_moments(mlp, X, covariance="full")
    assert full["cov"].device.type == device and full["cov"].shape == (len(X), 2, 2)


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoint_resume_on_the_device(tmp_path, monkeypatch, device):
    """A resumed run on the device continues the interrupted one: same epochs, and losses
    equal up to the nondeterminism of GPU reductions (exact on the CPU)."""
    X, y = _images()
    settings = dict(epochs=3, batch_size=32, lr=1e-2, seed=1, device=device, progress=False)
    full = pc.bayesianize(_convnet(), "group-horseshoe", seed=0)
    h_full = pc.fit(full, (X, y), **settings)

    # the same run, stopped during epoch 2 (after the checkpoint of epoch 1), resumed
    first = pc.bayesianize(_convnet(), "group-horseshoe", seed=0)
    calls = {"n": 0}
    original = type(first).point_error

    class Stop(Exception):
        pass

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Stop
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(first), "point_error", dying)
    with pytest.raises(Stop):
        pc.fit(first, (X, y), validation=(X, y), checkpoint_dir=tmp_path / "r", **settings)
    monkeypatch.undo()
    again = pc.bayesianize(_convnet(), "group-horseshoe", seed=5)
    h_again = pc.fit(
        again, (X, y), validation=(X, y), checkpoint_dir=tmp_path / "r", resume=True, **settings
    )
    assert h_again.epoch == h_full.epoch
    assert _on(again, device)
    tol = 0.0 if device == "cpu" else 1e-4
    for a, b in zip(h_again.loss, h_full.loss, strict=True):
        assert abs(a - b) <= tol * max(1.0, abs(b))


@pytest.mark.parametrize("device", DEVICES)
def test_diagnostics_of_a_network_on_the_device(device):
    X, y = _images()
    bnn = pc.bayesianize(_convnet(), "group-horseshoe", seed=0)
    pc.fit(bnn, (X, y), epochs=1, batch_size=32, lr=1e-2, device=device, progress=False)
    tree = pc.Posterior(bnn).to_datatree(X[:20], y[:20], num_samples=20, seed=0)
    assert "posterior" in tree.children and "posterior_predictive" in tree.children


@pytest.mark.parametrize("device", DEVICES)
def test_cli_compress_on_the_device(tmp_path, device):
    out = tmp_path / "out"
    args = ["compress", "--model", "mlp:64-16-10", "--prior", "group-nj", "--dataset", "digits"]
    code = main([*args, "--epochs", "2", "--device", device, "--out", str(out), "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["architecture_after"][0] <= 64
    net = pc.load_compact(out / "model.pt")
    assert _on(net, "cpu")  # saved for any machine
