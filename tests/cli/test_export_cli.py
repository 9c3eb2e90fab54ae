"""``--export onnx,packed,shared``: the deployable files, their sizes in the report.

``model.pt`` and ``model.onnx`` hold the compact network ``result.module`` (not quantised);
``model.packed`` holds it with each layer's weights rounded to its fixed-point grid
(``result.quantized()``), ``model.shared`` the weight-shared one. Equalities here are
bit-exact: the packed format is lossless and the rounding is recomputed with the same
function, on the same inputs.
"""

import json
import re

import pytest
import torch
from torch import nn

from pyrocompress import load_compact, load_packed
from pyrocompress.cli import main
from pyrocompress.compress import packed_spec, quantize_weights
from pyrocompress.data import load_dataset

COMPRESS = ["compress", "--model", "mlp:64-32-10", "--prior", "group-nj", "--dataset", "digits"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "out"
    formats = "packed,shared,onnx" if _has_onnx() else "packed,shared"
    code = main([*COMPRESS, "--epochs", "3", "--out", str(out), "--export", formats, "--quiet"])
    assert code == 0
    return out, json.loads((out / "report.json").read_text())


def _has_onnx() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))


def _digits() -> torch.Tensor:
    """The digits test inputs as the CLI reads them (seed 0, pixels in [0, 1])."""
    return torch.as_tensor(load_dataset("digits", seed=0).test.X).float()


def _state_bytes(module: nn.Module) -> dict[str, tuple[torch.dtype, tuple[int, ...], bytes]]:
    return {
        k: (v.dtype, tuple(v.shape), v.detach().contiguous().reshape(-1).numpy().tobytes())
        for k, v in module.state_dict().items()
    }


def _mantissa_bits(compact: nn.Module, report: dict) -> dict[str, int]:
    """The report's per-layer mantissa bits, by the compact network's weight keys in order."""
    keys = [k for k in compact.state_dict() if k.endswith("weight")]
    assert len(keys) == len(report["layers"]) == len(report["mantissa_bits"])
    return dict(zip(keys, report["mantissa_bits"], strict=True))


def _error(module: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """The classification error as the CLI's likelihood computes it."""
    with torch.no_grad():
        return (module(X).argmax(-1) != y).float().mean().item()


def test_the_packed_file_is_the_model_pt_network_rounded_to_its_grids_bit_for_bit(exported):
    out, report = exported
    compact, packed = load_compact(out / "model.pt"), load_packed(out / "model.packed")
    assert report["quantized"] is False  # model.pt is not quantised for --export
    bits = _mantissa_bits(compact, report)
    expected = quantize_weights(compact, bits)
    assert _state_bytes(packed) == _state_bytes(expected)
    x = _digits()
    with torch.no_grad():
        assert torch.equal(packed(x), expected(x))
    # model.pt keeps the unrounded weights: some are off their grid
    assert any(not torch.equal(compact.state_dict()[k], expected.state_dict()[k]) for k in bits)
    # every kept weight is a fixed-point code on its grid, no wider than the counted bits
    codes = dict(zip(packed.state_dict(), packed_spec(out / "model.packed")["codes"], strict=True))
    for (key, t), width in zip(bits.items(), report["bits_per_layer"], strict=True):
        assert codes[key][0] == "fixed"
        assert codes[key][1] <= t  # the file's grid is the coarsest holding the values
        assert codes[key][3] <= width


def test_the_reported_test_errors_are_those_of_the_files(exported):
    """Rebuild the CLI's test split (digits, seed 0) and recompute each network's error."""
    out, report = exported
    splits = load_dataset("digits", seed=0)
    X, y = torch.as_tensor(splits.test.X).float(), torch.as_tensor(splits.test.y)
    # the split is the CLI's: model.pt reproduces the compact network's reported error
    assert report["test_error_compact"] == _error(load_compact(out / "model.pt"), X, y)
    assert report["test_error_packed"] == _error(load_packed(out / "model.packed"), X, y)
    assert report["test_error_shared"] == _error(load_packed(out / "model.shared"), X, y)
    assert 0.0 <= report["test_error_packed"] <= 1.0


def test_the_report_counts_every_byte_of_the_files(exported, capsys):
    out, report = exported
    assert report["file_bytes_dense"] == 4 * report["params_before"]
    assert report["file_bytes_packed"] == (out / "model.packed").stat().st_size
    assert report["file_bytes_shared"] == (out / "model.shared").stat().st_size
    assert report["compression_rate_file"] == pytest.approx(
        report["file_bytes_dense"] / report["file_bytes_packed"]
    )
    assert report["compression_rate_file_shared"] == pytest.approx(
        report["file_bytes_dense"] / report["file_bytes_shared"]
    )
    assert 0.0 <= report["test_error_shared"] <= 1.0
    assert 0.0 <= report["test_error_packed"] <= 1.0
    assert len(report["codebook_sizes"]) == len(report["layers"])


def test_the_shared_file_holds_at_most_its_codebook_values(exported):
    out, report = exported
    shared = load_packed(out / "model.shared")
    weights = [v for k, v in shared.state_dict().items() if k.endswith("weight")]
    for w, size in zip(weights, report["codebook_sizes"]):
        assert w.unique().numel() == size
    codes = packed_spec(out / "model.shared")["codes"]
    assert any(c[0] == "codebook" for c in codes)


@pytest.mark.skipif(not _has_onnx(), reason="the onnx extra is not installed")
def test_the_onnx_file_agrees_with_torch_under_onnxruntime(exported):
    import onnxruntime as ort

    out, report = exported
    compact = load_compact(out / "model.pt")
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for x in (_digits()[:1], _digits()):
        (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            assert float((torch.as_tensor(y) - compact(x)).abs().max()) <= 1e-5
    assert report["file_bytes_onnx"] == (out / "model.onnx").stat().st_size
    assert report["onnx_max_abs_diff"] <= 1e-5


def test_the_table_shows_the_files(tmp_path, capsys):
    out = tmp_path / "out"
    args = [*COMPRESS, "--epochs", "1", "--out", str(out), "--export", "packed", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^dense float32 weights +[\d,]+ bytes$", printed, re.M)
    assert re.search(r"^model\.packed +[\d,]+ bytes  \(\d+\.\dx\)$", printed, re.M)
    assert not (out / "model.shared").exists() and not (out / "model.onnx").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("zip", "--export takes some of onnx, packed, shared"),
        ("packed,tflite", "--export takes some of onnx, packed, shared"),
        (",", "--export takes some of onnx, packed, shared"),
    ],
)
def test_a_bad_export_is_one_line_before_training(tmp_path, capsys, monkeypatch, value, message):
    from pyrocompress.cli import app as cli

    def reached(*args, **kwargs):
        raise AssertionError("the bad --export was not caught before the data and training")

    monkeypatch.setattr(cli.datasets, "load_dataset", reached)
    out = tmp_path / "out"
    assert main([*COMPRESS, "--out", str(out), "--export", value, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_export_onnx_without_the_extra_names_the_install(tmp_path, capsys, monkeypatch):
    import importlib.util

    from pyrocompress.cli import app as cli

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "onnxruntime" else real(n, *a)
    )
    monkeypatch.setattr(cli, "fit", lambda *a, **k: pytest.fail("trained"))
    out = tmp_path / "out"
    assert main([*COMPRESS, "--out", str(out), "--export", "onnx", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'pyrocompress[onnx]'" in err and "onnxruntime" in err
    assert not out.exists()


def _fails(exception: Exception):
    def export(*args, **kwargs):
        raise exception

    return export


@pytest.mark.parametrize(
    ("fmt", "target", "exception", "code"),
    [
        ("packed", "pyrocompress.compress.deploy.packed_bytes", RuntimeError("multi\nline"), 1),
        ("packed", "pyrocompress.compress.deploy.packed_bytes", TypeError("multi\nline"), 2),
        ("packed", "pyrocompress.compress.deploy.packed_bytes", ValueError("multi\nline"), 2),
        pytest.param(
            "onnx",
            "pyrocompress.compress.onnx.onnx_bytes",
            RuntimeError("multi\nline"),
            1,
            marks=pytest.mark.skipif(not _has_onnx(), reason="the onnx extra is not installed"),
        ),
    ],
    ids=["packed-runtime", "packed-type", "packed-value", "onnx-runtime"],
)
def test_an_export_that_fails_after_training_is_one_line_and_writes_nothing(
    tmp_path, capsys, monkeypatch, fmt, target, exception, code
):
    """A RuntimeError is a failed run (exit 1); a TypeError or ValueError the input's (2)."""
    monkeypatch.setattr(target, _fails(exception))
    out = tmp_path / "out"
    args = [*COMPRESS, "--epochs", "1", "--tol", "off", "--out", str(out), "--export", fmt]
    args.append("--quiet")
    assert main(args) == code
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert err.startswith("pyrocompress: error:") and "cannot be written: multi" in err
    assert "line" not in err.removeprefix("pyrocompress: error:")
    assert not out.exists()


@pytest.mark.slow  # about a minute: the demo's full training
def test_the_demo_packed_file_reaches_the_issues_floor(tmp_path):
    """Issue 24's floor: the packed file's rate is at least 0.8 of the counted-bits rate."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--export", "packed", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["file_bytes_packed"] == (out / "model.packed").stat().st_size
    assert report["compression_rate_file"] >= 0.8 * report["compression_rate_bits"]
