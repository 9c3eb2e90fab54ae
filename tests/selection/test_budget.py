"""The selector's default training budget follows the data (training_budget)."""

import math

import numpy as np
import pytest
import torch

from pyrocompress.cli import main
from pyrocompress.selection.estimator import (
    CONVERGENCE_WINDOW,
    DEFAULT_STEPS,
    DEFAULT_TOL,
    FULL_BATCH_LR,
    FULL_BATCH_ROWS,
    FULL_BATCH_STEPS,
    FeatureSelector,
    training_budget,
)


def test_small_data_gets_full_batches_and_the_convergence_stop():
    b = training_budget(442)
    assert b.batch_size == 442 and b.epochs == FULL_BATCH_STEPS
    assert (b.lr, b.tol, b.window, b.threads) == (FULL_BATCH_LR, DEFAULT_TOL, CONVERGENCE_WINDOW, 1)
    assert b.kl_warmup == round(0.1 * FULL_BATCH_STEPS)
    assert b.pretrain_epochs == round(0.1 * FULL_BATCH_STEPS)
    assert training_budget(FULL_BATCH_ROWS).batch_size == FULL_BATCH_ROWS


def test_larger_data_keeps_the_minibatch_budget_without_a_stop():
    n = FULL_BATCH_ROWS + 1
    b = training_budget(n)
    assert b.batch_size == 256 and b.epochs == math.ceil(DEFAULT_STEPS / math.ceil(n / 256))
    assert (b.lr, b.tol, b.threads) == (0.01, None, None)


def test_explicit_epochs_keep_the_old_behaviour():
    b = training_budget(442, epochs=50)
    assert (b.batch_size, b.epochs, b.lr, b.tol) == (256, 50, 0.01, None)
    assert (b.kl_warmup, b.pretrain_epochs) == (5, 5)


def test_max_steps_tol_and_lr_shape_the_default_budget():
    b = training_budget(442, max_steps=40_000, tol=None, lr=0.02, pretrain_epochs=0)
    assert (b.epochs, b.tol, b.lr, b.kl_warmup, b.pretrain_epochs) == (40_000, None, 0.02, 4000, 0)
    assert training_budget(5000, max_steps=100).epochs == math.ceil(100 / 20)


def test_selector_on_small_data_uses_full_batches_stops_and_restores_threads():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = X[:, 0] + rng.normal(size=120)  # R^2 = 1/2: a loss far from 0
    threads = torch.get_num_threads()
    sel = FeatureSelector(hidden=(), max_steps=500, tol=0.05, random_state=0).fit(X, y)
    assert torch.get_num_threads() == threads  # one thread during the fit, then restored
    assert sel.budget_.batch_size == 120 and sel.budget_.epochs == 500
    assert sel.history_.converged_at is not None, sel.history_.stop_reason
    assert len(sel.history_) == sel.history_.converged_at + CONVERGENCE_WINDOW < 500
    assert sel.support_.tolist() == [True, False, False]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"max_steps": 0}, "max_steps must be an integer >= 1"),
        ({"tol": 0}, "tol must be a number > 0 or None"),
        ({"lr": -1.0}, "lr must be a number > 0"),
    ],
)
def test_budget_parameters_are_validated(params, message):
    X, y = np.zeros((10, 2)), np.arange(10.0)
    with pytest.raises(ValueError, match=message):
        FeatureSelector(**params).fit(X, y)


def test_cli_budget_options(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    csv = tmp_path / "t.csv"
    rows = ["a,b,y"] + [f"{a},{b},{2 * a + 0.1 * e}" for (a, b), e in zip(X, rng.normal(size=60))]
    csv.write_text("\n".join(rows) + "\n")
    base = ["select", "--csv", str(csv), "--target", "y", "--hidden", "0", "--quiet"]
    assert main([*base, "--max-steps", "30", "--tol", "off"]) == 0
    assert "30 epochs" in capsys.readouterr().out  # all of them: no convergence stop
    assert main([*base, "--tol", "0"]) == 2
    assert "--tol must be a number > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--tol", "soon"])
