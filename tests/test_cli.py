import json

import numpy as np
import pytest
import torch

from pyrocompress import REPORT_KEYS, load_compact
from pyrocompress.cli import main
from pyrocompress.data import write_idx


def _check_outputs(out, model):
    report = json.loads((out / "report.json").read_text())
    assert set(REPORT_KEYS) <= set(report)
    assert report["model"] == model
    for key in ("test_error_bayes", "test_error_compact", "weight_fraction"):
        assert 0.0 <= report[key] <= 1.0
    assert report["architecture_before"][0] >= report["architecture_after"][0]
    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["format"].startswith("pyrocompress.compact")
    compact = load_compact(out / "model.pt")
    assert sum(p.numel() for p in compact.parameters()) == report["params_after"]
    assert (out / "loss.png").stat().st_size > 0
    for png in ("log_alpha", "snr", "architecture", "bits", "pruning_curve", "forest"):
        assert (out / f"{png}.png").stat().st_size > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left
    return report


def test_demo_smoke(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "3", "--quiet"]) == 0
    report = _check_outputs(out, "mlp:64-100-100-10")
    assert report["prior"] == "group-horseshoe" and report["dataset"] == "digits"
    assert (out / "inclusion.png").exists() and (out / "pip.png").exists()
    assert (out / "input_importance.png").exists()  # digits are 8x8 images
    assert "compression (bits)" in capsys.readouterr().out


@pytest.mark.parametrize("prior", ["gaussian", "spike-slab"])
def test_compress_digits(tmp_path, prior):
    out = tmp_path / prior
    args = ["compress", "--model", "mlp:64-16-10", "--prior", prior, "--dataset", "digits"]
    assert main([*args, "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    _check_outputs(out, "mlp:64-16-10")


def _fake_mnist(folder, n_train=5050, n_test=30):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(
            folder / f"{prefix}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        )
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    return folder


def test_compress_lenet5_on_idx_files(tmp_path):
    data = _fake_mnist(tmp_path / "mnist")
    out = tmp_path / "out"
    args = ["compress", "--model", "lenet-5-caffe", "--prior", "group-nj", "--dataset", "mnist"]
    args += ["--data-dir", str(data), "--epochs", "1", "--batch-size", "512", "--out", str(out)]
    assert main([*args, "--quiet"]) == 0
    report = _check_outputs(out, "lenet-5-caffe")
    assert report["architecture_before"] == [1, 20, 50, 800, 500, 10]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "mlp:10-5-10", "--dataset", "digits"], "number of inputs (64)"),
        (["--model", "mlp:64-x-10", "--dataset", "digits"], "integers"),
        (["--model", "resnet", "--dataset", "digits"], "is not one of"),
        (["--model", "lenet-5-caffe", "--dataset", "digits"], "28x28"),
        (["--model", "lenet-300-100", "--dataset", "mnist"], "data_dir"),
        (
            ["--model", "lenet-300-100", "--dataset", "mnist", "--data-dir", "/nonexistent"],
            "not found",
        ),
        (["--model", "mlp:64-8-10", "--dataset", "digits", "--epochs", "0"], "--epochs"),
        (["--model", "mlp:64-8-10", "--dataset", "digits", "--lr", "-1"], "--lr"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_files(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code = main(["compress", "--prior", "group-nj", *args, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_out_that_is_a_file(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("x")
    args = ["compress", "--model", "mlp:64-8-10", "--prior", "group-nj", "--dataset", "digits"]
    assert main([*args, "--out", str(out), "--quiet"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert out.read_text() == "x"


def test_unknown_prior_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["compress", "--model", "mlp:64-8-10", "--prior", "laplace", "--dataset", "digits"])
    assert e.value.code == 2


def test_write_outputs_is_all_or_nothing(tmp_path):
    from pyrocompress.report import write_outputs

    def good(path):
        path.write_text("ok")

    def bad(path):
        raise RuntimeError("plot failed")

    out = tmp_path / "new"
    with pytest.raises(RuntimeError, match="plot failed"):
        write_outputs(out, {"a.json": good, "b.png": bad})
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError):
        write_outputs(existing, {"a.json": good, "b.png": bad})
    assert list(existing.iterdir()) == []
    write_outputs(existing, {"a.json": good})
    assert [p.name for p in existing.iterdir()] == ["a.json"]
