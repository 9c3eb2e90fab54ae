"""``--export onnx,packed,shared``: the deployable files, their sizes in the report."""

import json
import re

import pytest
import torch
from sklearn.datasets import load_digits

from pyrocompress import load_compact, load_packed
from pyrocompress.cli import main
from pyrocompress.compress import packed_spec

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
    return torch.as_tensor(load_digits().data[:300], dtype=torch.float32) / 16.0


def test_the_packed_file_is_the_quantised_compact_network_bit_for_bit(exported):
    out, report = exported
    compact, packed = load_compact(out / "model.pt"), load_packed(out / "model.packed")
    x = _digits()
    with torch.no_grad():
        assert torch.equal(packed(x), compact(x))
    for (k, a), (k2, b) in zip(compact.state_dict().items(), packed.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert report["quantized"] is True
    # every kept weight is a fixed-point code of at most the bits the report counts
    weights = [s for s in compact.state_dict() if s.endswith("weight")]
    codes = dict(zip(compact.state_dict(), packed_spec(out / "model.packed")["codes"]))
    for key, bits in zip(weights, report["bits_per_layer"]):
        assert codes[key][0] == "fixed"
        t = codes[key][1]
        w = compact.state_dict()[key]
        assert torch.equal(torch.round(w * 2.0**t), w * 2.0**t)  # on the grid 2^-t
        assert codes[key][3] <= bits


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
