import json
from pathlib import Path

import numpy as np
import pytest
import torch

import pyrocompress as pc
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


@pytest.mark.slow  # 84 s on 2 cores: every plan is scored on the 5,000 held-out images
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
        (["--model", "lenet-300-100", "--dataset", "mnist"], "pass --data-dir pointing"),
        (
            ["--model", "lenet-300-100", "--dataset", "mnist", "--data-dir", "/nonexistent"],
            "not found",
        ),
        (["--model", "mlp:64-8-10", "--dataset", "digits", "--epochs", "0"], "--epochs"),
        (["--model", "mlp:64-8-10", "--dataset", "digits", "--lr", "-1"], "--lr"),
        (["--model", "mlp:64-8-10", "--dataset", "digits", "--clip-var", "0"], "--clip-var"),
        (["--model", "mlp:64-8-10", "--dataset", "digits", "--objective", "moments"], "gaussian"),
        (["--model", "mlp:64-8-10", "--dataset", "digits", "--score", "output_snr"], "gaussian"),
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
    assert report["objective"] == "moments" and report["score"] == "snr"


@pytest.mark.parametrize("score", ["output_snr", "variance_share"])
def test_compress_prunes_by_a_moment_score(tmp_path, score):
    """--score ranks the groups for the automatic rule; the report says which it was."""
    out = tmp_path / "out"
    args = ["compress", "--model", "mlp:64-16-10", "--prior", "gaussian", "--dataset", "digits"]
    args += ["--epochs", "3", "--score", score, "--out", str(out), "--quiet"]
    assert main(args) == 0
    report = _check_outputs(out, "mlp:64-16-10")
    assert report["score"] == score and report["objective"] == "elbo"
    assert torch.load(out / "model.pt", weights_only=True)["metadata"]["score"] == score


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
    from pyrocompress.cli.app import _attach_negative_values, _parser

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
    from pyrocompress.compress.report import write_outputs

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


# ------------------------------------------------------------ bad input at the boundary
COMPRESS = ["compress", "--model", "mlp:64-8-10", "--prior", "group-nj", "--dataset", "digits"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--tolerance", "1.5"], "--tolerance must be a number in [0, 1), e.g. 0.01"),
        (["--tolerance=-1"], "--tolerance must be a number in [0, 1)"),
        (["--tolerance", "nan"], "--tolerance must be a number in [0, 1), e.g. 0.01 (1 point"),
        (["--tolerance", "1"], "got 1.0"),
        (["--lr", "nan"], "--lr must be a number > 0, e.g. 0.01; got nan"),
        (["--lr", "inf"], "--lr must be a number > 0"),
        (["--lr", "0"], "--lr must be a number > 0"),
        (["--epochs", "0"], "--epochs must be an integer in [1, 1000000], e.g. 100; got 0"),
        (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
        (["--batch-size=-5"], "--batch-size must be an integer >= 1"),
        (["--kl-warmup=-1"], "--kl-warmup must be an integer >= 0"),
        (["--clip-var", "inf"], "--clip-var must be a number > 0, e.g. 0.04; got inf"),
        (["--clip-var=-0.1"], "--clip-var must be a number > 0"),
        (["--seed=-1"], "--seed must be an integer in [0, 4294967295], e.g. 0; got -1"),
    ],
)
def test_out_of_range_numbers_fail_before_training(tmp_path, capsys, no_training, extra, message):
    out = tmp_path / "out"
    assert main([*COMPRESS, *extra, "--out", str(out), "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert err.startswith("pyrocompress: error: ") and message in err, err
    assert not out.exists()


@pytest.mark.parametrize("option", ["--out", "--checkpoint-dir"])
def test_a_folder_that_cannot_be_created_fails_before_training(
    tmp_path, capsys, no_training, option
):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep")
    target = blocker / "sub" / "dir"
    assert main([*COMPRESS, option, str(target), "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert f"{option} {target} cannot be created: {blocker} is a file" in err
    assert blocker.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_out_folder_that_cannot_be_written_fails_before_training(
    tmp_path, capsys, no_training, monkeypatch
):
    from pyrocompress.cli import app as cli

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli.tempfile, "mkdtemp", refuse)  # root ignores file modes
    out = tmp_path / "out"
    out.mkdir()
    assert main([*COMPRESS, "--out", str(out), "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert f"--out {out} is not writable (Permission denied" in err
    assert list(out.iterdir()) == []


def test_a_write_error_after_training_is_one_line_exit_2_and_no_files(
    tmp_path, capsys, monkeypatch
):
    """Disk full (or the folder removed meanwhile) while the outputs are written."""
    from pyrocompress.compress import report

    def full(path):
        raise OSError(28, "No space left on device")

    real = report.write_outputs
    monkeypatch.setattr(
        "pyrocompress.cli.app.write_outputs",
        lambda out, writers: real(out, {**writers, "model.pt": full}),
    )
    out = tmp_path / "out"
    args = ["--epochs", "1", "--tol", "off", "--tolerance", "0.5", "--out", str(out), "--quiet"]
    assert main([*COMPRESS, *args]) == 2
    err = _one_line_error(capsys)
    assert f"--out {out}: the outputs could not be written (No space left on device)" in err
    assert "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--prior", "laplace"], "argument --prior: invalid choice: 'laplace'"),
        (["--prior", "gaussian", "--epochs", "x"], "--epochs must be a whole number such as 100"),
        (["--prior", "gaussian", "--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
        (["--prior", "gaussian", "--device", "tpu"], "argument --device: invalid choice"),
        (["--prior", "gaussian", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: --prior"),
    ],
)
def test_argument_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(["compress", "--model", "mlp:64-8-10", "--dataset", "digits", *argv])
    assert e.value.code == 2
    err = _one_line_error(capsys)
    assert err.startswith("pyrocompress compress: error: ") and message in err, err
    assert err.rstrip().endswith("(run `pyrocompress compress --help` for usage)")
    assert "usage:" not in err


def test_an_unknown_command_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["compres"])
    assert e.value.code == 2
    err = _one_line_error(capsys)
    assert err.startswith("pyrocompress: error: argument command: invalid choice: 'compres'")
    assert "(run `pyrocompress --help` for usage)" in err


# ------------------------------------------------------------------ all-or-nothing output
def _good(path):
    path.write_text("new")


def _broken(path):
    raise RuntimeError("plot failed")


def test_write_outputs_new_folder_is_published_whole(tmp_path):
    from pyrocompress.compress.report import write_outputs

    out = tmp_path / "a" / "b" / "out"
    write_outputs(out, {"x.json": _good, "y.png": _good})
    assert sorted(p.name for p in out.iterdir()) == ["x.json", "y.png"]
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["out"]  # no staging left
    mode = out.stat().st_mode & 0o777
    (tmp_path / "plain").mkdir()
    assert mode == (tmp_path / "plain").stat().st_mode & 0o777  # as a plain mkdir makes it


@pytest.mark.parametrize("state", ["missing", "missing parents", "empty", "with files"])
def test_write_outputs_failing_midway_leaves_out_as_it_was(tmp_path, state):
    from pyrocompress.compress.report import write_outputs

    root = tmp_path / "root"
    root.mkdir()
    out = root / ("p/q/out" if state == "missing parents" else "out")
    if state == "empty":
        out.mkdir()
        out.chmod(0o750)
    if state == "with files":
        out.mkdir()
        (out / "old.txt").write_text("old")
        (out / "a.json").write_text("previous a")
    writes = []

    def counted(path):
        writes.append(path.name)
        _good(path)

    with pytest.raises(RuntimeError, match="plot failed"):
        write_outputs(out, {"a.json": counted, "b.json": counted, "c.png": _broken})
    assert writes == ["a.json", "b.json"]  # the failure came after files were written
    if state.startswith("missing"):
        assert list(root.iterdir()) == []  # no out, no parents made for it, no staging
    elif state == "empty":
        assert [p.name for p in root.iterdir()] == ["out"] and list(out.iterdir()) == []
        assert out.stat().st_mode & 0o777 == 0o750
    else:
        assert [p.name for p in root.iterdir()] == ["out"]
        assert sorted(p.name for p in out.iterdir()) == ["a.json", "old.txt"]
        assert (out / "a.json").read_text() == "previous a"


def test_write_outputs_into_a_full_folder_undoes_a_failed_move(tmp_path, monkeypatch):
    """Files moved in before a move fails are taken out, the ones they replaced restored."""
    from pyrocompress.compress import report

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text("previous a")
    (out / "keep.txt").write_text("keep")
    real_replace = report.os.replace

    def replace(src, dst):
        if Path(dst) == out / "b.json":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(report.os, "replace", replace)
    with pytest.raises(OSError, match="No space"):
        report.write_outputs(out, {"a.json": _good, "b.json": _good, "c.json": _good})
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "keep.txt"]
    assert (out / "a.json").read_text() == "previous a"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    report.write_outputs(out, {"a.json": _good, "b.json": _good})  # and then it works
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "b.json", "keep.txt"]
    assert (out / "a.json").read_text() == "new" and (out / "keep.txt").read_text() == "keep"


def test_write_outputs_through_a_link_to_an_empty_folder_keeps_the_link(tmp_path):
    from pyrocompress.compress.report import write_outputs

    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target, target_is_directory=True)
    write_outputs(tmp_path / "link", {"x.json": _good})
    assert (tmp_path / "link").is_symlink()
    assert [p.name for p in target.iterdir()] == ["x.json"]


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
    run = ["task", "prior", "hidden", "epochs", "seed", "n_init", "elbo", "init_elbos"]
    run += ["excluded", "version", "effects"]
    assert list(sel) == [*SELECTION_KEYS, "seconds", *run]  # issue 27: the run is recorded
    assert sel["effects"] is None  # an input's effect is one number only in a linear model
    assert sel["task"] == "regression" and sel["prior"] == "spike-slab"
    assert sel["hidden"] == [4] and sel["epochs"] == 1500 and sel["seed"] == 0
    assert sel["excluded"] == [] and sel["version"] == pc.__version__
    assert sel["n_init"] == 1 and sel["init_elbos"] == [sel["elbo"]]
    assert isinstance(sel["elbo"], float)  # per example, nats (a density: may exceed 0)
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
    effects = sel["effects"]  # --hidden 0: the direction of each effect (issue 27)
    assert effects["units"] == "log-odds of class 1 per unit of the column"
    assert effects["classes"] == [0, 1] and list(effects["columns"]) == sel["features"]
    age = effects["columns"]["age"]
    assert age["mean"] > 2 * age["sd"] > 0  # y = 1 when 3 age + noise > 0: positive


def test_select_linear_regression_records_the_effects_in_units_of_y(tmp_path):
    csv, out = _table(tmp_path / "t.csv"), tmp_path / "sel"
    args = ["select", "--csv", str(csv), "--target", "outcome", "--hidden", "0"]
    assert main([*args, "--epochs", "1500", "--out", str(out), "--quiet"]) == 0
    effects = json.loads((out / "selection.json").read_text())["effects"]
    assert effects["units"] == "units of y per unit of the column" and effects["classes"] is None
    age = effects["columns"]["age"]  # y = 3 age + N(0, 0.3^2), n = 120: OLS sd about 0.03
    assert abs(age["mean"] - 3) < 0.15 and 0 < age["sd"] < 0.2
    for noise in ("dose", "noise1", "noise2"):
        assert abs(effects["columns"][noise]["mean"]) < 0.15


def test_select_n_init_keeps_the_initialisation_with_the_highest_elbo(tmp_path):
    csv, out = _table(tmp_path / "t.csv"), tmp_path / "sel"
    args = ["select", "--csv", str(csv), "--target", "outcome", "--hidden", "0"]
    assert main([*args, "--epochs", "1500", "--n-init", "2", "--out", str(out), "--quiet"]) == 0
    sel = json.loads((out / "selection.json").read_text())
    assert sel["n_init"] == 2 and len(sel["init_elbos"]) == 2
    assert sel["elbo"] == max(sel["init_elbos"]) and sel["selected"] == ["age"]


def test_select_explicit_task_and_prior(tmp_path, capsys):
    csv = _table(tmp_path / "t.csv", classes=True)
    args = ["select", "--csv", str(csv), "--target", "outcome", "--task", "regression"]
    assert main([*args, "--prior", "group-nj", "--epochs", "2", "--hidden", "3", "--quiet"]) == 0
    assert "task: regression\n" in capsys.readouterr().out


GOOD = "a,b,y\n1,2,3\n4,5,6\n7,8,1\n"
#: case -> (file contents, expected message)
BAD_CSVS = {
    "missing target": ("a,b,z\n1,2,3\n4,5,6\n", "target column 'y' not found"),
    "text in a numeric feature": (
        "a,b,y\n1,2,3\n4,x,6\n7,8,9\n",
        "feature column 'b' is numeric but for value 'x' in data row 2",
    ),
    "missing label": ("a,b,y\n1,red,3\n4,,6\n7,blue,9\n", "feature column 'b' has missing values"),
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
        (["--fdr", "1.5"], "--fdr must be a number in [0, 1)"),
        (["--hidden", "20,x"], "--hidden must be comma-separated"),
        (["--epochs", "0"], "--epochs must be an integer in [1, 1000000]"),
        (["--n-init", "0"], "--n-init must be an integer in [1, 100]"),
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


# ------------------------------------------------ select: seed, prior, task, plot, header
def _select(csv, *extra, target="outcome"):
    return ["select", "--csv", str(csv), "--target", target, *extra, "--quiet"]


@pytest.fixture
def fitted_selectors(monkeypatch):
    """The FeatureSelector instances that `pyrocompress select` fits, in order."""
    from pyrocompress.cli import app as cli

    made = []

    class Recorded(cli.FeatureSelector):
        def fit(self, X, y):
            made.append(self)
            return super().fit(X, y)

    monkeypatch.setattr(cli, "FeatureSelector", Recorded)
    return made


def test_select_same_seed_gives_the_same_selection(tmp_path, fitted_selectors):
    csv = _table(tmp_path / "t.csv")
    runs = {}
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        out = tmp_path / name
        args = _select(csv, "--hidden", "3", "--epochs", "5", "--seed", seed, "--out", str(out))
        assert main(args) == 0
        runs[name] = json.loads((out / "selection.json").read_text())["inclusion_probabilities"]
    assert [s.random_state for s in fitted_selectors] == [7, 7, 8]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]  # the seed reaches the fit


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**40)])
def test_select_seed_out_of_range(tmp_path, capsys, fitted_selectors, seed):
    csv, out = _table(tmp_path / "t.csv"), tmp_path / "out"
    assert main(_select(csv, f"--seed={seed}", "--out", str(out))) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyrocompress: error: --seed must be an integer in [0, 4294967295]")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert fitted_selectors == [] and not out.exists()


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_select_seed_range_boundaries_run(tmp_path, fitted_selectors, seed):
    csv = _table(tmp_path / "t.csv")
    assert main(_select(csv, "--hidden", "3", "--epochs", "1", "--seed", str(seed))) == 0
    assert fitted_selectors[0].random_state == seed


def test_select_group_horseshoe_prior(tmp_path, capsys, fitted_selectors):
    csv, out = _table(tmp_path / "t.csv"), tmp_path / "sel"
    args = _select(csv, "--prior", "group-horseshoe", "--hidden", "3", "--epochs", "5")
    assert main([*args, "--out", str(out)]) == 0
    (sel,) = fitted_selectors
    assert sel.prior == "group-horseshoe" and sel.module_.prior.key == "group-horseshoe"
    assert "prior group-horseshoe, hidden 3, 5 epochs" in capsys.readouterr().out
    selection = json.loads((out / "selection.json").read_text())
    pip = selection["inclusion_probabilities"]
    assert pip == pytest.approx(dict(zip(selection["features"], sel.inclusion_probabilities_)))


def test_select_explicit_task_classification(tmp_path, capsys, fitted_selectors):
    """A target of two non-integer values is inferred as regression; --task classification
    makes it labels (Bernoulli likelihood, classes 0.5 and 1.5)."""
    from pyrocompress.distributions import BernoulliLikelihood

    csv = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = np.where(X[:, 0] > 0, 1.5, 0.5)
    csv.write_text("a,b,c,y\n" + "".join(f"{r[0]},{r[1]},{r[2]},{t}\n" for r, t in zip(X, y)))
    args = _select(csv, "--task", "classification", "--hidden", "3", "--epochs", "3", target="y")
    assert main(args) == 0
    assert "task: classification\n" in capsys.readouterr().out
    (sel,) = fitted_selectors
    assert sel.task == "classification" and sel.task_ == "classification"
    assert sel.classes_.tolist() == [0.5, 1.5]
    assert isinstance(sel.module_.likelihood, BernoulliLikelihood)
    # without --task the same file is a regression
    assert main(_select(csv, "--hidden", "3", "--epochs", "1", target="y")) == 0
    assert fitted_selectors[1].task_ == "regression"


@pytest.mark.parametrize("fdr", [None, "0.05"])
def test_select_pip_plot_marks_the_cut_off_of_the_rule(tmp_path, monkeypatch, fdr):
    """pip.png's dashed line: the smallest selected PIP with --fdr, 0.5 without."""
    from pyrocompress import plots

    drawn = []

    def recording(*args, **kwargs):
        fig = original(*args, **kwargs)
        drawn.append(fig)
        return fig

    original = plots.plot_pip_stem
    monkeypatch.setattr(plots, "plot_pip_stem", recording)
    csv, out = _table(tmp_path / "t.csv"), tmp_path / "sel"
    extra = [] if fdr is None else ["--fdr", fdr]
    args = _select(csv, "--hidden", "0", "--epochs", "300", *extra, "--out", str(out))
    assert main(args) == 0
    sel = json.loads((out / "selection.json").read_text())
    assert "age" in sel["selected"], sel  # something is selected: the line is drawn
    (fig,) = drawn
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "--"]
    if fdr is None:
        assert list(line.get_ydata()) == [0.5, 0.5]
        assert line.get_label().startswith("median-probability cut-off")
    else:
        cutoff = min(sel["inclusion_probabilities"][name] for name in sel["selected"])
        assert line.get_ydata()[0] == pytest.approx(cutoff)
        assert line.get_label().startswith("Bayesian FDR ≤ 0.05 cut-off")


def test_select_duplicate_target_column_exits_2(tmp_path, capsys, fitted_selectors):
    """A repeated header name (pandas would read y, y.1 and let the copy in as a feature)."""
    csv, out = tmp_path / "dup.csv", tmp_path / "out"
    csv.write_text("a,y,b,y\n1,2,3,2\n4,5,6,5\n7,8,9,1\n")
    assert main(_select(csv, "--out", str(out), target="y")) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyrocompress: error: ") and err.count("\n") == 1, err
    assert "duplicate column names in its header ('y' in columns 2, 4)" in err
    assert "rename or drop the repeated columns" in err and "Traceback" not in err
    assert fitted_selectors == [] and not out.exists()


@pytest.mark.slow
def test_demo_reproduces_its_committed_report(tmp_path):
    """``pyrocompress demo`` gives the committed ``docs/results/core/demo/report.json``
    again, every number but the wall-clock times (``benchmarks/core/core_runs.py --only
    demo`` rewrites it). About two minutes on 2 cores."""
    committed = Path(__file__).resolve().parents[2] / "docs/results/core/demo/report.json"
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    new, old = (json.loads(p.read_text()) for p in (out / "report.json", committed))
    timings = {"seconds", "prune_seconds"}
    assert {k: v for k, v in new.items() if k not in timings | {"history"}} == {
        k: v for k, v in old.items() if k not in timings | {"history"}
    }
    assert {k: v for k, v in new["history"].items() if k != "seconds"} == {
        k: v for k, v in old["history"].items() if k != "seconds"
    }


def test_select_excludes_columns(tmp_path, capsys):
    """Issue 27 (item 3): an ID column could not be left out."""
    csv, out = _table(tmp_path / "t.csv"), tmp_path / "sel"
    args = ["select", "--csv", str(csv), "--target", "outcome", "--hidden", "0"]
    args += ["--epochs", "300", "--exclude", "noise1, noise2", "--out", str(out), "--quiet"]
    assert main(args) == 0
    sel = json.loads((out / "selection.json").read_text())
    assert sel["features"] == ["age", "dose"] and sel["excluded"] == ["noise1", "noise2"]


@pytest.mark.parametrize(
    ("exclude", "message"),
    [("outcome", "names the target column"), ("nope", "'nope', not a column of")],
)
def test_select_bad_exclude_is_one_line(tmp_path, capsys, exclude, message):
    csv = _table(tmp_path / "t.csv")
    args = ["select", "--csv", str(csv), "--target", "outcome", "--exclude", exclude]
    assert main([*args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
