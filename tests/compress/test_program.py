"""``model.pt2``: the compact network as a ``torch.export`` program, loadable with torch alone.

Also ``SelectFeatures`` under ``torch.jit.script``. The loads "with torch alone" run in a
subprocess in which importing ``pyrocompress`` raises (a meta-path finder placed first),
and which checks that no ``pyrocompress`` module was imported after running the networks.

Tolerance: 1e-5 absolute. The program runs the same ATen kernels as the module on the same
machine (the check measures 0.0 here); 1e-5 leaves room for a kernel that picks another
order of summation for another batch size (a few ulp of outputs of order one, ~1e-7),
while a wrong index, weight or a BatchNorm in training mode gives differences of 1e-2 or
more.
"""

import io
import json
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pyrocompress as pc
from pyrocompress.compress import (
    SelectFeatures,
    deployable_files,
    export_program,
    load_program,
    program_bytes,
)
from pyrocompress.compress.deploy import check_formats

ATOL = 1e-5

#: Run in a subprocess: hide pyrocompress, load each file with torch alone, run it on the
#: saved inputs and save the outputs. argv: the folder, then ``kind:name`` per file.
HIDDEN_LOADER = r"""
import sys


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name == "pyrocompress" or name.startswith("pyrocompress."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
        return None


sys.meta_path.insert(0, Refuse())
import torch

try:
    import pyrocompress  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("pyrocompress is importable")
folder = sys.argv[1]
inputs = torch.load(f"{folder}/inputs.pt")
outputs = {}
for item in sys.argv[2:]:
    kind, name = item.split(":")
    if kind == "pt2":
        net = torch.export.load(f"{folder}/{name}.pt2").module()
    else:
        net = torch.jit.load(f"{folder}/{name}.ts")
    with torch.no_grad():
        outputs[item] = [net(x) for x in inputs[name]]
assert not [m for m in sys.modules if m.split(".")[0] == "pyrocompress"], "imported"
torch.save(outputs, f"{folder}/outputs.pt")
print("ok")
"""


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _prune(model: nn.Module, x: torch.Tensor, prior: str, sparsity: float) -> nn.Module:
    """The compact network of an untrained Bayesian network (its weights are its init's)."""
    bnn = pc.bayesianize(model, prior, seed=0)
    return pc.prune(bnn, "sparsity", sparsity=sparsity, example_input=x).module


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
def nets() -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """Three compact networks and example batches: a chain, a conv chain and a graph model.

    * ``mlp``: Flatten, SelectFeatures (pruned inputs), Linear, ReLU, Linear;
    * ``lenet``: LeNet-5-Caffe's convs and pools, then a SelectFeatures after the Flatten;
    * ``resnet``: the user's class (a residual block, BatchNorms with running statistics
      away from 0 and 1, so that eval-mode BatchNorm is not the identity).
    """
    g = torch.Generator().manual_seed(2)
    res = ResBN()
    for bn in (res.bn, res.bn1, res.bn2):
        bn.running_mean.copy_(0.3 * torch.randn(6, generator=g))
        bn.running_var.copy_(0.5 + torch.rand(6, generator=g))
    x_mlp, x_lenet, x_res = _randn(32, 6), _randn(4, 1, 28, 28, seed=1), _randn(16, 3, 8, 8)
    return {
        "mlp": (_prune(pc.mlp([6, 8, 3]), x_mlp, "group-nj", 0.5), x_mlp),
        "lenet": (_prune(pc.lenet5_caffe(), x_lenet, "group-nj", 0.5), x_lenet),
        "resnet": (_prune(res, x_res, "group-horseshoe", 0.3), x_res),
    }


def _held_out(x: torch.Tensor, n: int, seed: int = 9) -> torch.Tensor:
    return 2.0 * _randn(n, *x.shape[1:], seed=seed)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


def _script(module: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript, on every call
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)
        return torch.jit.script(module)


def _save_script(module: torch.jit.ScriptModule, path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.save` is deprecated", FutureWarning)
        torch.jit.save(module, str(path))


# ------------------------------------------------------------------ the three networks
def test_the_networks_are_what_the_tests_claim(nets):
    mlp, lenet, resnet = (nets[k][0] for k in ("mlp", "lenet", "resnet"))
    assert isinstance(mlp[1], SelectFeatures) and len(mlp[1].indices) < 6
    assert isinstance(lenet, nn.Sequential) and nn.Conv2d in {type(m) for m in lenet}
    assert any(isinstance(m, SelectFeatures) for m in lenet)
    assert type(resnet) is ResBN and resnet.conv1.out_channels < 6  # pruned, the user's class


@pytest.mark.parametrize("name", ["mlp", "lenet", "resnet"])
def test_the_program_agrees_with_the_module_at_several_batch_sizes(nets, name, tmp_path):
    module, x = nets[name]
    path = tmp_path / "model.pt2"
    info = export_program(module, path, x)
    assert info["path"] == str(path) and info["bytes"] == path.stat().st_size
    assert info["batch_sizes"] == [len(x), 1] and 0.0 <= info["max_abs_diff"] <= ATOL
    assert info["torch_version"] == torch.__version__
    loaded = load_program(path)
    held_out = _held_out(x, 37)
    with torch.no_grad():
        for inputs in (x[:1], x, held_out[:2], held_out):
            assert _max_diff(loaded(inputs), module.eval()(inputs)) <= ATOL


def test_select_features_is_a_gather_in_the_program(nets):
    module, x = nets["mlp"]
    data, _ = program_bytes(module, x[:8])
    graph = torch.export.load(io.BytesIO(data)).graph
    targets = {str(n.target) for n in graph.nodes if n.op == "call_function"}
    assert "aten.gather.default" in targets


def test_the_file_is_the_same_bytes_each_time(nets):
    module, x = nets["mlp"]
    assert program_bytes(module, x[:8])[0] == program_bytes(module, x[:8])[0]


def test_an_example_of_one_gives_a_program_for_batches_of_any_size(nets, tmp_path):
    module, x = nets["lenet"]
    info = export_program(module, tmp_path / "one.pt2", x[:1])
    assert info["batch_sizes"] == [1, 5]
    loaded = load_program(tmp_path / "one.pt2")
    big = _held_out(x, 64)
    with torch.no_grad():
        assert _max_diff(loaded(big), module(big)) <= ATOL


def test_a_fixed_batch_program_refuses_other_batch_sizes(nets):
    module, x = nets["mlp"]
    data, info = program_bytes(module, x[:4], dynamic_batch=False)
    assert info["batch_sizes"] == [4, 4]
    loaded = torch.export.load(io.BytesIO(data)).module()
    assert _max_diff(loaded(x[4:8]), module(x[4:8])) <= ATOL
    with pytest.raises(Exception, match="(?i)shape|size|guard"):  # torch's own error
        loaded(x[:5])


def test_the_module_keeps_its_training_flags_and_the_global_rng_is_untouched(nets):
    module, x = nets["resnet"]
    module.train()
    state = torch.get_rng_state()
    try:
        _, info = program_bytes(module, x)  # checked against eval mode (running stats)
        assert module.training and all(m.training for m in module.modules())
    finally:
        module.eval()
    assert torch.equal(torch.get_rng_state(), state)
    assert info["max_abs_diff"] <= ATOL


# --------------------------------------------------------------- loads with torch alone
def test_programs_and_scripts_load_and_agree_without_pyrocompress(nets, tmp_path):
    """One subprocess loads the three programs and the two scripted chains, pyrocompress hidden."""
    inputs, expected, items = {}, {}, []
    for name, (module, x) in nets.items():
        export_program(module, tmp_path / f"{name}.pt2", x)
        inputs[name] = [x[:1], _held_out(x, 5)]
        with torch.no_grad():
            expected[name] = [module.eval()(v) for v in inputs[name]]
        items.append(f"pt2:{name}")
        if isinstance(module, nn.Sequential):
            _save_script(_script(module), tmp_path / f"{name}.ts")
            items.append(f"ts:{name}")
    torch.save(inputs, tmp_path / "inputs.pt")
    run = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", HIDDEN_LOADER, str(tmp_path), *items],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "ok"
    outputs = torch.load(tmp_path / "outputs.pt")
    assert sorted(outputs) == sorted(items) and len(items) == 5
    for item, got in outputs.items():
        for g, e in zip(got, expected[item.split(":")[1]], strict=True):
            assert _max_diff(g, e) <= ATOL


def test_the_loader_notices_an_import_of_pyrocompress(tmp_path):
    """The subprocess above cannot import pyrocompress (checked before torch is imported)."""
    hide = "sys.meta_path.insert(0, Refuse())\n"
    assert hide in HIDDEN_LOADER
    code = HIDDEN_LOADER.replace(hide, hide + "import pyrocompress\n", 1)
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode != 0 and "hidden" in run.stderr


# ------------------------------------------------------------------------ TorchScript
@pytest.mark.parametrize("name", ["mlp", "lenet"])
def test_chain_compact_networks_script(nets, name):
    module, x = nets[name]
    scripted = _script(module)
    held_out = _held_out(x, 7)
    with torch.no_grad():
        for inputs in (x[:1], held_out):
            assert torch.equal(scripted(inputs), module.eval()(inputs))


def test_select_features_scripts_alone_on_any_leading_shape():
    select = SelectFeatures([3, 0, 2], 5)
    scripted = _script(select)
    x = _randn(2, 4, 5)
    assert torch.equal(scripted(x), x[..., [3, 0, 2]])
    assert scripted.indices.dtype == torch.long and scripted.in_features == 5
    assert list(select.state_dict()) == ["indices"]  # the packed format's state name


# ------------------------------------------------------------------ failures, atomicity
class Drifting(nn.Module):
    """Multiplies by how often it was called: its program keeps the count it was traced at."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.calls


class DataDependent(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


def test_a_disagreeing_program_writes_nothing_and_keeps_an_old_file(tmp_path):
    path = tmp_path / "model.pt2"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disagrees.*nothing was written"):
        export_program(Drifting(), path, _randn(4, 3))
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_a_network_torch_export_cannot_capture_is_a_runtime_error(tmp_path):
    with pytest.raises(RuntimeError, match="torch.export.export could not capture"):
        export_program(DataDependent(), tmp_path / "model.pt2", _randn(4, 3))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"module": "net"}, TypeError, "module must be a torch.nn.Module"),
        ({"example": [[0.0]]}, TypeError, "example must be a torch.Tensor"),
        ({"example": torch.zeros(2, 3, dtype=torch.float64)}, ValueError, "float32"),
        ({"example": torch.zeros(0, 3)}, ValueError, "non-empty batch"),
        ({"atol": -1.0}, ValueError, "atol"),
        ({"check": 1}, TypeError, "check must be True or False"),
        ({"path": 3}, TypeError, "path must be a str or os.PathLike"),
        ({"path": "."}, ValueError, "not the folder"),
        ({"path": "missing/model.pt2"}, ValueError, "does not exist"),
    ],
)
def test_bad_arguments_name_the_argument(tmp_path, monkeypatch, kwargs, error, message):
    monkeypatch.chdir(tmp_path)
    args = {"module": nn.Linear(3, 2), "path": "model.pt2", "example": torch.zeros(2, 3)}
    args.update(kwargs)
    module, path, example = args.pop("module"), args.pop("path"), args.pop("example")
    with pytest.raises(error, match=message):
        export_program(module, path, example, **args)
    assert not (tmp_path / "model.pt2").exists()


def test_load_program_refuses_a_missing_file(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        load_program(tmp_path / "model.pt2")


# ------------------------------------------------------------------- deployable files
def test_pt2_is_a_deployable_format_with_its_size_in_the_report(nets):
    module, x = nets["mlp"]
    bnn = pc.bayesianize(pc.mlp([6, 8, 3]), "group-nj", seed=0)
    result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=x)
    assert check_formats("pt2,onnx") == ["onnx", "pt2"]
    files = deployable_files(result, "pt2", example=x[:8])
    assert list(files) == ["model.pt2"]
    report = result.report
    assert report["file_bytes_pt2"] == len(files["model.pt2"])
    assert 0.0 <= report["pt2_max_abs_diff"] <= ATOL
    assert "file_bytes_onnx" not in report
    loaded = torch.export.load(io.BytesIO(files["model.pt2"])).module()
    assert _max_diff(loaded(x), result.module(x)) <= ATOL
    json.dumps({k: report[k] for k in ("file_bytes_pt2", "pt2_max_abs_diff")})


def test_the_file_does_not_carry_the_tensor_the_example_was_sliced_from():
    from pyrocompress.compress.program import program_bytes

    module = torch.nn.Sequential(torch.nn.Linear(20, 3))
    big = torch.randn(20_000, 20)  # 1.6 MB of storage behind a 64-row view
    data, info = program_bytes(module, big[:64])
    small, _ = program_bytes(module, big[:64].clone())
    assert len(data) == len(small) < 200_000 and info["max_abs_diff"] <= 1e-5
