"""Numerical robustness: no NaN or inf over many seeds, and a diverged run stops loudly."""

import math

import pytest
import torch

import pyrocompress as pc


def _data(seed: int, n: int = 256, p: int = 10):
    g = torch.Generator().manual_seed(1000 + seed)
    X = torch.randn(n, p, generator=g) * 3.0  # unscaled inputs, as users will pass them
    y = 2.0 * X[:, 0] - X[:, 1] ** 2 + torch.randn(n, generator=g)
    return X, y


@pytest.mark.parametrize("prior", ["group-nj", "group-horseshoe"])
def test_twenty_seeds_train_without_nan_or_inf(prior):
    """20 seeds x 30 epochs at a large learning rate (1e-2) on a regression with large
    inputs: every epoch's loss and every parameter stay finite, and the posterior
    summaries used for pruning too."""
    for seed in range(20):
        X, y = _data(seed)
        bnn = pc.bayesianize(pc.mlp([10, 16, 8, 1]), prior, likelihood="gaussian", seed=seed)
        history = pc.fit(bnn, (X, y), epochs=30, batch_size=32, lr=1e-2, seed=seed, progress=False)
        assert all(math.isfinite(v) for v in history.loss), (prior, seed)
        for name, p in bnn.named_parameters():
            assert torch.isfinite(p).all(), (prior, seed, name)
        post = pc.Posterior(bnn)
        for name, v in post.log_alpha().items():
            assert not torch.isnan(v).any(), (prior, seed, name)
        for name, v in post.snr("group").items():
            assert torch.isfinite(v).all(), (prior, seed, name)


def test_a_non_finite_loss_stops_training_with_a_pointer_to_the_fix():
    X, y = _data(0)
    bnn = pc.bayesianize(pc.mlp([10, 4, 1]), "group-nj", likelihood="gaussian", seed=0)
    with torch.no_grad():
        bnn.guide["1"].weight_loc[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 1.*learning rate"):
        pc.fit(bnn, (X, y), epochs=3, progress=False)


def test_a_parameter_broken_by_the_last_step_stops_training_with_a_pointer_to_the_fix(
    monkeypatch,
):
    """The loss of an epoch is computed before its steps, so a NaN written by the very last
    optimiser step would go unseen by the loss check: fit checks the parameters."""
    from pyrocompress.infer import training as infer

    X, y = _data(0, n=64)
    bnn = pc.bayesianize(pc.mlp([10, 4, 1]), "group-nj", likelihood="gaussian", seed=0)
    make_adam = infer._adam
    steps = []

    def poisoned_adam(params, lr):
        optimizer = make_adam(params, lr)
        step = optimizer.step

        def last_step_breaks(*args, **kwargs):
            out = step(*args, **kwargs)
            steps.append(1)
            if len(steps) == 4:  # 2 epochs x 2 minibatches: the last step of the run
                with torch.no_grad():
                    bnn.guide["1"].weight_loc[0, 0] = float("inf")
            return out

        optimizer.step = last_step_breaks
        return optimizer

    monkeypatch.setattr(infer, "_adam", poisoned_adam)
    with pytest.raises(FloatingPointError) as e:
        pc.fit(bnn, (X, y), epochs=2, batch_size=32, lr_schedule="constant", progress=False)
    message = str(e.value)
    assert len(steps) == 4
    assert message.startswith("the parameter guide.layers.1.weight_loc became NaN or inf")
    assert "at epoch 2; training stopped" in message
    assert "Lower the learning rate (lr=0.01)" in message and "GroupNormalJeffreys" in message


def test_finite_parameters_pass_the_final_check():
    X, y = _data(1, n=64)
    bnn = pc.bayesianize(pc.mlp([10, 4, 1]), "group-nj", likelihood="gaussian", seed=0)
    history = pc.fit(bnn, (X, y), epochs=1, batch_size=32, progress=False)
    assert len(history) == 1
