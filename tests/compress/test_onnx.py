"""ONNX export of compact networks: agreement with torch, dynamic batch, atomic files, timing.

Tolerance: 1e-5 absolute. The compact networks here have outputs of order one, and ONNX
Runtime's float32 kernels differ from torch's only by the order of the sums (a few ulp,
about 1e-7 per output of order one); 1e-5 leaves a margin of 100 while any wrong weight,
index or missing BatchNorm gives differences of order 1e-2 or more.
"""

import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pyrocompress as pc
from pyrocompress.compress import SelectFeatures
from pyrocompress.compress.onnx import OPSET, export_onnx, onnx_latency

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

ATOL = 1e-5


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _ort_run(path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(out)


def _assert_agrees(module: nn.Module, path, inputs) -> None:
    """The file, run independently of export_onnx's own check, equals torch on each input."""
    with torch.no_grad():
        for x in inputs:
            ref = module.eval()(x)
            got = _ort_run(path, x)
            assert got.shape == ref.shape
            assert (got - ref).abs().max().item() <= ATOL


def _fit_prune(model: nn.Module, x, y, prior="group-nj", epochs=2, sparsity=0.5):
    bnn = pc.bayesianize(model, prior, seed=0)
    pc.fit(bnn, (x, y), epochs=epochs, batch_size=32, seed=0, progress=False)
    return pc.prune(bnn, "sparsity", sparsity=sparsity, example_input=x)


# ------------------------------------------------------------------ compact networks
@pytest.fixture(scope="module")
def mlp():
    """A compact MLP from the real pipeline, with inputs pruned (a SelectFeatures)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    result = _fit_prune(pc.mlp([6, 8, 3]), x, y)
    return result.module, x


@pytest.fixture(scope="module")
def convnet():
    """A compact conv net (Conv2d, ReLU, MaxPool2d, Flatten, Linear) from the pipeline."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 1, 10, 10, generator=g)
    y = (x[:, 0, :5].mean((1, 2)) > 0).long()
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(24, 2),
    )  # fmt: skip
    result = _fit_prune(model, x, y, sparsity=0.3)
    return result.module, x


class ResBN(nn.Module):
    """A stem conv + BatchNorm, one residual block with BatchNorms, global pooling, a head."""

    def __init__(self, c: int = 6, k: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, k)

    def forward(self, x):
        h = F.relu(self.bn(self.stem(x)))
        h = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(h))))) + h)
        return self.fc(torch.flatten(self.pool(h), 1))


@pytest.fixture(scope="module")
def resnet():
    """A graph-exported compact network: an instance of the user's class, fewer channels."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(48, 3, 8, 8, generator=g)
    y = torch.randint(0, 3, (48,), generator=g)
    result = _fit_prune(ResBN(), x, y, prior="group-horseshoe", sparsity=0.3)
    return result.module, x


def test_mlp_compact_with_selected_inputs_agrees_at_batch_1_and_96(mlp, tmp_path):
    module, x = mlp
    select = [m for m in module.modules() if isinstance(m, SelectFeatures)]
    assert select and len(select[0].indices) < 6  # some inputs were pruned
    path = tmp_path / "mlp.onnx"
    info = export_onnx(module, path, x[:16])
    assert info["path"] == str(path) and info["bytes"] == path.stat().st_size
    assert info["opset"] == OPSET and info["batch_sizes"] == [16, 1]
    assert 0.0 <= info["max_abs_diff"] <= ATOL
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "GatherElements" in ops  # the SelectFeatures
    held_out = 3.0 * torch.randn(96, 6, generator=torch.Generator().manual_seed(9))
    _assert_agrees(module, path, [x[:1], x, held_out[:1], held_out])


def test_an_example_of_one_exports_a_graph_that_runs_batches_of_1000(mlp, tmp_path):
    module, x = mlp
    path = tmp_path / "mlp.onnx"
    info = export_onnx(module, path, x[:1])
    assert info["batch_sizes"] == [1, 5]
    big = torch.randn(1000, 6, generator=torch.Generator().manual_seed(3))
    _assert_agrees(module, path, [big])


def test_a_fixed_batch_graph_refuses_other_batch_sizes(mlp, tmp_path):
    module, x = mlp
    path = tmp_path / "fixed.onnx"
    info = export_onnx(module, path, x[:4], dynamic_batch=False)
    assert info["batch_sizes"] == [4, 4]
    _assert_agrees(module, path, [x[4:8]])
    with pytest.raises(Exception, match="(?i)dimension|shape"):  # onnxruntime's own error
        _ort_run(path, x[:5])
    with pytest.raises(ValueError, match="fixed batch of 4"):
        onnx_latency(module, path, (1, 1000))


def test_conv_compact_with_maxpool_and_flatten_agrees(convnet, tmp_path):
    module, x = convnet
    kinds = {type(m) for m in module}
    assert {nn.Conv2d, nn.MaxPool2d, nn.Flatten, nn.Linear} <= kinds
    assert sum(p.numel() for p in module.parameters()) < 312  # the dense net's, pruned
    path = tmp_path / "conv.onnx"
    info = export_onnx(module, path, x[:8])
    assert info["max_abs_diff"] <= ATOL
    held_out = 2.0 * torch.randn(64, 1, 10, 10, generator=torch.Generator().manual_seed(4))
    _assert_agrees(module, path, [x[:1], x, held_out[:1], held_out])


def test_graph_exported_resnet_with_batchnorm_agrees_and_keeps_its_training_flags(resnet, tmp_path):
    module, x = resnet
    assert type(module) is ResBN
    assert module.conv1.out_channels < 6  # pruned through the graph export
    module.train()  # exported in eval mode all the same, and given back in train mode
    try:
        path = tmp_path / "res.onnx"
        info = export_onnx(module, path, x[:8])
        assert module.training and module.bn1.training
    finally:
        module.eval()
    assert info["max_abs_diff"] <= ATOL
    held_out = 1.5 * torch.randn(48, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    _assert_agrees(module, path, [x[:1], x, held_out[:1], held_out])


# ------------------------------------------------------------------ failures and files
class DataDependent(nn.Module):
    """A branch on the values: torch.export cannot capture it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


class ExportsDifferently(nn.Module):
    """Computes something else while being exported: the check must catch it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        out = self.fc(x)
        return out + 1.0 if torch.compiler.is_exporting() else out


def test_a_failed_export_leaves_no_file(tmp_path):
    path = tmp_path / "bad.onnx"
    with pytest.raises(RuntimeError, match="could not export the DataDependent"):
        export_onnx(DataDependent(), path, torch.ones(3, 4))
    assert list(tmp_path.iterdir()) == []  # no file, no temporary file


def test_a_graph_that_disagrees_with_torch_is_not_written(tmp_path):
    path = tmp_path / "bad.onnx"
    with pytest.raises(RuntimeError, match="disagrees with torch"):
        export_onnx(ExportsDifferently(), path, _randn(3, 4))
    assert list(tmp_path.iterdir()) == []
    # an earlier file at the path is kept whole
    path.write_bytes(b"earlier")
    with pytest.raises(RuntimeError, match="disagrees with torch"):
        export_onnx(ExportsDifferently(), path, _randn(3, 4))
    assert path.read_bytes() == b"earlier" and list(tmp_path.iterdir()) == [path]
    # without the check it is written (the check is what refused it)
    info = export_onnx(ExportsDifferently(), path, _randn(3, 4), check=False)
    assert info["max_abs_diff"] is None and path.stat().st_size == info["bytes"]


def test_a_missing_runtime_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'pyrocompress\[onnx\]'"):
        export_onnx(nn.Linear(4, 2), tmp_path / "m.onnx", _randn(2, 4))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"module": "net"}, TypeError, "module must be a torch.nn.Module"),
        ({"example": [[1.0] * 4]}, TypeError, "example must be a torch.Tensor"),
        ({"example": _randn(2, 4).double()}, ValueError, r"example.float\(\)"),
        ({"example": _randn(0, 4)}, ValueError, "non-empty batch"),
        ({"example": torch.tensor(1.0)}, ValueError, "non-empty batch"),
        ({"example": torch.full((2, 4), float("nan"))}, ValueError, "finite"),
        ({"path": 3}, TypeError, "path must be a str"),
        ({"path": "missing-folder/m.onnx"}, ValueError, "does not exist"),
        ({"path": "."}, ValueError, "not the folder"),
        ({"atol": -1e-5}, ValueError, "atol must be a number >= 0"),
        ({"atol": float("nan")}, ValueError, "atol must be"),
        ({"check": "yes"}, TypeError, "check must be True or False"),
        ({"dynamic_batch": 1}, TypeError, "dynamic_batch must be True or False"),
        ({"opset": 17}, ValueError, "opset must be an integer >= 18"),
    ],
)  # fmt: skip
def test_export_rejects_bad_arguments(kwargs, error, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = {"module": nn.Linear(4, 2), "path": "m.onnx", "example": _randn(2, 4)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        export_onnx(args.pop("module"), args.pop("path"), args.pop("example"), **args)
    assert list(tmp_path.iterdir()) == []


def test_a_module_returning_a_tuple_is_refused(tmp_path):
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(TypeError, match="must return one tensor"):
        export_onnx(Pair(), tmp_path / "m.onnx", _randn(2, 4))


# ------------------------------------------------------------------------ latency
def test_latency_times_onnx_compact_and_dense_and_restores_state(mlp, tmp_path):
    module, x = mlp
    path = tmp_path / "mlp.onnx"
    export_onnx(module, path, x[:8])
    dense = pc.mlp([6, 8, 3])  # in training mode: timed in eval mode, given back
    threads = torch.get_num_threads()
    rows = onnx_latency(module, path, (1, 50), repeats=3, warmup=1, dense=dense, threads=1)
    assert [r["batch_size"] for r in rows] == [1, 50]
    for r in rows:
        assert r["onnx_ms"] > 0 and r["torch_ms"] > 0 and r["dense_ms"] > 0
        assert r["threads"] == 1 and r["repeats"] == 3
    assert torch.get_num_threads() == threads and dense.training and not module.training
    (row,) = onnx_latency(module, path, [2], repeats=1, warmup=0)
    assert row["dense_ms"] is None


@pytest.fixture(scope="module")
def linear_onnx(tmp_path_factory):
    module = nn.Linear(4, 2)
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_onnx(module, path, _randn(2, 4, seed=6))
    return module, path


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"module": None}, TypeError, "module must be a torch.nn.Module"),
        ({"dense": "dense"}, TypeError, "dense must be a torch.nn.Module"),
        ({"onnx_path": "absent.onnx"}, ValueError, "is not a file"),
        ({"onnx_path": 1}, TypeError, "onnx_path must be a str"),
        ({"example_batch_sizes": ()}, ValueError, "at least one batch size"),
        ({"example_batch_sizes": 8}, TypeError, "sequence of integers"),
        ({"example_batch_sizes": (1, 0)}, ValueError, "example_batch_sizes"),
        ({"repeats": 0}, ValueError, "repeats must be an integer >= 1"),
        ({"warmup": -1}, ValueError, "warmup must be an integer >= 0"),
        ({"threads": 0}, ValueError, "threads must be an integer >= 1"),
    ],
)  # fmt: skip
def test_latency_rejects_bad_arguments(kwargs, error, match, linear_onnx, monkeypatch):
    module, path = linear_onnx
    monkeypatch.chdir(path.parent)
    args = {"module": module, "onnx_path": path.name, "example_batch_sizes": (1, 2)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        onnx_latency(args.pop("module"), args.pop("onnx_path"), args.pop("example_batch_sizes"),
                     **args)  # fmt: skip
