"""posterior.pt and `pyrocompress prune --posterior`: re-pruning without training (issue 27)."""

import json
import warnings

import pytest
import torch

from pyrocompress.cli import main
from pyrocompress.infer import POSTERIOR_NAME, ConvergenceWarning, load_posterior
from pyrocompress.infer.checkpoint import safe_load

COMPRESS = ["compress", "--model", "mlp:64-16-10", "--prior", "group-nj", "--dataset", "digits"]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """One short compress run on digits; its --out folder."""
    out = tmp_path_factory.mktemp("run") / "out"
    assert main([*COMPRESS, "--epochs", "4", "--tol", "off", "--out", str(out), "--quiet"]) == 0
    return out


def _report(folder):
    report = json.loads((folder / "report.json").read_text())
    return {k: v for k, v in report.items() if not k.endswith("seconds")}  # wall times


def _state(path):
    return safe_load(path, "compact model")["state_dict"]


def test_compress_writes_a_weights_only_posterior_with_its_settings(compressed):
    payload = torch.load(compressed / POSTERIOR_NAME, weights_only=True)
    assert payload["format"] == "pyrocompress.posterior/1"
    settings = payload["settings"]
    assert settings["model"] == "mlp:64-16-10" and settings["prior"] == "group-nj"
    assert settings["rule"] == "auto" and settings["tolerance"] == 0.01
    assert settings["epochs"] == 4 and settings["seed"] == 0
    assert len(load_posterior(compressed)["history"]) == 4
    assert (compressed / "model.pt2").stat().st_size > 0  # always written (item 6)


def test_prune_at_the_same_settings_reproduces_compress_exactly(compressed, tmp_path):
    again = tmp_path / "again"
    assert main(["prune", "--posterior", str(compressed), "--out", str(again)]) == 0
    assert _report(again) == _report(compressed)
    first, second = _state(compressed / "model.pt"), _state(again / "model.pt")
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in compressed.iterdir())


def test_prune_with_another_tolerance_or_rule_changes_the_network(compressed, tmp_path):
    loose = tmp_path / "loose"
    assert (
        main(["prune", "--posterior", str(compressed), "--tolerance", "0.2", "--out", str(loose)])
        == 0
    )
    base, wide = _report(compressed), _report(loose)
    assert wide["params_after"] <= base["params_after"]
    assert wide["validation_error_pruned"] <= base["validation_error_unpruned"] + 0.2 + 1e-9
    rule = tmp_path / "rule"
    code = main(
        [
            "prune",
            "--posterior",
            str(compressed / POSTERIOR_NAME),
            "--rule",
            "log_alpha",
            "--out",
            str(rule),
        ]
    )
    assert code == 0 and _report(rule)["rule"].startswith("log_alpha")


@pytest.mark.parametrize("form", ["folder", "file"])
def test_prune_never_writes_over_the_compress_run(compressed, capsys, form):
    before = (compressed / "report.json").read_bytes()
    source = compressed if form == "folder" else compressed / POSTERIOR_NAME
    assert main(["prune", "--posterior", str(source), "--out", str(compressed)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--out" in err and "--posterior" in err
    assert (compressed / "report.json").read_bytes() == before


def test_tolerance_under_a_threshold_rule_is_refused(compressed, tmp_path, capsys):
    args = ["prune", "--posterior", str(compressed), "--rule", "log_alpha", "--tolerance", "0.1"]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--tolerance is for --rule auto" in err
    assert not (tmp_path / "o").exists()


def test_other_data_than_the_run_pruned_with_is_refused(compressed, tmp_path, capsys):
    payload = torch.load(compressed / POSTERIOR_NAME, weights_only=True)
    assert len(payload["settings"]["data_sha256"]) == 64
    payload["settings"]["data_sha256"] = "0" * 64  # as if the files had changed since
    folder = tmp_path / "changed"
    folder.mkdir()
    torch.save(payload, folder / POSTERIOR_NAME)
    assert main(["prune", "--posterior", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "differ from those the compress run pruned with" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"not a torch file", "posterior"),
        ({"format": "something else"}, "format tag"),
    ],
)
def test_a_bad_posterior_is_one_line_exit_2(tmp_path, capsys, no_training, content, message):
    folder = tmp_path / "bad"
    folder.mkdir()
    if isinstance(content, bytes):
        (folder / POSTERIOR_NAME).write_bytes(content)
    elif content is not None:
        torch.save(content, folder / POSTERIOR_NAME)
    assert main(["prune", "--posterior", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "--posterior" in err
    assert not (tmp_path / "o").exists()


def test_a_posterior_of_another_network_is_refused(compressed, tmp_path, capsys):
    payload = torch.load(compressed / POSTERIOR_NAME, weights_only=True)
    payload["settings"]["model"] = "mlp:64-32-10"  # the saved state is 64-16-10
    folder = tmp_path / "other"
    folder.mkdir()
    torch.save(payload, folder / POSTERIOR_NAME)
    assert main(["prune", "--posterior", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "does not fit the rebuilt network" in err and not (tmp_path / "o").exists()


def test_compress_without_out_writes_into_the_default_folder_it_names(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    args = ["compress", "--model", "mlp:64-8-10", "--prior", "gaussian", "--dataset", "digits"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # said in one line instead
        assert main([*args, "--epochs", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "to compress-out" in captured.out
    warning = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warning) == 1 and warning[0].startswith("pyrocompress: warning: training ended")
    assert "--epochs (now 1 epochs)" in warning[0] and "--tol" in warning[0]
    assert (tmp_path / "compress-out" / "report.json").exists()
    assert (tmp_path / "compress-out" / POSTERIOR_NAME).exists()
