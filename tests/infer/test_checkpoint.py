"""Checkpoint and resume, atomic writes, and loading that never runs code."""

import errno
import json
import math
import os
import random
from typing import Any

import numpy as np
import pytest
import torch

import pyrocompress as pc
from pyrocompress.cli import main
from pyrocompress.infer import checkpoint as ckpt_module
from pyrocompress.infer.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointWriteError,
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


# a fixed number of epochs under the cosine schedule (tol=None); runs with the convergence
# stop resume too (tests/infer/test_convergence.py)
SETTINGS: dict[str, Any] = dict(
    epochs=5, batch_size=32, lr=1e-2, kl_warmup=2, seed=3, progress=False, tol=None
)


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


# ---- a checkpoint already there: refused unless resumed or overwritten ----------------


def _unchanged(bnn, state):
    """Whether ``bnn`` holds ``state`` still (NaN, the unrecorded information, equals NaN)."""
    return all(
        torch.allclose(v, state[k], rtol=0, atol=0, equal_nan=True)
        for k, v in bnn.state_dict().items()
    )


def test_a_run_over_an_existing_checkpoint_is_refused_unless_resumed_or_overwritten(tmp_path):
    X, y = _data()
    settings = {**SETTINGS, "epochs": 1}
    pc.fit(pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0), (X, y),
           checkpoint_dir=tmp_path, **settings)  # fmt: skip
    path = tmp_path / CHECKPOINT_NAME
    before = path.read_bytes()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=1)
    state = {k: v.clone() for k, v in bnn.state_dict().items()}
    with pytest.raises(ValueError, match=r"already holds a checkpoint") as caught:
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, **settings)
    message = str(caught.value)
    assert str(path) in message and "resume=True" in message
    assert "overwrite_checkpoint=True" in message and "\n" not in message
    assert path.read_bytes() == before  # the other run's work is kept
    assert _unchanged(bnn, state)  # not trained
    pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, overwrite_checkpoint=True,
           **{**settings, "epochs": 2})  # fmt: skip
    assert safe_load(path)["epoch"] == 2


def test_overwrite_checkpoint_is_validated(tmp_path):
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    with pytest.raises(ValueError, match="overwrite_checkpoint=True needs checkpoint_dir"):
        pc.fit(bnn, (X, y), overwrite_checkpoint=True, progress=False)
    with pytest.raises(ValueError, match="give one of them"):
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, resume=True, overwrite_checkpoint=True)
    with pytest.raises(TypeError, match="overwrite_checkpoint must be True or False"):
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, overwrite_checkpoint="yes")  # type: ignore[arg-type]


# ---- files that are not checkpoints: one ValueError naming the file -------------------


@pytest.mark.parametrize(
    "content",
    [b"hello world\n", b"a,b,target\n1,2,0\n3,4,1\n", b"root:x:0:0:root:/root:/bin/bash\n"],
    ids=["text", "csv", "passwd"],
)
def test_a_text_file_given_as_a_checkpoint_is_one_value_error(tmp_path, content):
    (tmp_path / CHECKPOINT_NAME).write_bytes(content)
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    with pytest.raises(ValueError, match=r"refusing to load checkpoint .*checkpoint\.pt") as e:
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, resume=True, progress=False)
    assert "\n" not in str(e.value)


def test_a_folder_named_checkpoint_pt_is_refused_with_what_it_is(tmp_path):
    (tmp_path / CHECKPOINT_NAME).mkdir()
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    for resume in (True, False):
        with pytest.raises(ValueError, match=r"holds a folder .*checkpoint\.pt, not a checkpoint"):
            pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, resume=resume, progress=False)
    with pytest.raises(ValueError, match=r"checkpoint .*checkpoint\.pt is a folder"):
        safe_load(tmp_path / CHECKPOINT_NAME, "checkpoint")


# ---- malformed checkpoints: refused whole, before any of it is used -------------------


def _set(*keys, value):
    def edit(ckpt):
        target = ckpt
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


def _drop(*keys):
    def edit(ckpt):
        target = ckpt
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return edit


MALFORMED = {
    "epoch negative": (_set("epoch", value=-3), r"epoch must be an integer in \[1, 2\]"),
    "epoch beyond epochs": (_set("epoch", value=7), r"epoch must be an integer in \[1, 2\]"),
    "epoch a string": (_set("epoch", value="1"), "epoch must be an integer"),
    "epoch a bool": (_set("epoch", value=True), "epoch must be an integer"),
    "step off": (_set("step", value=999), "step must be epoch x minibatches"),
    "rng not a dict": (_set("rng", value=[1, 2]), "rng must be a dict"),
    "rng torch a list": (_set("rng", "torch", value=[1, 2]), r"rng\['torch'\] must be"),
    "rng torch short": (
        _set("rng", "torch", value=torch.zeros(3, dtype=torch.uint8)),
        r"rng\['torch'\] is not a generator state",
    ),
    "rng numpy short": (_set("rng", "numpy", value=[1, 2]), r"rng\['numpy'\] must be"),
    "rng numpy keys": (
        _set("rng", "numpy", 1, value=torch.zeros(3, dtype=torch.int64)),
        r"rng\['numpy'\] is not a generator state",
    ),
    "rng python state": (
        _set("rng", "python", 1, value=[1, 2, 3]),
        r"rng\['python'\] is not a generator state",
    ),
    "history a string": (_set("history", value="x"), "history must be a dict"),
    "history no loss": (_drop("history", "loss"), "history must be a dict with keys"),
    "history short": (_set("history", "loss", value=[]), r"history\['loss'\] must be a list"),
    "history text": (
        _set("history", "lr", value=["fast", "slow"]),
        r"history\['lr'\] must hold numbers",
    ),
    "history converged": (
        _set("history", "converged_at", value=9),
        r"history\['converged_at'\] must be None",
    ),
    "scheduler none": (_set("scheduler", value=None), r"scheduler must be dict, got None"),
    "scheduler extra key": (
        _set("scheduler", "optimizer", value=1),
        "scheduler must have the keys",
    ),
    "scheduler text": (
        _set("scheduler", "T_max", value="x"),
        r"scheduler\['T_max'\] must be int, got str",
    ),
    "scheduler nan": (
        _set("scheduler", "eta_min", value=math.nan),
        r"scheduler\['eta_min'\] must be finite",
    ),
    "scheduler behind": (_set("scheduler", "last_epoch", value=0), "last_epoch"),
    "config a string": (_set("config", value="x"), "config must be a dict"),
    "config seed": (_set("config", "sampler_seed", value=-1), "sampler_seed"),
    "config seed tensor": (
        _set("config", "sampler_seed", value=torch.tensor(3)),
        "sampler_seed",
    ),
    "config tensor": (_set("config", "lr", value=torch.tensor(0.01)), "other settings"),
    "optimizer a list": (_set("optimizer", value=[]), "optimizer must be a dict"),
    "optimizer no groups": (_set("optimizer", "param_groups", value=[]), "param_groups"),
    "optimizer betas": (
        _set("optimizer", "param_groups", 0, "betas", value="x"),
        r"\['betas'\] must be list",
    ),
    "optimizer state shape": (
        _set("optimizer", "state", 0, "exp_avg", value=torch.zeros(1)),
        r"optimizer\['state'\]\[0\]\['exp_avg'\] must be a float tensor",
    ),
    "optimizer state key": (
        _set("optimizer", "state", 99, value={}),
        "parameter 99, which this run lacks",
    ),
    "network value": (_set("network", "guide.layers.1.weight_loc", value=5), "must be a tensor"),
}


@pytest.fixture(scope="module")
def written_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    pc.fit(bnn, (X, y), checkpoint_dir=folder, **{**SETTINGS, "epochs": 2})
    return folder / CHECKPOINT_NAME


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_checkpoint_is_one_value_error_and_changes_nothing(
    tmp_path, written_checkpoint, case
):
    edit, expected = MALFORMED[case]
    ckpt = torch.load(written_checkpoint, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, tmp_path / CHECKPOINT_NAME)
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=1)
    state = {k: v.clone() for k, v in bnn.state_dict().items()}
    with pytest.raises(ValueError, match=expected) as caught:
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, resume=True, **{**SETTINGS, "epochs": 2})
    message = str(caught.value)
    assert str(tmp_path / CHECKPOINT_NAME) in message and "\n" not in message
    assert _unchanged(bnn, state)


def test_the_unedited_checkpoint_of_the_malformed_cases_resumes(tmp_path, written_checkpoint):
    (tmp_path / CHECKPOINT_NAME).write_bytes(written_checkpoint.read_bytes())
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=1)
    h = pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, resume=True, **{**SETTINGS, "epochs": 2})
    assert h.epoch == [1, 2]


# ---- a full disk while writing: one line, the previous checkpoint kept ----------------


def _disk_full_after(monkeypatch, good_writes):
    calls = {"n": 0}
    fsync = os.fsync

    def full(fd):
        calls["n"] += 1
        if calls["n"] > good_writes:
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full)


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)
    _disk_full_after(monkeypatch, good_writes=1)
    with pytest.raises(CheckpointWriteError, match="free space") as caught:
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, **{**SETTINGS, "epochs": 2})
    monkeypatch.undo()
    message = str(caught.value)
    assert str(tmp_path / CHECKPOINT_NAME) in message and "\n" not in message
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert safe_load(tmp_path / CHECKPOINT_NAME)["epoch"] == 1  # the previous one, whole
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]


# ---- leftovers of killed writes: removed by the next run -----------------------------


def test_temporaries_of_killed_checkpoint_writes_are_removed_by_the_next_run(tmp_path, monkeypatch):
    X, y = _data()
    bnn = pc.bayesianize(pc.mlp([6, 4, 2]), "group-nj", seed=0)

    # a kill between writing the temporary file and moving it into place: simulated by an
    # interrupt in os.replace with the clean-up of atomic_write_bytes switched off, which
    # is what a SIGKILL amounts to
    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    monkeypatch.setattr(ckpt_module.Path, "unlink", lambda self, missing_ok=False: None)
    with pytest.raises(KeyboardInterrupt):
        pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, **{**SETTINGS, "epochs": 1})
    monkeypatch.undo()
    left = [p.name for p in tmp_path.iterdir()]
    tag = ckpt_module.process_tag()
    assert len(left) == 1 and left[0].startswith(f".checkpoint.pt.{tag}.")
    assert left[0].endswith(".tmp")
    # the file of a killed process: this one's, renamed to a process that has ended
    dead = _dead_pid()
    killed_file = left[0].replace(tag, f"{tag.rsplit('-p', 1)[0]}-p{dead}")
    (tmp_path / left[0]).rename(tmp_path / killed_file)
    live = f".checkpoint.pt.{tag}.abcd1234.tmp"  # a writer still running (this process)
    foreign = ".checkpoint.pt.otherhost-p1.abcd1234.tmp"  # another machine's writer
    others = [".checkpoint.pt.keep", "notes.tmp", ".model.pt.x.tmp", "checkpoint.pt.x.tmp"]
    for name in [*others, live, foreign]:
        (tmp_path / name).write_text("not ours")
    pc.fit(bnn, (X, y), checkpoint_dir=tmp_path, resume=True, **{**SETTINGS, "epochs": 1})
    kept = sorted([CHECKPOINT_NAME, *others, live, foreign])
    assert sorted(p.name for p in tmp_path.iterdir()) == kept  # only the killed one went


def _dead_pid() -> int:
    """The process id of a process that has ended."""
    import subprocess
    import sys

    code = "import os; print(os.getpid())"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True).stdout)


def test_an_interrupted_checkpoint_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_NAME
    atomic_save({"v": torch.ones(2)}, path)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"v": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]
    assert torch.equal(safe_load(path)["v"], torch.ones(2))
