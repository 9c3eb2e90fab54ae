"""Data: containers, the IDX format, loaders, simulation designs and boundary validation.

* :class:`Dataset` and :class:`Splits`, small immutable containers for tensors
  (:mod:`~pyrocompress.data.containers`);
* :func:`read_idx` / :func:`write_idx` for the IDX format used by MNIST
  (:mod:`~pyrocompress.data.idx`), :func:`read_cifar10_batch` /
  :func:`write_cifar10_batch` for the binary batches of CIFAR-10
  (:mod:`~pyrocompress.data.cifar`);
* :func:`load_mnist`, :func:`load_mnist32` (MNIST zero-padded to 32x32),
  :func:`load_cifar10`, :func:`load_digits`, :func:`load_csv` and :func:`load_dataset`,
  which loads a data set by name from a registry (:func:`register_dataset`)
  (:mod:`~pyrocompress.data.loaders`);
* :func:`check_tensors`, the input validation used at the boundary of training code
  (:mod:`~pyrocompress.data.validation`);
* simulation designs of the feature-selection literature (:func:`simulate_bai2020`,
  :func:`simulate_sun2021`, :func:`simulate_sun2021_classification`;
  :mod:`~pyrocompress.data.simulations`).

Nothing in here downloads anything: MNIST is read from a local directory holding the
four standard IDX files, CIFAR-10 from one holding its six binary batch files, and the
small "digits" data set ships with scikit-learn.
"""

from pyrocompress.data.cifar import (
    CIFAR10_CLASSES,
    CIFAR10_FILES,
    read_cifar10_batch,
    write_cifar10_batch,
)
from pyrocompress.data.containers import Dataset, Splits
from pyrocompress.data.idx import read_idx, write_idx
from pyrocompress.data.loaders import (
    DATASET_NAMES,
    MNIST_FILES,
    DatasetEntry,
    load_cifar10,
    load_csv,
    load_dataset,
    load_digits,
    load_mnist,
    load_mnist32,
    register_dataset,
    registered_datasets,
)
from pyrocompress.data.simulations import (
    simulate_bai2020,
    simulate_sun2021,
    simulate_sun2021_classification,
)
from pyrocompress.data.validation import check_tensors

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_FILES",
    "DATASET_NAMES",
    "MNIST_FILES",
    "Dataset",
    "DatasetEntry",
    "Splits",
    "check_tensors",
    "load_cifar10",
    "load_csv",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "load_mnist32",
    "read_cifar10_batch",
    "read_idx",
    "register_dataset",
    "registered_datasets",
    "simulate_bai2020",
    "simulate_sun2021",
    "simulate_sun2021_classification",
    "write_cifar10_batch",
    "write_idx",
]
