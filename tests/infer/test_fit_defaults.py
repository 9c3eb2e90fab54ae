"""fit's defaults (issue 27): a budget that follows the data, the convergence stop and its
warning, the learning rate that works, and the thread policy."""

import inspect
import warnings

import pytest
import torch

import pyrocompress as pc
from pyrocompress.cli import main
from pyrocompress.infer import training
from pyrocompress.infer.training import FIT_MAX_STEPS, FIT_TOL, FIT_WINDOW_STEPS, fit_budget
from pyrocompress.rng import DEFAULT_THREADS, intra_op_threads


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    return X, (X[:, 0] > 0).long()


def _bnn():
    return pc.bayesianize(pc.mlp([4, 8, 2]), "group-horseshoe", seed=0)


def test_the_defaults_are_the_ones_that_work():
    params = inspect.signature(pc.fit).parameters
    assert params["epochs"].default is None and params["window"].default is None
    assert params["lr"].default == 1e-2 and params["tol"].default == FIT_TOL
    assert params["threads"].default == DEFAULT_THREADS == 1


@pytest.mark.parametrize("steps", [1, 2, 10, 150, 301, 469, 5000])
def test_the_budget_follows_the_steps_per_epoch(steps):
    epochs, window = fit_budget(steps)
    assert window >= 2 and (
        window == 2 or (window - 1) * steps < FIT_WINDOW_STEPS <= window * steps
    )
    assert epochs >= 3 * window  # room for two windows and the anneal
    assert epochs * steps >= FIT_MAX_STEPS or epochs == 3 * window
    assert fit_budget(steps, kl_warmup=7)[0] >= 7 + 3 * window


def test_epochs_none_runs_the_data_budget_and_records_it(monkeypatch):
    monkeypatch.setattr(training, "FIT_MAX_STEPS", 30)  # a short budget: 15 epochs of 2 steps
    monkeypatch.setattr(training, "FIT_WINDOW_STEPS", 4)
    with pytest.warns(pc.ConvergenceWarning):
        history = pc.fit(_bnn(), _data(), batch_size=48, tol=1e-9, progress=False)
    assert len(history) == 15 and history.converged_at is None
    assert history.stop_reason.startswith("maximum of 15 epochs")


def test_a_run_that_converges_does_not_warn_and_stops_early():
    X = torch.randn(256, 4, generator=torch.Generator().manual_seed(1))
    y = X[:, 0] - 0.5 * X[:, 1]
    bnn = pc.bayesianize(pc.mlp([4, 1]), "gaussian", likelihood="gaussian", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pc.ConvergenceWarning)
        history = pc.fit(
            bnn, (X, y), epochs=2000, batch_size=256, objective="moments", window=10, progress=False
        )
    assert history.converged_at is not None and len(history) < 2000
    assert len(history) == history.converged_at + 10  # the anneal over one window


def test_running_out_of_epochs_warns_with_what_to_change():
    with pytest.warns(pc.ConvergenceWarning, match=r"epochs.*tol.*lr") as record:
        pc.fit(_bnn(), _data(), epochs=3, batch_size=48, progress=False)
    assert record[0].filename == __file__  # points at the caller, not into the library


def test_tol_none_runs_all_epochs_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", pc.ConvergenceWarning)
        history = pc.fit(_bnn(), _data(), epochs=3, batch_size=48, tol=None, progress=False)
    assert len(history) == 3 and history.stop_reason.startswith("epochs")


# ------------------------------------------------------------------------ threads
@pytest.mark.parametrize("threads", [1, 2, None])
def test_fit_trains_with_its_threads_and_gives_the_callers_back(monkeypatch, threads):
    seen = []
    loop = training._loop

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return loop(*args, **kwargs)

    monkeypatch.setattr(training, "_loop", spy)
    with intra_op_threads(3):
        pc.fit(_bnn(), _data(), epochs=1, batch_size=96, tol=None, progress=False, threads=threads)
        assert torch.get_num_threads() == 3
    assert seen == [3 if threads is None else threads]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_a_bad_thread_count_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="threads must be"):
        pc.fit(_bnn(), _data(), epochs=1, progress=False, threads=bad)


@pytest.mark.parametrize("value", ["0", "two", "-3"])
def test_cli_threads_is_checked_in_one_line(capsys, value):
    args = ["compress", "--model", "mlp:64-8-10", "--prior", "gaussian", "--dataset", "digits"]
    with pytest.raises(SystemExit) as stop:
        main([*args, "--threads", value])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--threads must be" in err


def test_cli_runs_with_its_threads(monkeypatch, tmp_path):
    from pyrocompress.cli import app

    seen = []

    def fake_fit(*args, **kwargs):
        seen.append((torch.get_num_threads(), kwargs["threads"]))
        raise ValueError("stop here")

    monkeypatch.setattr(app, "fit", fake_fit)
    args = ["compress", "--model", "mlp:64-8-10", "--prior", "gaussian", "--dataset", "digits"]
    with intra_op_threads(3):
        assert main([*args, "--threads", "2", "--out", str(tmp_path / "o"), "--quiet"]) == 2
        assert torch.get_num_threads() == 3
    assert seen == [(2, None)]
