"""Bad input anywhere in the library: a TypeError/ValueError that names the argument."""

import gzip
import re
import warnings

import numpy as np
import pytest
import torch

import pyrocompress as pc
from pyrocompress import priors
from pyrocompress.cli import main

X = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


def _bnn():
    return pc.bayesianize(pc.mlp([4, 5, 2]), "group-nj", seed=0)


def _with(x=None, y=None):
    return (X if x is None else x, Y if y is None else y)


def _nan():
    x = X.clone()
    x[3, 1] = float("nan")
    return x


def _inf():
    x = X.clone()
    x[0, 0] = float("inf")
    return x


FIT_CASES = [
    ("NaN in X", dict(data=_with(_nan())), ValueError, "data: X has 1 non-finite"),
    ("inf in X", dict(data=_with(_inf())), ValueError, "data: X has 1 non-finite"),
    ("wrong width", dict(data=_with(torch.randn(20, 5))), ValueError, "do not fit the network"),
    ("1-D X", dict(data=_with(torch.randn(20))), ValueError, "one row per example"),
    ("string X", dict(data=_with(np.full((20, 4), "a"))), TypeError, "numeric"),
    ("complex X", dict(data=_with(X.to(torch.complex64))), TypeError, "real numbers"),
    ("float labels", dict(data=_with(y=Y.float() + 0.5)), ValueError, "integer dtype"),
    ("labels >= C", dict(data=_with(y=Y + 2)), ValueError, "outside [0, 2)"),
    ("negative labels", dict(data=_with(y=Y - 1)), ValueError, "outside [0, 2)"),
    ("length mismatch", dict(data=_with(y=Y[:5])), ValueError, "20 examples but y has 5"),
    ("empty data", dict(data=(X[:0], Y[:0])), ValueError, "no examples"),
    ("not a pair", dict(data=X), TypeError, "pair (X, y)"),
    ("batch size 0", dict(batch_size=0), ValueError, "batch_size must be a positive"),
    ("epochs -1", dict(epochs=-1), ValueError, "epochs must be a positive"),
    ("lr 0", dict(lr=0.0), ValueError, "lr must be a positive"),
    ("bad schedule", dict(lr_schedule="step"), ValueError, "lr_schedule must be one of"),
    ("warm-up 1.5", dict(kl_warmup=1.5), ValueError, "kl_warmup must be"),
    ("NaN validation", dict(validation=_with(_nan())), ValueError, "validation: X has 1"),
    ("variance cap 0", dict(max_weight_variance={"1": 0.0}), ValueError, "positive finite"),
    ("resume alone", dict(resume=True), ValueError, "needs checkpoint_dir"),
]


@pytest.mark.parametrize("case, kwargs, error, message", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_rejects(case, kwargs, error, message):
    kwargs = {"data": (X, Y), "epochs": 1, "progress": False, **kwargs}
    with pytest.raises(error, match=re.escape(message)):
        pc.fit(_bnn(), kwargs.pop("data"), **kwargs)


PRIOR_CASES = [
    (priors.Gaussian, dict(scale=0.0), "scale must be a positive"),
    (priors.Gaussian, dict(scale=-1.0), "scale must be a positive"),
    (priors.GroupHorseshoe, dict(scale_global=0.0), "scale_global must be a positive"),
    (priors.GroupHorseshoe, dict(scale_global=float("inf")), "scale_global must be finite"),
    (priors.SpikeAndSlab, dict(prior_inclusion=0.0), "strictly between 0 and 1"),
    (priors.SpikeAndSlab, dict(prior_inclusion=1.0), "strictly between 0 and 1"),
    (priors.SpikeAndSlab, dict(prior_inclusion=float("nan")), "strictly between 0 and 1"),
    (priors.SpikeAndSlab, dict(slab_scale=-2.0), "slab_scale must be a positive"),
]


@pytest.mark.parametrize("cls, kwargs, message", PRIOR_CASES)
def test_invalid_prior_hyper_parameters(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_unsupported_layers_and_priors():
    with pytest.raises(TypeError, match="unsupported layer at '1': BatchNorm1d"):
        pc.bayesianize(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)))
    with pytest.raises(TypeError, match="unsupported layer at '0': LSTM"):
        pc.bayesianize(torch.nn.Sequential(torch.nn.LSTM(4, 3)))
    with pytest.raises(ValueError, match="unknown prior 'laplace'"):
        pc.bayesianize(pc.mlp([4, 5, 2]), "laplace")


@pytest.fixture(scope="module")
def fitted():
    bnn = _bnn()
    pc.fit(bnn, (X, Y), epochs=2, progress=False)
    return bnn


PRUNE_CASES = [
    (dict(rule="bogus"), "rule must be one of"),
    (dict(rule="pip", threshold=1.5), r"PIP threshold must be in \[0, 1\]"),
    (dict(rule="snr", threshold=-1.0), "SNR threshold must be non-negative"),
    (dict(rule="log_alpha", threshold=float("nan")), "threshold must be a finite number"),
    (dict(rule="snr", threshold=float("inf")), "threshold must be a finite number"),
    (dict(rule="sparsity", sparsity=1.0), r"sparsity in \[0, 1\)"),
    (dict(rule="auto", validation=None), "needs validation data"),
    (dict(rule="auto", tolerance=1.5), r"tolerance must be in \[0, 1\)"),
    (dict(rule="auto", validation=(torch.randn(20, 7), Y)), "validation: inputs of shape"),
    (dict(rule="auto", validation=(_nan(), Y)), "validation: X has 1 non-finite"),
    (dict(rule="snr", test=(X, Y + 5)), "test: 20 labels outside"),
]


@pytest.mark.parametrize("kwargs, message", PRUNE_CASES)
def test_prune_rejects(fitted, kwargs, message):
    kwargs = {"validation": (X, Y), **kwargs}
    with pytest.raises(ValueError, match=message):
        pc.prune(fitted, **kwargs)


def test_pruning_that_would_empty_a_layer_keeps_its_strongest_unit_and_warns(fitted):
    """The documented choice: keep the best-scoring group of the layer, with a warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pc.prune(fitted, "snr", threshold=1e9, validation=(X, Y))
    assert any("removes every unit" in str(w.message) for w in caught)
    assert all(int(m.sum()) == 1 for m in result.plan.masks.values())
    assert result.report["architecture_after"] == [1, 1, 2]


def test_cli_corrupt_idx_exits_2_without_files(tmp_path, capsys):
    data = tmp_path / "mnist"
    data.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (data / f"{name}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (data / f"{name}.gz").write_bytes(b"not gzip at all")
    out = tmp_path / "out"
    args = ["compress", "--model", "lenet-300-100", "--prior", "group-nj", "--dataset", "mnist"]
    assert main([*args, "--data-dir", str(data), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_cli_checkpoint_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    args = ["compress", "--model", "mlp:64-8-10", "--prior", "group-nj", "--dataset", "digits"]
    code = main([*args, "--checkpoint-dir", str(tmp_path / "f"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "--checkpoint-dir" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_select_out_that_is_a_file(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,y\n" + "\n".join(f"{i},{i % 3},{i % 2}" for i in range(30)) + "\n")
    (tmp_path / "out").write_text("keep")
    code = main(["select", "--csv", str(csv), "--target", "y", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "is a file" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "keep"
