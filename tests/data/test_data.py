"""Tests for pyrocompress.data: IDX I/O, MNIST/digits loaders and tensor validation."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrocompress.data import (
    MNIST_FILES,
    Dataset,
    Splits,
    check_tensors,
    load_csv,
    load_dataset,
    load_digits,
    load_mnist,
    read_idx,
    write_idx,
)

REAL_MNIST_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"

N_TRAIN = 20
N_TEST = 10


# --------------------------------------------------------------------------- helpers


def _fake_mnist_arrays(
    seed: int = 0, n_train: int = N_TRAIN, n_test: int = N_TEST
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    train_images = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    test_images = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    # Make sure both extremes are present so scaling can be checked exactly.
    train_images[0, 0, 0] = 0
    train_images[0, 0, 1] = 255
    test_images[0, 0, 0] = 0
    test_images[0, 0, 1] = 255
    train_labels = (np.arange(n_train) % 10).astype(np.uint8)
    test_labels = (np.arange(n_test) % 10).astype(np.uint8)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


def _write_mnist(
    directory: Path, arrays: dict[str, np.ndarray], *, gz: bool = True
) -> dict[str, np.ndarray]:
    directory.mkdir(parents=True, exist_ok=True)
    for role, name in MNIST_FILES.items():
        filename = name if gz else name.removesuffix(".gz")
        write_idx(directory / filename, arrays[role])
    return arrays


@pytest.fixture
def mnist_dir(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    directory = tmp_path / "mnist"
    arrays = _write_mnist(directory, _fake_mnist_arrays())
    return directory, arrays


def _raw_idx(header: bytes, payload: bytes) -> bytes:
    return header + payload


# --------------------------------------------------------------------------- containers


def test_dataset_len_and_frozen() -> None:
    ds = Dataset(X=torch.zeros(3, 4), y=torch.zeros(3, dtype=torch.long))
    assert len(ds) == 3
    assert ds.feature_names is None
    assert ds.image_shape is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.X = torch.ones(3, 4)  # type: ignore[misc]


def test_dataset_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match=r"3 examples but Dataset.y has 2"):
        Dataset(X=torch.zeros(3, 4), y=torch.zeros(2, dtype=torch.long))


def test_dataset_rejects_non_tensors() -> None:
    with pytest.raises(TypeError, match=r"torch.as_tensor"):
        Dataset(X=np.zeros((3, 4)), y=torch.zeros(3))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- IDX round trip


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (4, 28, 28), (2, 3, 4, 5)])
def test_idx_round_trip(tmp_path: Path, suffix: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    array = rng.integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / f"arr-idx{len(shape)}-ubyte{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.uint8
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_write_idx_format_is_standard(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = tmp_path / "a-idx3-ubyte"
    gz = tmp_path / "a-idx3-ubyte.gz"
    write_idx(raw, array)
    write_idx(gz, array)
    expected = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]) + array.tobytes()
    assert raw.read_bytes() == expected
    assert gz.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
    assert gzip.decompress(gz.read_bytes()) == expected


def test_write_idx_non_contiguous_input(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4).T
    write_idx(tmp_path / "t.idx", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "t.idx"), array)


def test_write_idx_rejects_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"uint8"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"1..4 dimensions"):
        write_idx(tmp_path / "x", np.zeros((1, 1, 1, 1, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"1..4 dimensions"):
        write_idx(tmp_path / "x", np.array(3, dtype=np.uint8))


# --------------------------------------------------------------------------- IDX corruption


def test_read_idx_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope-idx1-ubyte.gz"
    with pytest.raises(FileNotFoundError, match=r"nope-idx1-ubyte.gz.*expected an IDX"):
        read_idx(path)


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(_raw_idx(bytes([1, 0, 8, 1, 0, 0, 0, 2]), b"\x00\x01"))
    with pytest.raises(ValueError, match=r"bad magic number 0x01000801"):
        read_idx(path)


def test_read_idx_wrong_type_code(tmp_path: Path) -> None:
    path = tmp_path / "floats"
    path.write_bytes(_raw_idx(bytes([0, 0, 0x0D, 1, 0, 0, 0, 1]), b"\x00\x00\x00\x00"))
    with pytest.raises(ValueError, match=r"type code 0x0D .*only 0x08 \(unsigned byte\)"):
        read_idx(path)


@pytest.mark.parametrize("ndim", [0, 5])
def test_read_idx_bad_ndim(tmp_path: Path, ndim: int) -> None:
    path = tmp_path / "dims"
    path.write_bytes(bytes([0, 0, 8, ndim]) + b"\x00" * 24)
    with pytest.raises(ValueError, match=f"declares {ndim} dimensions"):
        read_idx(path)


def test_read_idx_short_header(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match=r"corrupt or truncated.*4-byte header, got 2 bytes"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 1]))  # 3 dims declared, only 1 present
    with pytest.raises(ValueError, match=r"expected 16 header bytes"):
        read_idx(path)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_truncated_payload(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"trunc{suffix}"
    data = _raw_idx(bytes([0, 0, 8, 2, 0, 0, 0, 3, 0, 0, 0, 4]), b"\x01" * 11)
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(
        ValueError, match=r"corrupt or truncated: expected 12 payload bytes .* got 11 bytes"
    ):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "trailing"
    path.write_bytes(_raw_idx(bytes([0, 0, 8, 1, 0, 0, 0, 4]), b"\x01" * 5))
    with pytest.raises(ValueError, match=r"expected 4 payload bytes .* got 5 bytes"):
        read_idx(path)


def test_read_idx_not_a_gzip(tmp_path: Path) -> None:
    path = tmp_path / "plain-idx1-ubyte.gz"
    path.write_bytes(_raw_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2]), b"\x01\x02"))
    with pytest.raises(ValueError, match=r"could not decompress .*plain-idx1-ubyte.gz"):
        read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "cut-idx1-ubyte.gz"
    data = gzip.compress(_raw_idx(bytes([0, 0, 8, 1, 0, 0, 3, 232]), bytes(range(256)) * 4))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"could not decompress .*cut-idx1-ubyte.gz"):
        read_idx(path)


# --------------------------------------------------------------------------- load_mnist


def test_load_mnist_shapes_and_dtypes(mnist_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    directory, _ = mnist_dir
    splits = load_mnist(directory, val_size=5, seed=0)
    assert isinstance(splits, Splits)
    assert splits.name == "mnist"
    assert splits.num_classes == 10
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 5, 10)
    for ds in (splits.train, splits.val, splits.test):
        assert ds.X.dtype == torch.float32
        assert ds.y.dtype == torch.int64
        assert tuple(ds.X.shape[1:]) == (1, 28, 28)
        assert ds.image_shape == (28, 28)
        assert ds.y.shape == (len(ds),)

    flat = load_mnist(directory, val_size=5, seed=0, flatten=True)
    assert tuple(flat.train.X.shape) == (15, 784)
    assert tuple(flat.test.X.shape) == (10, 784)
    torch.testing.assert_close(flat.train.X, splits.train.X.reshape(15, 784))


def test_load_mnist_scaling(mnist_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    directory, arrays = mnist_dir
    splits = load_mnist(directory, val_size=5)
    expected = torch.from_numpy(arrays["test_images"].astype(np.float32) / 255.0)
    torch.testing.assert_close(splits.test.X[:, 0], expected)
    torch.testing.assert_close(splits.test.y, torch.from_numpy(arrays["test_labels"]).long())
    for ds in (splits.train, splits.val, splits.test):
        assert float(ds.X.min()) >= 0.0
        assert float(ds.X.max()) <= 1.0
    all_train = torch.cat([splits.train.X, splits.val.X])
    assert float(all_train.min()) == 0.0
    assert float(all_train.max()) == 1.0


def test_load_mnist_pixel_range(mnist_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    """Louizos et al.'s code feeds the network pixels in [-1, 1]: 2 * (x - 0.5)."""
    directory, arrays = mnist_dir
    unit = load_mnist(directory, val_size=5)
    symmetric = load_mnist(directory, val_size=5, pixel_range=(-1, 1))
    for a, b in zip(
        (unit.train, unit.val, unit.test),
        (symmetric.train, symmetric.val, symmetric.test),
        strict=True,
    ):
        torch.testing.assert_close(b.X, 2 * (a.X - 0.5))
        torch.testing.assert_close(b.y, a.y)
    with pytest.raises(ValueError, match="low < high"):
        load_mnist(directory, pixel_range=(1, 0))
    with pytest.raises(TypeError, match="two numbers"):
        load_mnist(directory, pixel_range=1.0)


def test_load_mnist_train_val_partition(mnist_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    directory, arrays = mnist_dir
    splits = load_mnist(directory, val_size=7, seed=3)
    originals = {img.tobytes(): i for i, img in enumerate(arrays["train_images"])}
    seen: list[int] = []
    for ds in (splits.train, splits.val):
        pixels = (ds.X[:, 0] * 255).round().to(torch.uint8).numpy()
        for img, label in zip(pixels, ds.y.tolist(), strict=True):
            index = originals[img.tobytes()]
            assert label == int(arrays["train_labels"][index])
            seen.append(index)
    assert sorted(seen) == list(range(N_TRAIN))  # disjoint and complete


def test_load_mnist_seed_determinism(mnist_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    directory, _ = mnist_dir
    a = load_mnist(directory, val_size=5, seed=11)
    b = load_mnist(directory, val_size=5, seed=11)
    c = load_mnist(directory, val_size=5, seed=12)
    assert torch.equal(a.train.X, b.train.X)
    assert torch.equal(a.val.X, b.val.X)
    assert torch.equal(a.val.y, b.val.y)
    assert not torch.equal(a.val.X, c.val.X)


@pytest.mark.parametrize(("flatten", "trailing"), [(False, (1, 28, 28)), (True, (784,))])
def test_load_mnist_empty_val(
    mnist_dir: tuple[Path, dict[str, np.ndarray]], flatten: bool, trailing: tuple[int, ...]
) -> None:
    directory, _ = mnist_dir
    splits = load_mnist(directory, val_size=0, flatten=flatten)
    assert len(splits.val) == 0
    assert tuple(splits.val.X.shape) == (0, *trailing)
    assert splits.val.y.shape == (0,)
    assert len(splits.train) == N_TRAIN


@pytest.mark.parametrize(
    ("val_size", "message"),
    [
        (-1, r"val_size must be >= 0"),
        # issue 25: a small MNIST folder names the training file, not an unknown option
        (N_TRAIN, r"train-images-idx3-ubyte.* holds 20 images and 20 of them are held out"),
        (N_TRAIN + 5, r"train-images-idx3-ubyte.* holds 20 images and 25 of them are held out"),
    ],
)
def test_load_mnist_bad_val_size(
    mnist_dir: tuple[Path, dict[str, np.ndarray]], val_size: int, message: str
) -> None:
    directory, _ = mnist_dir
    with pytest.raises(ValueError, match=message):
        load_mnist(directory, val_size=val_size)


def test_load_mnist_refuses_an_empty_test_set(tmp_path: Path) -> None:
    """Issue 25: a test file of 0 images used to train fully, then crash in pruning."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 0)):
        write_idx(
            tmp_path / f"{prefix}-images-idx3-ubyte.gz",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        )
        write_idx(
            tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8)
        )
    with pytest.raises(ValueError, match="holds no images"):
        load_mnist(tmp_path, val_size=5)


def test_load_mnist_raw_files(tmp_path: Path) -> None:
    directory = tmp_path / "raw"
    _write_mnist(directory, _fake_mnist_arrays(), gz=False)
    splits = load_mnist(directory, val_size=4)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 4, 10)


def test_load_mnist_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"MNIST directory .*not found; pass data_dir"):
        load_mnist(tmp_path / "does-not-exist")


def test_load_mnist_missing_file(mnist_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    directory, _ = mnist_dir
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing t10k-labels-idx1-ubyte.gz"):
        load_mnist(directory)


def test_load_mnist_count_mismatch(tmp_path: Path) -> None:
    arrays = _fake_mnist_arrays()
    arrays["train_labels"] = arrays["train_labels"][:-1]
    directory = tmp_path / "m"
    _write_mnist(directory, arrays)
    with pytest.raises(ValueError, match=r"20 images but .* 19 labels"):
        load_mnist(directory, val_size=2)


def test_load_mnist_labels_out_of_range(tmp_path: Path) -> None:
    arrays = _fake_mnist_arrays()
    arrays["test_labels"][3] = 10
    directory = tmp_path / "m"
    _write_mnist(directory, arrays)
    with pytest.raises(ValueError, match=r"t10k-labels.* 1 labels outside 0..9 \(max 10\)"):
        load_mnist(directory, val_size=2)


@pytest.mark.parametrize("shape", [(N_TRAIN, 27, 28), (N_TRAIN, 28 * 28), (N_TRAIN, 28, 28, 1)])
def test_load_mnist_wrong_image_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    arrays = _fake_mnist_arrays()
    arrays["train_images"] = np.zeros(shape, dtype=np.uint8)
    directory = tmp_path / "m"
    _write_mnist(directory, arrays)
    with pytest.raises(ValueError, match=r"train-images.*expected MNIST images of shape"):
        load_mnist(directory, val_size=2)


def test_load_mnist_labels_not_1d(tmp_path: Path) -> None:
    arrays = _fake_mnist_arrays()
    arrays["train_labels"] = arrays["train_labels"].reshape(N_TRAIN, 1)
    directory = tmp_path / "m"
    _write_mnist(directory, arrays)
    with pytest.raises(ValueError, match=r"expected 1-D labels"):
        load_mnist(directory, val_size=2)


def test_load_mnist_corrupt_file_is_named(mnist_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    directory, _ = mnist_dir
    (directory / "train-images-idx3-ubyte.gz").write_bytes(b"definitely not gzip")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz"):
        load_mnist(directory)


# --------------------------------------------------------------------------- load_digits


def test_load_digits_sizes_and_stratification() -> None:
    splits = load_digits()
    assert splits.name == "digits"
    assert splits.num_classes == 10
    sizes = (len(splits.train), len(splits.val), len(splits.test))
    assert sum(sizes) == 1797
    assert sizes == (1221, 216, 360)
    for ds in (splits.train, splits.val, splits.test):
        assert ds.X.dtype == torch.float32
        assert ds.y.dtype == torch.int64
        assert tuple(ds.X.shape[1:]) == (64,)
        assert float(ds.X.min()) >= 0.0
        assert float(ds.X.max()) <= 1.0
        assert set(ds.y.tolist()) == set(range(10))
        assert ds.image_shape == (8, 8)
        assert ds.feature_names is not None
        assert len(ds.feature_names) == 64
        assert ds.feature_names[0] == "pixel_0_0"
        assert ds.feature_names[9] == "pixel_1_1"
        assert ds.feature_names[-1] == "pixel_7_7"
    # Stratified: class proportions in each split stay close to the overall ones.
    overall = torch.bincount(torch.cat([s.y for s in (splits.train, splits.val, splits.test)]))
    for ds in (splits.train, splits.val, splits.test):
        share = torch.bincount(ds.y, minlength=10).double() / len(ds)
        assert torch.allclose(share, overall.double() / 1797, atol=0.01)
    assert float(splits.train.X.max()) == 1.0


def test_load_digits_unflattened_matches_flat() -> None:
    flat = load_digits(seed=4)
    img = load_digits(seed=4, flatten=False)
    assert tuple(img.train.X.shape[1:]) == (1, 8, 8)
    torch.testing.assert_close(img.train.X.reshape(len(img.train), 64), flat.train.X)
    torch.testing.assert_close(img.test.y, flat.test.y)


def test_load_digits_seed_determinism() -> None:
    a = load_digits(seed=1)
    b = load_digits(seed=1)
    c = load_digits(seed=2)
    assert torch.equal(a.test.X, b.test.X)
    assert torch.equal(a.val.y, b.val.y)
    assert not torch.equal(a.test.X, c.test.X)


def test_load_digits_custom_fractions() -> None:
    splits = load_digits(test_size=0.5, val_size=0.5)
    assert len(splits.test) == 899  # ceil(0.5 * 1797)
    assert len(splits.train) + len(splits.val) == 898


@pytest.mark.parametrize("arg", ["test_size", "val_size"])
@pytest.mark.parametrize("value", [0.0, 1.0, -0.1, 1.5, 20])
def test_load_digits_bad_fractions(arg: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{arg} must be a fraction in"):
        load_digits(**{arg: value})


@pytest.mark.parametrize("arg", ["test_size", "val_size"])
@pytest.mark.parametrize("value", [True, "0.2", None])
def test_load_digits_fraction_types(arg: str, value: object) -> None:
    with pytest.raises(TypeError, match=f"{arg} must be a fraction in"):
        load_digits(**{arg: value})


def test_load_digits_too_small_split() -> None:
    with pytest.raises(ValueError, match=r"test_size=0.001"):
        load_digits(test_size=0.001)


# --------------------------------------------------------------------------- load_dataset


def test_load_dataset_digits() -> None:
    splits = load_dataset("digits", seed=0)
    assert splits.name == "digits"
    assert tuple(splits.train.X.shape[1:]) == (64,)
    img = load_dataset("Digits", flatten=False)
    assert tuple(img.train.X.shape[1:]) == (1, 8, 8)


def test_load_dataset_mnist(tmp_path: Path) -> None:
    # load_dataset uses load_mnist's default val_size=5000, so write a few more images.
    arrays = _fake_mnist_arrays(n_train=5010)
    directory = tmp_path / "m"
    _write_mnist(directory, arrays)
    splits = load_dataset("mnist", data_dir=directory, seed=0)
    assert splits.name == "mnist"
    assert (len(splits.train), len(splits.val), len(splits.test)) == (10, 5000, N_TEST)
    assert tuple(splits.train.X.shape[1:]) == (1, 28, 28)
    flat = load_dataset("MNIST", data_dir=str(directory), flatten=True)
    assert tuple(flat.test.X.shape) == (N_TEST, 784)


def test_load_dataset_mnist_val_too_large(mnist_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    directory, _ = mnist_dir
    with pytest.raises(ValueError, match=r"val_size"):
        load_dataset("mnist", data_dir=directory)


def test_load_dataset_mnist_requires_data_dir() -> None:
    with pytest.raises(ValueError, match=r"pass data_dir pointing at the folder"):
        load_dataset("mnist")


def test_load_dataset_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"unknown data set 'cifar'.*digits, mnist"):
        load_dataset("cifar")


# --------------------------------------------------------------------------- check_tensors


def test_check_tensors_accepts_valid() -> None:
    x = torch.rand(5, 3)
    y = torch.tensor([0, 1, 2, 1, 0])
    assert check_tensors(x, y, num_classes=3) is None
    assert check_tensors(x, torch.rand(5)) is None  # regression targets need no num_classes


def test_check_tensors_type_errors() -> None:
    with pytest.raises(TypeError, match=r"X must be a torch.Tensor.*torch.as_tensor"):
        check_tensors(np.zeros((2, 2)), torch.zeros(2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"y must be a torch.Tensor.*torch.as_tensor"):
        check_tensors(torch.zeros(2, 2), [0, 1])  # type: ignore[arg-type]


def test_check_tensors_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"train: X has 4 examples but y has 3"):
        check_tensors(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), name="train")
    with pytest.raises(ValueError, match=r"no examples"):
        check_tensors(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"leading example dimension"):
        check_tensors(torch.tensor(1.0), torch.tensor(1))


def test_check_tensors_x_dtype_and_finiteness() -> None:
    y = torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"X must be floating point"):
        check_tensors(torch.zeros(3, 2, dtype=torch.int64), y)
    x = torch.zeros(3, 2)
    x[0, 0] = float("nan")
    x[2, 1] = float("inf")
    with pytest.raises(ValueError, match=r"val: X has 2 non-finite values"):
        check_tensors(x, y, name="val")


def test_check_tensors_label_errors() -> None:
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"integer dtype"):
        check_tensors(x, torch.tensor([0.0, 1.0, 2.0]), num_classes=3)
    with pytest.raises(ValueError, match=r"integer dtype"):
        check_tensors(x, torch.tensor([True, False, True]), num_classes=2)
    with pytest.raises(ValueError, match=r"1 labels outside \[0, 3\) \(min 0, max 3\)"):
        check_tensors(x, torch.tensor([0, 1, 3]), num_classes=3)
    with pytest.raises(ValueError, match=r"1 labels outside \[0, 3\) \(min -1"):
        check_tensors(x, torch.tensor([0, -1, 2]), num_classes=3)
    with pytest.raises(ValueError, match=r"must be 1-D"):
        check_tensors(x, torch.zeros(3, 1, dtype=torch.long), num_classes=3)
    with pytest.raises(ValueError, match=r"num_classes must be >= 1"):
        check_tensors(x, torch.zeros(3, dtype=torch.long), num_classes=0)


# ------------------------------------------------------------------------------ load_csv


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, shown",
    [
        ("a,y,y\n1,2,2\n3,4,4\n", "'y' in columns 2, 3"),  # a copy of the target
        ("y,a,b,a\n1,2,3,2\n4,5,6,5\n", "'a' in columns 2, 4"),  # a repeated feature
        ("a,a,y,y\n1,1,2,2\n3,3,4,5\n", "'a' in columns 1, 2; 'y' in columns 3, 4"),
    ],
)
def test_load_csv_refuses_duplicate_header_names(tmp_path: Path, text: str, shown: str) -> None:
    """pandas would rename the repeats (y, y.1) and let the copy in as a feature."""
    with pytest.raises(ValueError) as err:
        load_csv(_csv(tmp_path, text), "y")
    message = str(err.value)
    assert "duplicate column names" in message and shown in message
    assert "rename or drop the repeated columns" in message
    assert "\n" not in message


def test_load_csv_names_like_pandas_renames_are_not_duplicates(tmp_path: Path) -> None:
    X, y, names = load_csv(_csv(tmp_path, "y.1,y\n1,2\n3,4\n"), "y")
    assert names == ["y.1"] and X[:, 0].tolist() == [1.0, 3.0] and y.tolist() == [2, 4]


def test_load_csv_reads_features_and_target(tmp_path: Path) -> None:
    X, y, names = load_csv(_csv(tmp_path, "a,b,y\n1,2,3\n4,5,6\n7,8,1\n"), "y")
    assert names == ["a", "b"] and X.dtype == np.float64
    assert X.tolist() == [[1, 2], [4, 5], [7, 8]]
    assert y.dtype == np.int64 and y.tolist() == [3, 6, 1]


@pytest.mark.parametrize(
    "text, shown",
    [("a,y\n1,3\n2,3\n", "3"), ("a,y\n1,2.5\n2,2.5\n", "2.5"), ("a,y\n1,x\n2,x\n", "'x'")],
)
def test_load_csv_constant_target_shows_the_plain_value(
    tmp_path: Path, text: str, shown: str
) -> None:
    with pytest.raises(ValueError) as err:
        load_csv(_csv(tmp_path, text), "y")
    assert f"target column 'y' is constant (every row is {shown});" in str(err.value)
    assert "np." not in str(err.value)


# --------------------------------------------------------------------------- real MNIST


@pytest.mark.mnist
def test_real_mnist() -> None:
    if not REAL_MNIST_DIR.is_dir():
        pytest.skip(f"real MNIST not available at {REAL_MNIST_DIR}")
    splits = load_mnist(REAL_MNIST_DIR)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (55000, 5000, 10000)
    assert tuple(splits.train.X.shape) == (55000, 1, 28, 28)
    train_counts = torch.bincount(splits.train.y, minlength=10)
    val_counts = torch.bincount(splits.val.y, minlength=10)
    test_counts = torch.bincount(splits.test.y, minlength=10)
    assert int(train_counts.sum()) == 55000
    assert int(val_counts.sum()) == 5000
    assert int(test_counts.sum()) == 10000
    assert (train_counts + val_counts).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949
    ]  # fmt: skip
    assert test_counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert float(splits.train.X.min()) == 0.0
    assert float(splits.train.X.max()) == 1.0


def test_load_csv_keeps_whole_number_targets_beyond_int64_apart(tmp_path: Path) -> None:
    """Issue 25: targets >= 1e19 used to overflow the int64 cast (merged or wrapped)."""
    X, y, _ = load_csv(_csv(tmp_path, "a,y\n1,1e19\n2,2e19\n3,3e19\n"), "y")
    assert y.dtype == np.float64 and len(np.unique(y)) == 3
    assert y.tolist() == [1e19, 2e19, 3e19]


def test_float64_inputs_beyond_float32_range_are_refused() -> None:
    """Issue 25: they passed the NaN check, became inf in float32, and training blamed lr."""
    import pyrocompress as pc

    bnn = pc.bayesianize(pc.mlp([2, 4, 2]), "group-nj", seed=0)
    X = torch.tensor([[1.0, 2.0], [1e39, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match=r"beyond float32's range.*rescale X"):
        pc.fit(bnn, (X, y), epochs=1, progress=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a;y\n1;2\n3;4\n", "save the file comma-separated"),
        ("caf\xe9,y\n1,2\n3,4\n".encode("latin-1"), "is not UTF-8 text.*save it as UTF-8"),
    ],
)
def test_load_csv_suggests_the_fix_for_other_separators_and_encodings(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """Issue 25: the errors did not say what to change."""
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_csv(path, "y")


def test_load_csv_that_cannot_be_read_is_a_value_error(tmp_path: Path, monkeypatch) -> None:
    """Issue 25: an unreadable CSV raised PermissionError (a traceback in the CLI)."""
    import pandas as pd

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pd, "read_csv", denied)
    with pytest.raises(ValueError, match="cannot be read \\(Permission denied\\)"):
        load_csv(_csv(tmp_path, "a,y\n1,2\n"), "y")


def test_load_csv_keeps_integer_targets_beyond_2_to_53_exact(tmp_path: Path) -> None:
    """Issue 25's own example: integers beyond 2^53 (and beyond int64) were merged."""
    text = "a,y\n1,10000000000000000001\n2,10000000000000000002\n3,10000000000000000003\n"
    _, y, _ = load_csv(_csv(tmp_path, text), "y")
    assert len(np.unique(y)) == 3  # beyond int64: kept as text labels, one class each
    big = 2**53
    _, y, _ = load_csv(_csv(tmp_path, f"a,y\n1,{big + 1}\n2,{big + 2}\n3,{big + 3}\n"), "y")
    assert y.dtype == np.int64 and y.tolist() == [big + 1, big + 2, big + 3]


def test_float64_inputs_float32_would_round_to_zero_are_refused() -> None:
    """Issue 25 review: a feature around 1e-200 became zeros in float32, silently."""
    import pyrocompress as pc

    bnn = pc.bayesianize(pc.mlp([2, 4, 2]), "group-nj", seed=0)
    X = torch.tensor([[1e-200, 2.0], [3e-200, 0.0], [0.0, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"as small as 1e-200.*rounds to 0"):
        pc.fit(bnn, (X, torch.tensor([0, 1, 0])), epochs=1, progress=False)
