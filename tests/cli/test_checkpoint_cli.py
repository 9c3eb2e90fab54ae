"""The command line's checkpoint options: no run over another's checkpoint, one-line errors."""

import errno
import os

import pytest

import pyrocompress.data
from pyrocompress.cli import main
from pyrocompress.infer.checkpoint import CHECKPOINT_NAME, safe_load

ARGS = ["compress", "--model", "mlp:64-8-10", "--prior", "group-nj", "--dataset", "digits"]


def _no_data(monkeypatch):
    """Make reading the data fail, so that a check that passes shows it came too late."""

    def unread(*args, **kwargs):
        raise AssertionError("the data were read before the options were checked")

    monkeypatch.setattr(pyrocompress.data, "load_dataset", unread)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_an_existing_checkpoint_is_refused_before_the_data_are_read(tmp_path, monkeypatch, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / CHECKPOINT_NAME).write_bytes(b"another run's work")
    _no_data(monkeypatch)
    args = [*ARGS, "--epochs", "1", "--checkpoint-dir", str(ckpt), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = _one_line(capsys)
    assert str(ckpt / CHECKPOINT_NAME) in err and "already holds a checkpoint" in err
    assert "--resume" in err and "--overwrite-checkpoint" in err
    assert (ckpt / CHECKPOINT_NAME).read_bytes() == b"another run's work"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--overwrite-checkpoint"], "--overwrite-checkpoint needs --checkpoint-dir"),
        (["--checkpoint-dir", "C", "--resume", "--overwrite-checkpoint"], "give one of them"),
    ],
)
def test_overwrite_checkpoint_option_is_checked(tmp_path, monkeypatch, capsys, extra, expected):
    _no_data(monkeypatch)
    extra = [str(tmp_path / "c") if a == "C" else a for a in extra]
    assert main([*ARGS, "--epochs", "1", *extra, "--quiet"]) == 2
    assert expected in _one_line(capsys)


def test_overwrite_checkpoint_replaces_it(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / CHECKPOINT_NAME).write_bytes(b"stale")
    import subprocess
    import sys

    from pyrocompress.infer.checkpoint import process_tag

    code = "import os; print(os.getpid())"  # a process that has ended
    dead = int(subprocess.run([sys.executable, "-c", code], capture_output=True).stdout)
    host = process_tag().rsplit("-p", 1)[0]
    (ckpt / f".checkpoint.pt.{host}-p{dead}.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    args = [*ARGS, "--epochs", "1", "--checkpoint-dir", str(ckpt), "--quiet"]
    assert main([*args, "--overwrite-checkpoint"]) == 0
    assert safe_load(ckpt / CHECKPOINT_NAME)["epoch"] == 1
    assert [p.name for p in ckpt.iterdir()] == [CHECKPOINT_NAME]  # the leftover is gone


@pytest.mark.parametrize("kind", ["text", "folder"])
def test_a_checkpoint_that_is_not_one_is_one_line_exit_2(tmp_path, capsys, kind):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    if kind == "folder":
        (ckpt / CHECKPOINT_NAME).mkdir()
    else:
        (ckpt / CHECKPOINT_NAME).write_text("root:x:0:0:root:/root:/bin/bash\n")
    args = [*ARGS, "--epochs", "1", "--checkpoint-dir", str(ckpt), "--resume", "--quiet"]
    assert main(args) == 2
    assert str(ckpt / CHECKPOINT_NAME) in _one_line(capsys)


def test_a_full_disk_while_checkpointing_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    fsync = os.fsync
    calls = {"n": 0}

    def full_after_one(fd):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full_after_one)
    ckpt = tmp_path / "ckpt"
    args = [*ARGS, "--epochs", "2", "--checkpoint-dir", str(ckpt), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    monkeypatch.undo()
    err = _one_line(capsys)
    assert str(ckpt / CHECKPOINT_NAME) in err and "free space" in err
    assert safe_load(ckpt / CHECKPOINT_NAME)["epoch"] == 1  # the previous one, whole
    assert not (tmp_path / "out").exists()
