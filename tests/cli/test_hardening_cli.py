"""Issue 25 (hardening, second round): bad CLI input is one line, exit 2, nothing written."""

import pytest

from pyrocompress.cli import main

COMPRESS = ["compress", "--model", "mlp:64-8-10", "--prior", "group-nj", "--dataset", "digits"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", ""], "--out is empty; give a directory"),
        (["--out", "   "], "--out is empty; give a directory"),
        (["--checkpoint-dir", ""], "--checkpoint-dir is empty"),
        (["--epochs", "1000000000"], "--epochs must be an integer in [1, 1000000]"),
        (["--data-dir", "somewhere"], "--data-dir is for the data sets read from files"),
    ],
)
def test_bad_input_is_one_line_before_training(
    tmp_path, monkeypatch, capsys, no_training, extra, message
):
    monkeypatch.chdir(tmp_path)  # an empty --out must not write into the current folder
    assert main([*COMPRESS, *extra, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_an_mlp_too_large_to_allocate_is_one_line(tmp_path, capsys, no_training):
    """Issue 25: mlp:64-1000000000-10 failed in the allocator with a traceback."""
    args = ["compress", "--model", "mlp:64-1000000000-10", "--prior", "group-nj"]
    assert main([*args, "--dataset", "digits", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give smaller widths" in err, err
    assert not (tmp_path / "o").exists()


def test_under_torchrun_only_rank_0_prints_a_bad_input(monkeypatch, capsys, no_training):
    """Issue 25: every rank printed the message (torchrun then adds its own report)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main([*COMPRESS, "--epochs", "0", "--quiet"]) == 2
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert main([*COMPRESS, "--epochs", "0", "--quiet"]) == 2
    assert "--epochs must be" in capsys.readouterr().err
    # a lone process that inherits RANK (a pod's environment) still prints its errors
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "3")
    assert main([*COMPRESS, "--epochs", "0", "--quiet"]) == 2
    assert "--epochs must be" in capsys.readouterr().err


def test_model_files_are_readable_by_all(tmp_path):
    """Issue 25: model.pt was written 0600 while every other output is 0644."""
    import os

    from pyrocompress.infer.checkpoint import atomic_save

    old = os.umask(0o077)
    try:
        atomic_save({"x": 1}, tmp_path / "model.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "model.pt").stat().st_mode & 0o777 == 0o644


def test_version(capsys):
    """Issue 27 (item 3): --version."""
    from pyrocompress import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"pyrocompress {__version__}"


@pytest.mark.parametrize("command", ["compress", "select", "demo"])
def test_help_shows_the_defaults(capsys, command):
    """Issue 27 (item 3): --help showed no defaults."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--seed SEED seed of the initial weights" in text and "(default: 0)" in text
    if command == "compress":
        assert "the largest number of passes over the training data, or 'auto'" in text
        assert "(default: 0.01)" in text and "--threads" in text and "(default: 1)" in text
        assert "Adam's learning rate (default: 0.01)" in text
        assert "training device (default: cpu)" in text
