"""Bad input anywhere in the library: a TypeError/ValueError that names the argument."""

import gzip
import math
import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

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
    ("batch size 0", dict(batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    ("epochs -1", dict(epochs=-1), ValueError, "epochs must be an integer in [1, 1000000]"),
    ("lr 0", dict(lr=0.0), ValueError, "lr must be a number > 0"),
    ("bad schedule", dict(lr_schedule="step"), ValueError, "lr_schedule must be one of"),
    ("warm-up 1.5", dict(kl_warmup=1.5), ValueError, "kl_warmup must be"),
    ("NaN validation", dict(validation=_with(_nan())), ValueError, "validation: X has 1"),
    ("variance cap 0", dict(max_weight_variance={"1": 0.0}), ValueError, "must be a number > 0"),
    ("resume alone", dict(resume=True), ValueError, "needs checkpoint_dir"),
]


@pytest.mark.parametrize("case, kwargs, error, message", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_fit_rejects(case, kwargs, error, message):
    kwargs = {"data": (X, Y), "epochs": 1, "progress": False, **kwargs}
    with pytest.raises(error, match=re.escape(message)):
        pc.fit(_bnn(), kwargs.pop("data"), **kwargs)


def test_fit_checkpoint_dir_that_cannot_be_created(tmp_path):
    (tmp_path / "f").write_text("keep")
    with pytest.raises(ValueError, match=r"checkpoint_dir .*f.sub cannot be created .*folders"):
        pc.fit(_bnn(), (X, Y), epochs=1, checkpoint_dir=tmp_path / "f" / "sub", progress=False)
    assert (tmp_path / "f").read_text() == "keep"


PRIOR_CASES = [
    (priors.Gaussian, dict(scale=0.0), "scale must be a positive"),
    (priors.Gaussian, dict(scale=-1.0), "scale must be a positive"),
    (priors.GroupHorseshoe, dict(scale_global=0.0), "scale_global must be a positive"),
    (priors.GroupHorseshoe, dict(scale_global=float("inf")), "scale_global must be finite"),
    (priors.SpikeAndSlab, dict(prior_inclusion=0.0), "strictly between 0 and 1"),
    (priors.SpikeAndSlab, dict(prior_inclusion=1.0), "strictly between 0 and 1"),
    (priors.SpikeAndSlab, dict(prior_inclusion=float("nan")), "strictly between 0 and 1"),
    (priors.SpikeAndSlab, dict(slab_scale=-2.0), "slab_scale must be a positive"),
    # finite and positive, but unusable: 1e-20 ** -2 is inf in float32
    (priors.GroupHorseshoe, dict(scale_global=1e-20), r"between 1e-06 and 1e\+06.*use e.g. 1e-5"),
    (priors.GroupHorseshoe, dict(scale_global=1e7), r"scale_global must be between 1e-06"),
    (priors.Gaussian, dict(scale=1e-9), r"scale must be between 1e-06 and 1e\+06.*use e.g. 1.0"),
    (priors.SpikeAndSlab, dict(slab_scale=1e9), r"slab_scale must be between 1e-06"),
    (priors.SpikeAndSlab, dict(prior_inclusion=1e-12), r"prior_inclusion must be between 1e-06"),
    (priors.SpikeAndSlab, dict(prior_inclusion=1 - 1e-9), r"between 1e-06 and 1 - 1e-06"),
]


@pytest.mark.parametrize("cls, kwargs, message", PRIOR_CASES)
def test_invalid_prior_hyper_parameters(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: priors.GroupHorseshoe(scale_global=s),
        lambda s: priors.Gaussian(scale=s),
        lambda s: priors.SpikeAndSlab(slab_scale=s),
    ],
)
def test_prior_scales_at_the_ends_of_the_range_train(make):
    """The ends of SCALE_RANGE give finite losses in float32 (a horseshoe at
    scale_global=1e-20, refused now, made 1e-20**-2 infinite and the loss NaN)."""
    for scale in priors.SCALE_RANGE:
        history = pc.fit(pc.bayesianize(pc.mlp([4, 3, 2]), make(scale), seed=0), (X, Y),
                         epochs=1, batch_size=10, progress=False)  # fmt: skip
        assert math.isfinite(history.loss[0]), scale


# ------------------------------------------------------------------ regression targets
def _regression_bnn(outputs: int = 1):
    return pc.bayesianize(pc.mlp([4, 5, outputs]), "group-nj", likelihood="gaussian", seed=0)


YR = X[:, 0] * 2.0 - X[:, 1]


def _y_with(index, value):
    y = YR.clone()
    y[index] = value
    return y


REGRESSION_CASES = [
    ("NaN in y", _regression_bnn, _y_with(3, float("nan")), "data: y has 1 non-finite values"),
    ("inf in y", _regression_bnn, _y_with(0, float("inf")), "data: y has 1 non-finite values"),
    ("-inf in y", _regression_bnn, _y_with(5, -float("inf")), "in 1 rows; drop those rows"),
    ("bool y", _regression_bnn, YR > 0, "must be real numbers (floating point or integer)"),
    (
        "two columns, one output",
        _regression_bnn,
        YR[:, None].repeat(1, 2),
        "shape (20,) or (20, 1)",
    ),
    ("y (N,) for two outputs", lambda: _regression_bnn(2), YR, "y must have shape (20, 2)"),
    ("y (N, 3) for two outputs", lambda: _regression_bnn(2), torch.zeros(20, 3), "(20, 2), got"),
    ("length mismatch", _regression_bnn, YR[:7], "20 examples but y has 7"),
]


@pytest.mark.parametrize(
    "case, make, y, message", REGRESSION_CASES, ids=[c[0] for c in REGRESSION_CASES]
)
def test_fit_rejects_bad_regression_targets(case, make, y, message):
    bnn = make()
    before = {k: v.clone() for k, v in bnn.state_dict().items()}
    with pytest.raises(ValueError, match=re.escape(message)):
        pc.fit(bnn, (X, y), epochs=1, progress=False)
    after = bnn.state_dict()
    for k, v in before.items():  # nothing was trained (the unrecorded information is NaN)
        torch.testing.assert_close(after[k], v, rtol=0, atol=0, equal_nan=True)


def test_regression_error_messages_say_how_to_fix():
    with pytest.raises(ValueError, match="drop those rows .from X and y. or impute"):
        pc.fit(_regression_bnn(), (X, _y_with(2, float("nan"))), epochs=1, progress=False)
    with pytest.raises(ValueError, match="build the network with as many outputs as y has"):
        pc.fit(_regression_bnn(), (X, torch.zeros(20, 2)), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"validation: y has 1 non-finite"):
        bad = (X, _y_with(1, float("nan")))
        pc.fit(_regression_bnn(), (X, YR), validation=bad, epochs=1, progress=False)


def test_a_regression_target_column_counts_as_one_target_per_example():
    """y of shape (N, 1) for a network with one output is y of shape (N,), not an (N, N)
    broadcast against the output."""
    a, b = _regression_bnn(), _regression_bnn()
    ha = pc.fit(a, (X, YR), epochs=2, batch_size=8, progress=False)
    hb = pc.fit(b, (X, YR[:, None]), epochs=2, batch_size=8, progress=False)
    assert ha.loss == hb.loss
    assert pc.evaluate(a, (X, YR[:, None])) == pytest.approx(pc.evaluate(a, (X, YR)))
    _, y = pc.infer.prepare_data(a, (X, YR[:, None]), "data")
    assert y.shape == (20,)


def test_integer_regression_targets_are_accepted():
    bnn = _regression_bnn()
    history = pc.fit(bnn, (X, YR.round().long()), epochs=1, progress=False)
    assert math.isfinite(history.loss[0])


# ------------------------------------------------------------------ messages with the fix
FIX_CASES = [
    ("NaN in X", _with(_nan()), "data: X has 1 non-finite values (NaN or inf) in 1 rows; drop"),
    ("empty", (X[:0], Y[:0]), "data: no examples (X has shape (0, 4)); pass at least one row"),
    ("labels >= C", _with(y=Y + 2), "labels must be 0..1: remap them"),
    ("labels >= C", _with(y=Y + 2), "or build the network for 4 classes"),
    ("negative labels", _with(y=Y - 1), "labels must be 0..1: remap them (e.g. torch.unique"),
    ("2-D labels", _with(y=Y[:, None]), "pass one label per example (y.reshape(-1)"),
]


@pytest.mark.parametrize("case, data, message", FIX_CASES, ids=[c[0] for c in FIX_CASES])
def test_data_errors_say_how_to_fix(case, data, message):
    with pytest.raises(ValueError) as e:
        pc.fit(_bnn(), data, epochs=1, progress=False)
    assert message in str(e.value)


def test_unsupported_layers_and_priors():
    with pytest.raises(TypeError, match="unsupported layer at '1': GroupNorm"):
        pc.bayesianize(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.GroupNorm(1, 3)))
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
    (dict(rule="sparsity", sparsity=1.0), r"sparsity must be a number in \[0, 1\)"),
    (dict(rule="auto", validation=None), "needs validation data"),
    (dict(rule="auto", tolerance=1.5), r"tolerance must be a number in \[0, 1\)"),
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


def test_inputs_a_linear_layer_would_broadcast_over_are_refused():
    """A Linear layer takes (N, 3, 4) as N x 3 rows of 4: the network runs, but each example
    gets 3 rows of outputs, which no likelihood can score."""
    bnn = pc.bayesianize(nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)), "group-nj")
    with pytest.raises(ValueError, match=r"output of shape \(1, 3, 2\), not one row"):
        pc.fit(bnn, (torch.randn(20, 3, 4), Y), epochs=1, progress=False)


# ------------------------------------------------------------- issue 25, second round
def _tiny():
    import pyrocompress as pc

    g = torch.Generator().manual_seed(0)
    X = torch.randn(32, 4, generator=g)
    return pc.bayesianize(pc.mlp([4, 6, 2]), "group-nj", seed=0), (X, (X[:, 0] > 0).long())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"device": "tpu"}, ValueError, "device must be 'cpu', 'cuda'"),
        ({"device": "meta"}, ValueError, "device must be 'cpu' or 'cuda'"),
        ({"seed": "0"}, ValueError, "seed must be an integer"),
        ({"seed": 1.5}, ValueError, "seed must be an integer"),
        ({"lr": True}, ValueError, "lr must be a number > 0"),
    ],
)
def test_fit_names_the_bad_argument(kwargs, error, message):
    import pyrocompress as pc

    bnn, data = _tiny()
    with pytest.raises(error, match=message):
        pc.fit(bnn, data, epochs=1, progress=False, **kwargs)


def test_numpy_integers_are_integers():
    """Issue 25 listed np.int64 batch sizes as refused; they are accepted, as ints are."""
    import pyrocompress as pc

    bnn, data = _tiny()
    history = pc.fit(bnn, data, epochs=np.int64(1), batch_size=np.int64(16), progress=False)
    assert history.epoch == [1]


def test_a_refused_pickle_is_not_quoted_nor_told_to_drop_weights_only(tmp_path):
    """Issue 25: the refusal quoted torch's advice (weights_only=False, which would run the
    file's code) and the file's own text, escape codes included."""
    import os

    import pyrocompress as pc

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo \x1b[31mowned\x1b[0m",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "pyrocompress.compact/1", "x": Evil()}, path)
    with pytest.raises(ValueError) as err:
        pc.load_compact(path)
    text = str(err.value)
    assert "weights_only" not in text and "\x1b" not in text and "\n" not in text
    assert "objects other than tensors and plain containers" in text


def test_first_line_drops_terminal_escapes():
    from pyrocompress.constraints import first_line

    assert first_line(ValueError("\x1b[31mred\x1b[0m text\nsecond")) == "red text"
    assert first_line(ValueError("")) == "ValueError"
