"""Tests for MNIST zero-padded to 32x32 (load_mnist32 and load_dataset("mnist32"))."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pyrocompress.data import MNIST_FILES, load_dataset, load_mnist, load_mnist32, write_idx


def _write_mnist(directory: Path, n_train: int = 20, n_test: int = 6) -> None:
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(1, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(1, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for role, name in MNIST_FILES.items():
        write_idx(directory / name, arrays[role])


@pytest.mark.parametrize("pixel_range", [(0.0, 1.0), (-1.0, 1.0)])
def test_mnist32_is_mnist_padded_by_two_background_pixels(tmp_path: Path, pixel_range) -> None:
    _write_mnist(tmp_path)
    padded = load_mnist32(tmp_path, val_size=5, seed=2, pixel_range=pixel_range)
    plain = load_mnist(tmp_path, val_size=5, seed=2, pixel_range=pixel_range)
    assert (padded.name, padded.num_classes) == ("mnist32", 10)
    low = pixel_range[0]
    for split in ("train", "val", "test"):
        p, m = getattr(padded, split), getattr(plain, split)
        assert tuple(p.X.shape[1:]) == (1, 32, 32) and p.image_shape == (32, 32)
        assert p.X.dtype == torch.float32 and torch.equal(p.y, m.y)
        assert torch.equal(p.X[:, :, 2:30, 2:30], m.X)  # the image, unchanged, centred
        border = torch.ones(32, 32, dtype=torch.bool)
        border[2:30, 2:30] = False
        assert (p.X[:, 0][:, border] == low).all()  # intensity 0, scaled as the pixels are
        # the generated images have no zero pixel: the border is the only background
        assert (m.X > low).all()


def test_mnist32_flatten(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    flat = load_mnist32(tmp_path, val_size=0, flatten=True)
    images = load_mnist32(tmp_path, val_size=0)
    assert tuple(flat.train.X.shape) == (20, 1024)
    assert torch.equal(flat.train.X, images.train.X.reshape(20, -1))


def test_load_dataset_mnist32(tmp_path: Path) -> None:
    _write_mnist(tmp_path, n_train=5004)  # load_dataset holds out 5000
    splits = load_dataset("mnist32", data_dir=tmp_path)
    assert splits.name == "mnist32"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4, 5000, 6)
    assert tuple(splits.test.X.shape) == (6, 1, 32, 32)


def test_mnist32_errors_are_mnists(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"the mnist32 data set .*pass data_dir.*IDX files"):
        load_dataset("mnist32")
    with pytest.raises(FileNotFoundError, match=r"MNIST directory .*not found"):
        load_mnist32(tmp_path / "absent")
    with pytest.raises(ValueError, match=r"pixel_range must be finite with low < high"):
        load_mnist32(tmp_path, pixel_range=(1, 0))
