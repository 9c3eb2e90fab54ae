"""Tests for the binary CIFAR-10 reader, load_cifar10 and the data-set registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pyrocompress.data import (
    CIFAR10_FILES,
    DATASET_NAMES,
    Dataset,
    DatasetEntry,
    Splits,
    load_cifar10,
    load_dataset,
    loaders,
    read_cifar10_batch,
    register_dataset,
    registered_datasets,
    write_cifar10_batch,
)

RECORD = 3073


def _batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    images[0, 0, 0, 0], images[0, 2, 31, 31] = 0, 255  # both extremes, for the scaling
    return images, rng.integers(0, 10, size=n).astype(np.uint8)


def _write_cifar(directory: Path, n_per_batch: int = 4, n_test: int = 3, seed: int = 0):
    """Write the six batch files; return the training and test arrays as written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    train = [_batch(rng, n_per_batch) for _ in range(5)]
    for (images, labels), name in zip(train, CIFAR10_FILES[:5], strict=True):
        write_cifar10_batch(directory / name, images, labels)
    test = _batch(rng, n_test)
    write_cifar10_batch(directory / CIFAR10_FILES[5], *test)
    train_images = np.concatenate([i for i, _ in train])
    train_labels = np.concatenate([lab for _, lab in train])
    return (train_images, train_labels), test


# --------------------------------------------------------------------------- the reader


def test_reader_follows_the_documented_record_layout(tmp_path: Path) -> None:
    # Written by hand, not by write_cifar10_batch: label byte, then red, green, blue planes
    # of 1024 bytes each, row by row.
    payload = bytearray()
    for label in (7, 2):
        pixels = (np.arange(3072) % 251).astype(np.uint8)
        payload += bytes([label]) + pixels.tobytes()
    path = tmp_path / "test_batch.bin"
    path.write_bytes(bytes(payload))
    images, labels = read_cifar10_batch(path)
    assert images.shape == (2, 3, 32, 32) and images.dtype == np.uint8
    assert labels.tolist() == [7, 2]
    flat = (np.arange(3072) % 251).astype(np.uint8)
    assert images[1, 0, 0, 1] == flat[1]  # red, row 0, column 1
    assert images[1, 0, 1, 0] == flat[32]  # red, row 1
    assert images[1, 1, 0, 0] == flat[1024]  # green plane
    assert images[1, 2, 31, 31] == flat[3071]  # last blue pixel
    assert np.array_equal(images[0].reshape(-1), flat)


def test_write_read_round_trip(tmp_path: Path) -> None:
    images, labels = _batch(np.random.default_rng(1), 5)
    path = tmp_path / "data_batch_1.bin"
    write_cifar10_batch(path, images, labels)
    assert path.stat().st_size == 5 * RECORD
    got_images, got_labels = read_cifar10_batch(path)
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)


@pytest.mark.parametrize("cut", [1, RECORD - 1, RECORD + 1])
def test_a_truncated_file_is_named_with_its_size(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "data_batch_2.bin"
    write_cifar10_batch(path, *_batch(np.random.default_rng(0), 2))
    path.write_bytes(path.read_bytes()[:-cut])
    size = 2 * RECORD - cut
    with pytest.raises(ValueError, match=rf"data_batch_2.bin has {size} bytes, not a positive "):
        read_cifar10_batch(path)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "test_batch.bin"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"test_batch.bin has 0 bytes.*binary version"):
        read_cifar10_batch(path)


def test_a_bad_label_names_the_file_record_and_value(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_3.bin"
    write_cifar10_batch(path, *_batch(np.random.default_rng(0), 3))
    data = bytearray(path.read_bytes())
    data[RECORD] = 10  # the label byte of record 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"data_batch_3.bin has 1 label.*record 1, value 10"):
        read_cifar10_batch(path)


def test_a_missing_file_is_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope.bin not found.*binary version"):
        read_cifar10_batch(tmp_path / "nope.bin")
    with pytest.raises(FileNotFoundError, match=r"is not a regular file"):
        read_cifar10_batch(tmp_path)


@pytest.mark.parametrize(
    "images, labels, error, message",
    [
        (np.zeros((2, 3, 32, 32), np.float32), [0, 1], TypeError, "uint8"),
        (np.zeros((2, 1, 32, 32), np.uint8), [0, 1], ValueError, r"\[N, 3, 32, 32\]"),
        (np.zeros((0, 3, 32, 32), np.uint8), [], ValueError, "N >= 1"),
        (np.zeros((2, 3, 32, 32), np.uint8), [0], ValueError, "one per image"),
        (np.zeros((2, 3, 32, 32), np.uint8), [0, 10], ValueError, r"0\.\.9"),
        (np.zeros((2, 3, 32, 32), np.uint8), [0.0, 1.0], TypeError, "integers"),
    ],
)
def test_writer_refuses_bad_arrays(tmp_path: Path, images, labels, error, message) -> None:
    with pytest.raises(error, match=message):
        write_cifar10_batch(tmp_path / "x.bin", images, np.asarray(labels))
    assert not (tmp_path / "x.bin").exists()


# --------------------------------------------------------------------------- load_cifar10


def test_load_cifar10_shapes_scaling_and_split(tmp_path: Path) -> None:
    (train_images, train_labels), (test_images, test_labels) = _write_cifar(tmp_path)
    splits = load_cifar10(tmp_path, val_size=6, seed=0)
    assert isinstance(splits, Splits)
    assert (splits.name, splits.num_classes) == ("cifar10", 10)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (14, 6, 3)
    for d in (splits.train, splits.val, splits.test):
        assert d.X.dtype == torch.float32 and d.y.dtype == torch.int64
        assert tuple(d.X.shape[1:]) == (3, 32, 32) and d.image_shape == (32, 32)
    # pixels / 255, exactly as MNIST's
    expected_test = torch.from_numpy(test_images.astype(np.float32) / np.float32(255.0))
    assert torch.equal(splits.test.X, expected_test)
    assert splits.test.y.tolist() == test_labels.tolist()
    assert splits.test.X.min() == 0.0 and splits.test.X.max() == 1.0
    # train and validation partition the five training batches, in file order
    x_all = torch.cat([splits.train.X, splits.val.X]) * 255
    rows = sorted(x_all.round().to(torch.uint8).reshape(20, -1).numpy().tolist())
    assert rows == sorted(train_images.reshape(20, -1).tolist())
    assert sorted(torch.cat([splits.train.y, splits.val.y]).tolist()) == sorted(
        train_labels.tolist()
    )
    assert torch.equal(load_cifar10(tmp_path, val_size=6, seed=0).val.X, splits.val.X)
    assert not torch.equal(load_cifar10(tmp_path, val_size=6, seed=1).val.X, splits.val.X)


def test_load_cifar10_pixel_range_and_flatten(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    splits = load_cifar10(tmp_path, val_size=0, pixel_range=(-1, 1), flatten=True)
    assert tuple(splits.train.X.shape) == (20, 3072) and len(splits.val) == 0
    assert splits.test.X.min() == -1.0 and splits.test.X.max() == 1.0


def test_load_cifar10_reads_the_unpacked_archive_folder(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar-10-batches-bin")
    assert len(load_cifar10(tmp_path, val_size=2).train) == 18


def test_load_cifar10_names_missing_files(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_4.bin").unlink()
    (tmp_path / "test_batch.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"is missing data_batch_4.bin, test_batch.bin"):
        load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"directory .*not found; pass data_dir"):
        load_cifar10(tmp_path / "absent")


def test_load_cifar10_recognises_the_pickled_version(tmp_path: Path) -> None:
    for name in CIFAR10_FILES:
        (tmp_path / name.removesuffix(".bin")).write_bytes(b"\x80\x04")  # a pickle's start
    with pytest.raises(FileNotFoundError, match=r"Python \(pickle\) version, which is not read"):
        load_cifar10(tmp_path)


def test_load_cifar10_names_a_corrupt_batch(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    path = tmp_path / "data_batch_5.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"data_batch_5.bin has .* bytes"):
        load_cifar10(tmp_path)


def test_load_cifar10_val_size_out_of_range(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    with pytest.raises(ValueError, match=r"holds 20 images and 20 of them are held out"):
        load_cifar10(tmp_path, val_size=20)


# --------------------------------------------------------------------------- registry


def test_load_dataset_cifar10_by_name(tmp_path: Path) -> None:
    _write_cifar(tmp_path, n_per_batch=1001, n_test=2)  # load_dataset holds out 5000
    splits = load_dataset("CIFAR10", data_dir=str(tmp_path), seed=0)
    assert splits.name == "cifar10"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (5, 5000, 2)
    assert tuple(splits.test.X.shape) == (2, 3, 32, 32)


def test_load_dataset_cifar10_requires_data_dir() -> None:
    with pytest.raises(ValueError, match=r"pass data_dir pointing at the folder.*binary batches"):
        load_dataset("cifar10")


def test_the_built_in_names() -> None:
    assert DATASET_NAMES == ("digits", "mnist", "mnist32", "cifar10")
    assert tuple(registered_datasets())[:4] == DATASET_NAMES


def test_a_registered_data_set_is_loaded_by_name(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(loaders, "_DATASETS", dict(loaders._DATASETS))
    seen = {}

    def load(data_dir, seed, flatten, pixel_range) -> Splits:
        seen.update(data_dir=data_dir, seed=seed, flatten=flatten, pixel_range=pixel_range)
        d = Dataset(X=torch.zeros(2, 3), y=torch.tensor([0, 1]))
        return Splits(train=d, val=d, test=d, num_classes=2, name="toy")

    register_dataset("toy", DatasetEntry(load, "toy files", flatten=True))
    assert "toy" in registered_datasets() and "toy" not in DATASET_NAMES
    assert load_dataset(" Toy ", data_dir=str(tmp_path), seed=3).name == "toy"
    assert seen == {"data_dir": tmp_path, "seed": 3, "flatten": True, "pixel_range": (0.0, 1.0)}
    load_dataset("toy", data_dir=tmp_path, flatten=False)
    assert seen["flatten"] is False
    with pytest.raises(ValueError, match=r"the toy data set .* holds toy files"):
        load_dataset("toy")


@pytest.mark.parametrize("name", ["", "Toy", "two words", " toy", 3])
def test_register_dataset_refuses_bad_names(name) -> None:
    entry = DatasetEntry(lambda *a: None, None)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match=r"non-empty lower-case string without spaces"):
        register_dataset(name, entry)


def test_register_dataset_refuses_other_entries() -> None:
    with pytest.raises(TypeError, match=r"expects a DatasetEntry, got function"):
        register_dataset("toy", lambda *a: None)  # type: ignore[arg-type]
