"""Checkpoint and resume, atomic writes, and loading that never runs code."""

import json
import math
import os
import random

import numpy as np
import pytest
import torch

import pyrocompress as pc
from pyrocompress.cli import main
from pyrocompress.infer.checkpoint import (
    CHECKPOINT_NAME,
    atomic_save,
    rng_state,
    safe_load,
    set_rng_state,
)


class _Interrupt(Exception):
    pass


def _data(n=120, p=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p, generator=g)
    y = (X[:, 0] + X[:, 1] > 0).long()
    return X, y


SETTINGS = dict(epochs=5, batch_size=32, lr=1e-2, kl_warmup=2, seed=3, progress=False)


@pytest.mark.parametrize("prior", ["group-nj", "group-horseshoe"])
def test_resumed_run_continues_exactly_as_the_uninterrupted_one(tmp_path, monkeypatch, prior):
    X, y = _data()
    full = pc.bayesianize(pc.mlp([6, 8, 2]), prior, seed=0)
    h_full = pc.fit(full, (X, y), validation=(X, y), **SETTINGS)

    # the same run, killed during epoch 3 (after the checkpoint of epoch 2)
    first = pc.bayesianize(pc.mlp([6, 8, 2]), prior, seed=0)
    calls = {"n": 0}
    original = type(first).point_error

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise _Interrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(first), "point_error", dying)
    with pytest.raises(_Interrupt):
        pc.fit(first, (X, y), validation=(X, y), checkpoint_dir=tmp_path, **SETTINGS)
    monkeypatch.setattr(type(first), "point_error", original)
    assert safe_load(tmp_path / CHECKPOINT_NAME)["epoch"] == 2

    # a new process would build the network afresh (another initialisation) and resume
    torch.manual_seed(123)
    again = pc.bayesianize(pc.mlp([6, 8, 2]), prior, seed=99)
    h_resumed = pc.fit(
        again, (X, y), validation=(X, y), checkpoint_dir=tmp_path, resume=True, **SETTINGS
    )
    assert h_resumed.epoch == h_full.epoch
    assert h_resumed.loss == h_full.loss  # bit for bit on the CPU
    assert h_resumed.val_metric == h_full.val_metric
    for (k, a), b in zip(full.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_resume_without_a_checkpoint_starts_from_the_beginning(tmp_path):
    X, y = _data()
    a = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    b = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    settings = {**SETTINGS, "epochs": 2}
    h_a = pc.fit(a, (X, y), **settings)
    h_b = pc.fit(b, (X, y), checkpoint_dir=tmp_path / "new", resume=True, **settings)
    assert h_a.loss == h_b.loss
    assert (tmp_path / "new" / CHECKPOINT_NAME).is_file()


def test_resume_with_other_settings_is_refused(tmp_path):
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, **{**SETTINGS, "epochs": 1})
    with pytest.raises(ValueError, match="other settings.*lr: checkpoint 0.01, now 0.02"):
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, resume=True, **{**SETTINGS, "lr": 2e-2})
    wider = pc.bayesianize(pc.mlp([6, 5, 2]), "group-nj", seed=0)
    with pytest.raises(ValueError, match="does not fit this network"):
        pc.fit(wider, (X, y), checkpoint_dir=tmp_path, resume=True, **{**SETTINGS, "epochs": 1})


def test_resume_with_another_variance_cap_is_refused(tmp_path):
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, **{**SETTINGS, "epochs": 1})
    with pytest.raises(ValueError, match="other settings.*max_weight_variance"):
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, resume=True,
               max_weight_variance={"1": 0.04}, **SETTINGS)  # fmt: skip


def test_an_incomplete_checkpoint_is_refused_with_what_it_lacks(tmp_path):
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, **{**SETTINGS, "epochs": 1})
    path = tmp_path / CHECKPOINT_NAME
    ckpt = torch.load(path, weights_only=True)
    del ckpt["optimizer"], ckpt["rng"]
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="incomplete \\(no optimizer, rng\\)"):
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, resume=True, **SETTINGS)


def test_checkpoint_arguments_are_validated(tmp_path):
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        pc.fit(bnn, (X, y), resume=True, progress=False)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path / "f", progress=False)


class _RunsCode:
    """Unpickling this runs ``os.system``: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _malicious(path, marker, **payload):
    torch.save({**payload, "evil": _RunsCode(marker)}, path)


def test_a_checkpoint_that_would_run_code_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "pwned"
    _malicious(tmp_path / CHECKPOINT_NAME, marker, format="pyrocompress-fit-checkpoint/1")
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    with pytest.raises(ValueError, match="refusing to load checkpoint .*weights-only"):
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, resume=True, progress=False)
    assert not marker.exists()


def test_a_compact_model_that_would_run_code_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "pwned"
    _malicious(tmp_path / "model.pt", marker, format="pyrocompress-compact/1")
    with pytest.raises(ValueError, match="refusing to load compact model"):
        pc.load_compact(tmp_path / "model.pt")
    assert not marker.exists()
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="refusing to load"):
        pc.load_compact(tmp_path / "junk.pt")


def test_cli_resume_from_a_malicious_checkpoint_exits_2_without_running_it(tmp_path, capsys):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    _malicious(ckpt / CHECKPOINT_NAME, marker, format="pyrocompress-fit-checkpoint/1")
    out = tmp_path / "out"
    args = ["compress", "--model", "mlp:64-8-10", "--prior", "group-nj", "--dataset", "digits"]
    args += ["--epochs", "1", "--checkpoint-dir", str(ckpt), "--resume", "--out", str(out)]
    assert main([*args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "refusing to load checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists() and not out.exists()


def test_cli_checkpoints_and_resumes(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    args = ["compress", "--model", "mlp:64-8-10", "--prior", "group-nj", "--dataset", "digits"]
    args += ["--epochs", "2", "--checkpoint-dir", str(ckpt), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert safe_load(ckpt / CHECKPOINT_NAME)["epoch"] == 2
    # resuming a finished run trains no further and reports the same network
    assert main([*args, "--resume", "--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "report.json").read_text()
    b = (tmp_path / "b" / "report.json").read_text()
    timings = {"seconds", "prune_seconds"}
    a, b = ({k: v for k, v in json.loads(t).items() if k not in timings} for t in (a, b))
    assert a == b
    assert main([*args[:-3], "--resume", "--quiet"]) == 2
    assert "--resume needs --checkpoint-dir" in capsys.readouterr().err


def test_atomic_save_keeps_the_previous_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    atomic_save({"v": torch.ones(2)}, path)

    def broken(obj, f):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"v": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(safe_load(path)["v"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    atomic_save(rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    set_rng_state(safe_load(tmp_path / "rng.pt"))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1]) and math.isclose(got[2], expected[2])


def test_safe_load_of_a_missing_file():
    with pytest.raises(FileNotFoundError, match="checkpoint /nonexistent/c.pt not found"):
        safe_load("/nonexistent/c.pt", "checkpoint")
