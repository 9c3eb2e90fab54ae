"""Data: containers, the IDX format, loaders, simulation designs and boundary validation.

* :class:`Dataset` and :class:`Splits`, small immutable containers for tensors
  (:mod:`~pyrocompress.data.containers`);
* :func:`read_idx` / :func:`write_idx` for the IDX format used by MNIST
  (:mod:`~pyrocompress.data.idx`);
* :func:`load_mnist`, :func:`load_digits`, :func:`load_csv` and the
  :func:`load_dataset` dispatcher (:mod:`~pyrocompress.data.loaders`);
* :func:`check_tensors`, the input validation used at the boundary of training code
  (:mod:`~pyrocompress.data.validation`);
* simulation designs of the feature-selection literature (:func:`simulate_bai2020`,
  :func:`simulate_sun2021`, :func:`simulate_sun2021_classification`;
  :mod:`~pyrocompress.data.simulations`).

Nothing in here downloads anything: MNIST is read from a local directory holding the
four standard IDX files, and the small "digits" data set ships with scikit-learn.
"""

from pyrocompress.data.containers import Dataset, Splits
from pyrocompress.data.idx import read_idx, write_idx
from pyrocompress.data.loaders import (
    DATASET_NAMES,
    MNIST_FILES,
    load_csv,
    load_dataset,
    load_digits,
    load_mnist,
)
from pyrocompress.data.simulations import (
    simulate_bai2020,
    simulate_sun2021,
    simulate_sun2021_classification,
)
from pyrocompress.data.validation import check_tensors

__all__ = [
    "DATASET_NAMES",
    "MNIST_FILES",
    "Dataset",
    "Splits",
    "check_tensors",
    "load_csv",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "read_idx",
    "simulate_bai2020",
    "simulate_sun2021",
    "simulate_sun2021_classification",
    "write_idx",
]
