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
        (["--model", "mlp:64-8-10", "--dataset", "digits", "--clip-var", "0"], "--clip-var"),
        (["--model", "mlp:64-8-10", "--dataset", "digits", "--objective", "moments"], "gaussian"),
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


def test_compress_with_the_moments_objective(tmp_path):
    out = tmp_path / "out"
    args = ["compress", "--model", "mlp:64-16-10", "--prior", "gaussian", "--dataset", "digits"]
    args += ["--objective", "moments", "--epochs", "3", "--out", str(out), "--quiet"]
    assert main(args) == 0
    report = _check_outputs(out, "mlp:64-16-10")
    assert report["history"]["loss"][-1] < report["history"]["loss"][0]


def test_compress_with_the_authors_recipe_options(tmp_path):
    """--pixel-range, --clip-var and --lr-schedule reach the data and fit."""
    data = _fake_mnist(tmp_path / "mnist")
    out = tmp_path / "out"
    args = ["compress", "--model", "lenet-300-100", "--prior", "group-nj", "--dataset", "mnist"]
    args += ["--data-dir", str(data), "--epochs", "1", "--batch-size", "512", "--out", str(out)]
    args += ["--pixel-range", "-1,1", "--clip-var", "0.04", "--lr-schedule", "constant"]
    assert main([*args, "--quiet"]) == 0
    report = _check_outputs(out, "lenet-300-100")
    assert report["history"]["lr"] == [1e-2]  # constant: the default lr after one epoch


@pytest.mark.parametrize(
    "argv", [["--pixel-range", "-1,1"], ["--pixel-range=-1,1"], ["--pixel-range", "-1.5,-0.5"]]
)
def test_pixel_range_takes_negative_bounds_as_written(argv):
    from pyrocompress.cli import _attach_negative_values, _parser

    base = ["compress", "--model", "m", "--prior", "gaussian", "--dataset", "digits"]
    args = _parser().parse_args(_attach_negative_values([*base, *argv, "--seed", "3"]))
    low = float(argv[-1].split("=")[-1].split(",")[0])
    assert args.pixel_range[0] == low and args.pixel_range[0] < args.pixel_range[1]
    assert args.seed == 3


@pytest.mark.parametrize("value", ["1,1", "a,b", "0", "0,inf"])
def test_bad_pixel_range_is_a_usage_error(capsys, value):
    with pytest.raises(SystemExit) as e:
        main(["compress", "--model", "mlp:64-8-10", "--prior", "gaussian", "--dataset",
              "digits", f"--pixel-range={value}"])  # fmt: skip
    assert e.value.code == 2
    assert "--pixel-range" in capsys.readouterr().err


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


# ----------------------------------------------------------------------------- select
SELECTION_KEYS = ["features", "inclusion_probabilities", "selected", "rule", "estimated_fdr"]


def _table(path, n=120, seed=0, classes=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = 3 * X[:, 0] + rng.normal(size=n) * 0.3
    if classes:
        y = (y > 0).astype(int)
    rows = ["age,dose,noise1,noise2,outcome"]
    rows += [",".join(f"{v:.6g}" for v in (*x, t)) for x, t in zip(X, y)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_select_contract(tmp_path, capsys):
    csv, out = _table(tmp_path / "t.csv"), tmp_path / "sel"
    args = ["select", "--csv", str(csv), "--target", "outcome", "--hidden", "4"]
    assert main([*args, "--epochs", "1500", "--out", str(out), "--quiet"]) == 0
    sel = json.loads((out / "selection.json").read_text())
    assert list(sel) == [*SELECTION_KEYS, "seconds"]
    assert sel["features"] == ["age", "dose", "noise1", "noise2"]
    assert set(sel["inclusion_probabilities"]) == set(sel["features"])
    assert all(0 <= p <= 1 for p in sel["inclusion_probabilities"].values())
    assert sel["selected"] == ["age"], sel["inclusion_probabilities"]
    assert sel["rule"].startswith("median")
    assert sel["estimated_fdr"] == pytest.approx(1 - sel["inclusion_probabilities"]["age"])
    assert sel["seconds"] > 0
    assert (out / "pip.png").stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == ["pip.png", "selection.json"]
    printed = capsys.readouterr().out
    assert "task: regression (inferred: the target takes non-integer values" in printed


def test_select_infers_classification_and_uses_fdr(tmp_path, capsys):
    csv, out = _table(tmp_path / "t.csv", classes=True), tmp_path / "sel"
    args = ["select", "--csv", str(csv), "--target", "outcome", "--hidden", "0", "--fdr", "0.05"]
    assert main([*args, "--epochs", "1500", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "task: classification (inferred: the target takes 2 integer values" in printed
    sel = json.loads((out / "selection.json").read_text())
    assert sel["rule"] == "bayesian-fdr (q=0.05)"
    assert sel["estimated_fdr"] <= 0.05
    assert "age" in sel["selected"]


def test_select_explicit_task_and_prior(tmp_path, capsys):
    csv = _table(tmp_path / "t.csv", classes=True)
    args = ["select", "--csv", str(csv), "--target", "outcome", "--task", "regression"]
    assert main([*args, "--prior", "group-nj", "--epochs", "2", "--hidden", "3", "--quiet"]) == 0
    assert "task: regression\n" in capsys.readouterr().out


GOOD = "a,b,y\n1,2,3\n4,5,6\n7,8,1\n"
#: case -> (file contents, expected message)
BAD_CSVS = {
    "missing target": ("a,b,z\n1,2,3\n4,5,6\n", "target column 'y' not found"),
    "non-numeric feature": ("a,b,y\n1,red,3\n4,blue,6\n", "feature column 'b' is not numeric"),
    "NaN feature": ("a,b,y\n1,,3\n4,5,6\n7,8,9\n", "feature column 'b' has missing or NaN"),
    "nan literal": ("a,b,y\n1,nan,3\n4,5,6\n7,8,9\n", "feature column 'b' has missing or NaN"),
    "inf feature": ("a,b,y\n1,inf,3\n4,5,6\n", "feature column 'b' has infinite values"),
    "inf target": ("a,b,y\n1,2,-inf\n4,5,6\n", "target column 'y' has infinite values"),
    "NaN target": ("a,b,y\n1,2,\n4,5,6\n7,8,9\n", "target column 'y' has missing"),
    "one row": ("a,b,y\n1,2,3\n", "1 data row(s); at least 2"),
    "header only": ("a,b,y\n", "0 data row(s); at least 2"),
    "constant target": ("a,b,y\n1,2,3\n4,5,3\n7,8,3\n", "target column 'y' is constant"),
    "empty file": ("", "is empty"),
    "only the target": ("y\n1\n2\n", "no feature column"),
    "ragged": ("a,b,y\n1,2,3\n4,5,6,7,8\n", "could not be parsed as CSV"),
    "good, but --out is a file": (GOOD, "is a file"),
}


@pytest.mark.parametrize("case", list(BAD_CSVS))
def test_select_bad_csv_exits_2_with_one_line(tmp_path, capsys, case):
    text, message = BAD_CSVS[case]
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    out = tmp_path / "out"
    if case.startswith("good"):
        out.write_text("not a directory")
    code = main(["select", "--csv", str(csv), "--target", "y", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("pyrocompress: error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err
    if case.startswith("good"):
        assert out.read_text() == "not a directory"
    else:
        assert not out.exists()  # no output folder, no partial files


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fdr", "1.5"], "--fdr must be a level in [0, 1)"),
        (["--hidden", "20,x"], "--hidden must be comma-separated"),
        (["--epochs", "0"], "--epochs must be a positive integer"),
    ],
)
def test_select_bad_options(tmp_path, capsys, extra, message):
    csv = _table(tmp_path / "t.csv")
    code = main(["select", "--csv", str(csv), "--target", "outcome", *extra, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_select_missing_file(tmp_path, capsys):
    code = main(["select", "--csv", str(tmp_path / "nope.csv"), "--target", "y"])
    assert code == 2 and "does not exist" in capsys.readouterr().err
