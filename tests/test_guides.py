"""The code of the user guides (docs/guide/*.md) runs as written.

Each guide listed here is a sequence of ``python`` blocks that continue one another, as a
reader runs them in a notebook after the getting-started page's fit; the test provides
that fit (a small one) and runs the blocks in order in a temporary folder.
"""

import re
from pathlib import Path

import pytest
import torch

import pyrocompress as pc
from pyrocompress.data import load_digits

GUIDES = Path(__file__).resolve().parents[1] / "docs" / "guide"


def _blocks(page: str) -> list[str]:
    text = (GUIDES / page).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.fixture(scope="module")
def fitted():
    """The getting-started fit, short: a pruned digits MLP and its data."""
    s = load_digits()
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    bnn = pc.bayesianize(net, prior="group-horseshoe", seed=0)
    pc.fit(bnn, (s.train.X, s.train.y), epochs=20, tol=None, progress=False)
    result = pc.prune(bnn, rule="auto", validation=(s.val.X, s.val.y))
    return {
        "pc": pc, "bnn": bnn, "result": result, "s": s,
        "X_val": s.val.X, "y_val": s.val.y, "X_test": s.test.X, "y_test": s.test.y,
    }  # fmt: skip


def test_the_file_formats_guide_runs_as_written(fitted, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torchvision")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mymodels.py").write_text(
        "import torchvision\n\n\ndef make_model(num_classes):\n"
        "    return torchvision.models.resnet18(num_classes=num_classes)\n"
    )
    namespace = dict(fitted)
    blocks = _blocks("files.md")
    assert len(blocks) == 5
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/guide/files.md, block {i + 1}", "exec"), namespace)
    assert {"m.pt", "r.pt", "own.pt", "model.packed", "model.shared", "model.onnx"} <= {
        p.name for p in tmp_path.iterdir()
    }
    assert namespace["y"].shape == (10, 10)  # the torch.export program, batch of 10
