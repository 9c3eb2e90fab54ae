"""`--model` (ready-made CIFAR models, a user's factory) and `--dataset mnist32 / cifar10`."""

import importlib
import json
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrocompress import load_compact
from pyrocompress.cli import main
from pyrocompress.cli.app import UsageError, _resolve_model, build_model
from pyrocompress.data import CIFAR10_FILES, MNIST_FILES, write_cifar10_batch, write_idx
from pyrocompress.nn import VGGBN, ResNetCIFAR

CHAIN = """
from torch import nn


def make(num_classes, in_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 5, stride=4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 7 * 7, num_classes),
    )
"""

RESIDUAL = """
from torch import nn


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class SmallResNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        )
        self.block = Block(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.block(self.stem(x)))))
"""


def _file(folder: Path, text: str, name: str = "net.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _fake_mnist(folder: Path, n_train: int = 5050, n_test: int = 30) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir()
    sizes = {"train": n_train, "test": n_test}
    for role, name in MNIST_FILES.items():
        split, kind = role.split("_")
        n = sizes[split]
        array = (
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            if kind == "images"
            else rng.integers(0, 10, n, dtype=np.uint8)
        )
        write_idx(folder / name, array)
    return folder


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("pyrocompress: error: "), err
    return err


@pytest.fixture
def no_data(monkeypatch):
    """Fail loudly if a command gets as far as reading data."""
    from pyrocompress.cli import app as cli

    def reached(*args, **kwargs):
        raise AssertionError("the bad --model was not caught before the data were read")

    monkeypatch.setattr(cli.datasets, "load_dataset", reached)


@pytest.fixture
def no_training(monkeypatch):
    """Fail loudly if a command gets as far as training."""
    from pyrocompress.cli import app as cli

    def reached(*args, **kwargs):
        raise AssertionError("the bad --model was not caught before training")

    monkeypatch.setattr(cli, "fit", reached)


def _compress(model: str, *extra: str, dataset: str = "digits") -> list[str]:
    args = ["compress", "--model", model, "--prior", "group-nj", "--dataset", dataset]
    return [*args, *extra, "--epochs", "1", "--quiet"]


# --------------------------------------------------------------------------- build_model


def test_ready_made_cifar_models_take_their_channels_from_the_data() -> None:
    vgg = build_model("vgg-bn-cifar", (1, 32, 32), 10)
    assert isinstance(vgg, VGGBN) and vgg.features[0].in_channels == 1
    resnet = build_model("resnet20", (3, 32, 32), 4)
    assert isinstance(resnet, ResNetCIFAR) and resnet.conv1.in_channels == 3
    assert resnet.fc.out_features == 4


@pytest.mark.parametrize("spec, cls", [("vgg-bn-cifar", VGGBN), ("resnet20", ResNetCIFAR)])
def test_ready_made_cnns_name_the_factory_that_rebuilds_them(spec, cls) -> None:
    built = _resolve_model(spec)((1, 32, 32), 7)
    assert isinstance(built.module, cls)
    assert built.factory_kwargs == {"num_classes": 7, "in_channels": 1}
    module_name, function = built.factory.split(":")
    rebuilt = getattr(importlib.import_module(module_name), function)(**built.factory_kwargs)
    assert type(rebuilt) is cls
    shapes = {k: v.shape for k, v in built.module.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


def test_chains_need_no_factory_and_a_users_file_is_named_by_its_path(tmp_path) -> None:
    assert _resolve_model("mlp:64-8-10")((64,), 10).factory is None
    assert _resolve_model("lenet-300-100")((1, 28, 28), 10).factory is None
    path = _file(tmp_path, FACTORIES)
    built = _resolve_model(f"module:{path}:classes_only")((64,), 3)
    assert built.factory == f"{path.resolve()}:classes_only"
    assert built.factory_kwargs == {"num_classes": 3}


@pytest.mark.parametrize(
    "spec, shape, message",
    [
        ("vgg-bn-cifar", (64,), r"vgg-bn-cifar needs 32x32 images \(--dataset mnist32 or cifar10"),
        ("vgg-bn-cifar", (1, 28, 28), r"needs 32x32 images .*shape \(1, 28, 28\)"),
        ("resnet20", (64,), r"resnet20 needs images \[C, H, W\]"),
        ("resnet20:x", (3, 32, 32), "is not one of"),
        ("module", (3, 32, 32), "is not one of .*module:PATH.py:FACTORY"),
    ],
)
def test_model_that_does_not_fit_the_data(spec, shape, message) -> None:
    with pytest.raises(UsageError, match=message):
        build_model(spec, shape, 10)


FACTORIES = """
from torch import nn


def all_three(num_classes, in_channels, in_features):
    return nn.Conv2d(in_channels, num_classes, 1, bias=in_features == 3 * 32 * 32)


def classes_only(num_classes):
    return nn.Linear(2, num_classes)


def nothing():
    return nn.Linear(2, 3)


def loose(*args, **kwargs):
    return nn.Linear(len(args) + len(kwargs) + 1, 1)


def positional_only(num_classes, /):
    return nn.Linear(2, num_classes)


class Net(nn.Module):
    def __init__(self, num_classes=10, *, in_channels=3, width=5):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3)
        self.fc = nn.Linear(width, num_classes)
"""


def test_a_factory_gets_the_keywords_it_names(tmp_path: Path) -> None:
    path = _file(tmp_path, FACTORIES)
    net = build_model(f"module:{path}:all_three", (3, 32, 32), 7)
    assert (net.in_channels, net.out_channels, net.bias is not None) == (3, 7, True)
    assert build_model(f"module:{path}:classes_only", (1, 32, 32), 4).out_features == 4
    assert build_model(f"module:{path}:nothing", (1, 32, 32), 4).out_features == 3
    # neither **kwargs nor positional-only parameters are named keywords: nothing is passed
    assert build_model(f"module:{path}:loose", (1, 32, 32), 4).in_features == 1
    with pytest.raises(UsageError, match=r"positional_only\(\) raised TypeError"):
        build_model(f"module:{path}:positional_only", (1, 32, 32), 4)
    net = build_model(f"module:{path}:Net", (1, 32, 32), 6)  # a class is a factory too
    assert (net.conv.in_channels, net.fc.out_features) == (1, 6)


def test_in_channels_of_flat_data_is_the_number_of_inputs(tmp_path: Path) -> None:
    path = _file(tmp_path, FACTORIES)
    net = build_model(f"module:{path}:all_three", (64,), 10)
    assert net.in_channels == 64 and net.bias is None  # in_features = 64, not 3072


def test_each_file_is_imported_under_a_name_of_its_own(tmp_path: Path) -> None:
    a = _file(tmp_path / "a", "from torch import nn\nmake = lambda: nn.Linear(1, 1)\n")
    b = _file(tmp_path / "b", "from torch import nn\nmake = lambda: nn.Linear(2, 2)\n")
    net_a, net_b = (build_model(f"module:{p}:make", (1,), 2) for p in (a, b))
    assert (net_a.in_features, net_b.in_features) == (1, 2)
    a.write_text("from torch import nn\nmake = lambda: nn.Linear(3, 3)\n")
    assert build_model(f"module:{a}:make", (1,), 2).in_features == 3  # read again, not cached
    names = {type(m).__module__ for m in (net_a, net_b)}
    assert names == {"torch.nn.modules.linear"}
    user = [n for n in sys.modules if n.startswith("_pyrocompress_user_net_")]
    assert len(user) >= 3 and len(set(user)) == len(user)


def test_a_dataclass_in_the_users_file_works(tmp_path: Path) -> None:
    # dataclasses look their module up in sys.modules: the file is registered there
    text = """
    from dataclasses import dataclass
    from torch import nn


    @dataclass
    class Config:
        width: int = 3


    def make(num_classes):
        return nn.Linear(Config().width, num_classes)
    """
    assert build_model(f"module:{_file(tmp_path, text)}:make", (3,), 2).in_features == 3


# --------------------------------------------------------------------------- CLI errors


@pytest.mark.parametrize(
    "text, spec, message",
    [
        (None, "module:{dir}/absent.py:make", "absent.py not found; give the path of the Python"),
        ("x = 1", "module:{dir}/net.txt:make", "net.txt is not a .py file"),
        (None, "module:{dir}/net.py", "give module:PATH.py:FACTORY"),
        (None, "module:{dir}/net.py:", "give module:PATH.py:FACTORY"),
        (None, "module:{dir}/net.py:not-a-name", "give module:PATH.py:FACTORY"),
        (
            "import torch\n\nraise RuntimeError('boom')\n",
            "module:{dir}/net.py:make",
            "importing {dir}/net.py raised RuntimeError: boom (at {dir}/net.py:3)",
        ),
        (
            "def make(:\n",
            "module:{dir}/net.py:make",
            r"raised SyntaxError: .* \(at {dir}/net.py:1\)",
        ),
        (
            "def build_it():\n    pass\n\n_hidden = 1\n",
            "module:{dir}/net.py:make",
            "net.py defines no make; its functions and classes are: build_it",
        ),
        ("make = 3\n", "module:{dir}/net.py:make", "make in {dir}/net.py is a int, not callable"),
    ],
)
def test_a_bad_factory_is_one_line_before_the_data(
    tmp_path, capsys, no_data, text, spec, message
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    if text is not None:
        name = "net.txt" if "net.txt" in spec else "net.py"
        _file(folder, text, name)
    before = {n for n in sys.modules if n.startswith("_pyrocompress_user_")}
    assert main(_compress(spec.format(dir=folder))) == 2
    err = _one_line_error(capsys)
    expected = message.format(dir=folder.resolve() if "raised" in message else folder)
    if "raised SyntaxError" in message:
        assert re.search(expected, err), err
    else:
        assert expected in err, err
    assert {n for n in sys.modules if n.startswith("_pyrocompress_user_")} == before


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "def make(num_classes):\n    raise ValueError('no such width')\n",
            "make(num_classes=10) raised ValueError: no such width (at {path}:2)",
        ),
        ("def make():\n    return 3\n", "make() returned a int, not a torch.nn.Module"),
    ],
)
def test_a_factory_that_fails_is_one_line_before_training(
    tmp_path, capsys, no_training, text, message
) -> None:
    path = _file(tmp_path, text)
    assert main(_compress(f"module:{path}:make")) == 2
    err = _one_line_error(capsys)
    assert message.format(path=path.resolve()) in err, err


@pytest.mark.parametrize(
    "model, message",
    [
        ("vgg-bn-cifar", "vgg-bn-cifar needs 32x32 images (--dataset mnist32 or cifar10)"),
        ("resnet20", "resnet20 needs images [C, H, W]"),
    ],
)
def test_cifar_models_on_flat_data_are_one_line(capsys, no_training, model, message) -> None:
    assert main(_compress(model)) == 2
    assert message in _one_line_error(capsys)


def test_cifar10_without_its_folder_is_one_line(tmp_path, capsys, no_training) -> None:
    absent = tmp_path / "absent"
    assert main(_compress("resnet20", "--data-dir", str(absent), dataset="cifar10")) == 2
    err = _one_line_error(capsys)
    assert f"CIFAR-10 directory {absent} not found; pass --data-dir pointing" in err
    assert main(_compress("resnet20", dataset="cifar10")) == 2
    assert "pass --data-dir pointing at the folder" in _one_line_error(capsys)


def test_a_truncated_cifar10_batch_is_one_line(tmp_path, capsys, no_training) -> None:
    rng = np.random.default_rng(0)
    for name in CIFAR10_FILES:
        images = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
        write_cifar10_batch(tmp_path / name, images, np.array([1, 2]))
    bad = tmp_path / "data_batch_3.bin"
    bad.write_bytes(bad.read_bytes()[:-1])
    assert main(_compress("resnet20", "--data-dir", str(tmp_path), dataset="cifar10")) == 2
    assert f"CIFAR-10 file {bad} has 6145 bytes" in _one_line_error(capsys)


def test_help_states_the_factory_convention(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps lines at hyphens
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "module:PATH.py:FACTORY" in text and "vgg-bn-cifar" in text and "resnet20" in text
    assert "num_classes, in_channels" in text and "{digits,mnist,mnist32,cifar10}" in text


# --------------------------------------------------------------------------- end to end


def test_compress_a_users_chain_model_on_mnist32(tmp_path, capsys) -> None:
    data = _fake_mnist(tmp_path / "mnist")
    path = _file(tmp_path / "models", CHAIN)
    args = _compress(f"module:{path}:make", dataset="mnist32")
    assert main([*args, "--data-dir", str(data), "--batch-size", "512"]) == 0
    printed = capsys.readouterr().out  # the report, one "name  value" line per entry
    assert re.search(rf"^model +module:{re.escape(str(path))}:make$", printed, re.M)
    assert re.search(r"^dataset +mnist32$", printed, re.M)
    assert re.search(r"^architecture +1-4-196-10  ->", printed, re.M)  # 1 channel: the data's


@pytest.mark.slow  # about 10 s, most of it the plots
def test_compress_a_users_chain_model_writes_a_loadable_compact_model(tmp_path) -> None:
    data = _fake_mnist(tmp_path / "mnist")
    path = _file(tmp_path / "models", CHAIN)
    out = tmp_path / "out"
    args = _compress(f"module:{path}:make", dataset="mnist32")
    assert main([*args, "--data-dir", str(data), "--batch-size", "512", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == f"module:{path}:make" and report["dataset"] == "mnist32"
    assert report["architecture_before"][:2] == [1, 4]  # one input channel, from the data
    compact = load_compact(out / "model.pt")
    assert sum(p.numel() for p in compact.parameters()) == report["params_after"]
    with torch.no_grad():
        assert compact(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


def test_compress_a_users_small_resnet_on_mnist32(tmp_path) -> None:
    data = _fake_mnist(tmp_path / "mnist")
    path = _file(tmp_path / "models", RESIDUAL)
    out = tmp_path / "out"
    args = _compress(f"module:{path}:SmallResNet", dataset="mnist32")
    assert main([*args, "--data-dir", str(data), "--batch-size", "512", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["params_after"] <= report["params_before"]
    with pytest.raises(ValueError, match="does not call unasked"):
        load_compact(out / "model.pt")  # a user's file is run only when the caller says so
    compact = load_compact(out / "model.pt", factory=f"{path}:SmallResNet")
    assert sum(p.numel() for p in compact.parameters()) == report["params_after"]
    assert type(compact).__name__ == "SmallResNet"
    with torch.no_grad():
        assert compact.eval()(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


def test_a_users_small_resnet_exports_a_packed_file_rebuilt_by_its_factory(tmp_path) -> None:
    from pyrocompress import load_packed
    from pyrocompress.compress import packed_spec, quantize_weights

    data = _fake_mnist(tmp_path / "mnist")
    path = _file(tmp_path / "models", RESIDUAL)
    out = tmp_path / "out"
    args = _compress(f"module:{path}:SmallResNet", dataset="mnist32")
    args += ["--data-dir", str(data), "--batch-size", "512", "--out", str(out)]
    assert main([*args, "--export", "packed"]) == 0
    with pytest.raises(ValueError, match="does not call unasked"):
        load_packed(out / "model.packed")  # a user's file runs only when the caller says so
    factory = f"{path}:SmallResNet"
    packed = load_packed(out / "model.packed", factory=factory)
    report = json.loads((out / "report.json").read_text())
    bits = {f"{n}.weight": t for n, t in zip(report["layers"], report["mantissa_bits"])}
    # model.pt holds the compact network; model.packed it on its fixed-point grids
    compact = quantize_weights(load_compact(out / "model.pt", factory=factory), bits)
    assert type(packed).__name__ == "SmallResNet"
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(packed(x), compact(x))  # the quantised network, bit for bit
    spec = packed_spec(out / "model.packed")
    assert spec["factory"] == factory and "stem.0" in spec["modules"]
    convs = [k for k in compact.state_dict() if k.endswith("conv1.weight")]
    codes = dict(zip(compact.state_dict(), spec["codes"]))
    assert convs and all(codes[k][0] == "fixed" for k in convs)  # quantised, with a norm after


GROUPNORM = """
import torch.nn as nn


def make(in_features):
    return nn.Sequential(nn.Linear(in_features, 8), nn.GroupNorm(2, 8), nn.Linear(8, 10))
"""


def test_a_users_model_with_an_unsupported_module_is_one_line_and_exit_2(tmp_path, capsys):
    path = _file(tmp_path / "models", GROUPNORM)
    out = tmp_path / "out"
    assert main([*_compress(f"module:{path}:make"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GroupNorm" in err[0] and "Traceback" not in err[0]
    assert not out.exists()
