"""fit's convergence stop (tol, window): the test, the anneal after it, resume, validation."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from torch.utils.data import DistributedSampler

import pyrocompress as pc
from pyrocompress.infer.checkpoint import CHECKPOINT_NAME, safe_load
from pyrocompress.infer.training import _Anneal, _converged, _sampler_order


def _regression(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    y = X[:, 0] - 0.5 * X[:, 1] + 0.3 * torch.randn(n, generator=g)
    return X, y


def _linear(prior="gaussian"):
    return pc.bayesianize(
        pc.mlp([4, 1]), prior, likelihood=pc.distributions.GaussianLikelihood(), seed=0
    )


# full batch, deterministic objective (no Monte-Carlo noise): fast and exactly reproducible
EASY: dict[str, Any] = dict(
    batch_size=256, lr=0.05, window=10, seed=0, progress=False, objective="moments"
)


# ------------------------------------------------------------------------ the test itself
def test_flat_noisy_losses_have_converged_and_a_trend_has_not():
    g = torch.Generator().manual_seed(0)
    noise = 0.01 * torch.randn(200, generator=g)
    flat = (1.0 + noise).tolist()
    ok, text = _converged(flat, 100, tol=5e-3)
    # the window means differ by about 0.01 * sqrt(2/100) = 1.4e-3 (1 s.e.); two s.e. of
    # the bound add 2.8e-3: below 5e-3 unless the draw is a > 2 s.e. outlier (seed fixed)
    assert ok, text
    # the same noise on a trend of 1e-4 per epoch: the means differ by 0.01 = 1 %
    trend = [v - 1e-4 * t for t, v in enumerate(flat)]
    ok, text = _converged(trend, 100, tol=5e-3)
    assert not ok and "> tol" in text


def test_noise_too_large_for_the_window_delays_the_stop():
    # a flat loss whose noise (sd 0.1) makes 2 s.e. = 0.2 * sqrt(2/10) = 0.09 > tol * 1:
    # the test is conservative, noise cannot trigger it
    g = torch.Generator().manual_seed(1)
    flat = (1.0 + 0.1 * torch.randn(20, generator=g)).tolist()
    assert not _converged(flat, 10, tol=0.05)[0]
    assert not _converged(flat[:19], 10, tol=0.05)[0]  # fewer than two windows


def test_anneal_factor_is_constant_then_cosine_to_one_percent():
    a = _Anneal("cosine", length=10, start=5)
    assert [a(s) for s in (0, 4, 5)] == [1.0, 1.0, 1.0]
    assert a(10) == pytest.approx(0.01 + 0.99 * 0.5)
    assert a(15) == pytest.approx(0.01) and a(100) == pytest.approx(0.01)
    assert _Anneal("exponential", 10, 0)(10) == pytest.approx(0.01)
    assert _Anneal("constant", 0, 0)(50) == 1.0


def test_sampler_order_is_that_of_the_distributed_sampler():
    for n, size in [(10, 1), (10, 3), (2, 5), (442, 1)]:
        for rank in range(size):
            sampler = DistributedSampler(
                cast(Any, range(n)), num_replicas=size, rank=rank, shuffle=True, seed=7
            )
            sampler.set_epoch(3)
            assert _sampler_order(sampler).tolist() == list(sampler)


# ------------------------------------------------------------------------------- fit
def test_fit_stops_early_on_an_easy_problem_and_says_why():
    h = pc.fit(_linear(), _regression(), epochs=400, tol=0.01, **EASY)
    assert h.converged_at is not None and h.converged_at < 200
    assert len(h) == h.converged_at + 10  # then one window of cosine decay
    assert h.stop_reason.startswith(f"converged at epoch {h.converged_at}: mean loss")
    assert "then 10 epochs of cosine learning-rate decay" in h.stop_reason
    assert h.lr[h.converged_at - 1] == pytest.approx(0.05)  # constant until the test
    assert h.lr[-1] == pytest.approx(0.05 * 0.01)  # annealed to 1 %


def test_fit_with_a_constant_schedule_stops_at_once():
    h = pc.fit(_linear(), _regression(), epochs=400, tol=0.01, lr_schedule="constant", **EASY)
    assert h.converged_at is not None and len(h) == h.converged_at
    assert "decay" not in h.stop_reason and h.lr[-1] == pytest.approx(0.05)


def test_fit_does_not_stop_while_the_loss_still_improves():
    # lr 1e-3 from a cold start: the loss falls by far more than 0.1 % per window for all
    # 60 epochs, so the test never passes; the last window is annealed anyway
    settings = {**EASY, "lr": 1e-3}
    h = pc.fit(_linear(), _regression(), epochs=60, tol=1e-3, **settings)
    assert h.converged_at is None and len(h) == 60
    assert h.loss[-11] < h.loss[29] - 0.01  # it was still improving
    assert h.stop_reason.startswith("maximum of 60 epochs reached")
    assert "last test: mean loss" in h.stop_reason and "> tol 0.001" in h.stop_reason
    assert h.lr[49] == pytest.approx(1e-3) and h.lr[-1] == pytest.approx(1e-5)


def test_warm_up_epochs_are_never_in_a_window():
    h = pc.fit(_linear(), _regression(), epochs=400, tol=0.01, kl_warmup=50, **EASY)
    # first possible test: 50 warm-up epochs + 2 windows of 10
    assert h.converged_at is not None and h.converged_at >= 70
    assert (h.converged_at - 50) % 10 == 0


def test_without_tol_the_run_takes_all_epochs():
    h = pc.fit(_linear(), _regression(), epochs=12, **{**EASY, "tol": None})
    assert len(h) == 12 and h.converged_at is None
    assert h.stop_reason == "epochs: ran the 12 epochs requested (no tol)"


def test_the_sampled_elbo_converges_despite_its_noise():
    # the sampled ELBO (Monte-Carlo noise in every epoch's loss) of a horseshoe model
    X, y = _regression(512)
    h = pc.fit(
        _linear("group-horseshoe"), (X, y), epochs=300, batch_size=512, lr=0.05, tol=0.05, window=10
    )
    assert h.converged_at is not None and len(h) == h.converged_at + 10


@pytest.mark.parametrize("bad", [0, -1e-3, math.inf, "0.01", True])
def test_tol_is_validated(bad):
    with pytest.raises(ValueError, match="tol must be a number > 0 or None"):
        pc.fit(_linear(), _regression(), epochs=2, tol=bad, progress=False)


@pytest.mark.parametrize("bad", [1, 0, 2.5, "3"])  # None is the default: fit_budget's window
def test_window_is_validated(bad):
    with pytest.raises(ValueError, match="window must be an integer >= 2"):
        pc.fit(_linear(), _regression(), epochs=2, tol=0.01, window=bad, progress=False)


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("when", [-20, 5])  # epochs after convergence: before it, in the anneal
def test_resume_with_tol_continues_exactly(tmp_path, monkeypatch, when):
    X, y = _regression()
    settings = {**EASY, "objective": "elbo", "epochs": 400, "tol": 0.05, "kl_warmup": 5}
    h_full = pc.fit(_linear(), (X, y), validation=(X, y), **settings)
    assert h_full.converged_at is not None and h_full.converged_at > 30
    die_at = h_full.converged_at + when  # the call of point_error (one per epoch) that fails

    first = _linear()
    calls = {"n": 0}
    original = type(first).point_error

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == die_at:
            raise _Interrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(first), "point_error", dying)
    with pytest.raises(_Interrupt):
        pc.fit(first, (X, y), validation=(X, y), checkpoint_dir=tmp_path, **settings)
    monkeypatch.setattr(type(first), "point_error", original)
    assert safe_load(tmp_path / CHECKPOINT_NAME)["epoch"] == die_at - 1

    again = _linear()
    h = pc.fit(again, (X, y), validation=(X, y), checkpoint_dir=tmp_path, resume=True, **settings)
    assert h.loss == h_full.loss and h.lr == h_full.lr  # bit for bit on the CPU
    assert (h.converged_at, h.stop_reason) == (h_full.converged_at, h_full.stop_reason)
    # resuming the finished run does nothing more
    done = pc.fit(
        _linear(), (X, y), validation=(X, y), checkpoint_dir=tmp_path, resume=True, **settings
    )
    assert done.loss == h_full.loss
    # another tol is another run
    with pytest.raises(ValueError, match="other settings.*tol"):
        pc.fit(_linear(), (X, y), checkpoint_dir=tmp_path, resume=True, **{**settings, "tol": 0.1})


@pytest.mark.slow
def test_data_parallel_ranks_stop_together(tmp_path):
    """Under torchrun every rank sees the same (all-reduced) losses and rank 0's decision."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    worker = Path(__file__).with_name("convergence_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*cmd, str(worker), str(tmp_path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert a["converged_at"] is not None and a["epochs"] < 300
    assert (a["epochs"], a["converged_at"], a["loss"]) == (
        b["epochs"],
        b["converged_at"],
        b["loss"],
    )
