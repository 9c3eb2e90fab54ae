import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def _clean_pyro():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield


@pytest.fixture
def relevant_data():
    """Binary classification where only inputs 0, 1, 2 of 8 matter (nonlinearly)."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(600, 8, generator=g)
    logit = 3 * X[:, 0] - 3 * X[:, 1] ** 2 + 2 + 2 * X[:, 2]
    y = (logit > 0).long()
    return X, y


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Small networks run faster on one thread, and tests do not fight over cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def float64():
    """Double precision for Monte-Carlo comparisons with tight tolerances."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def no_training(monkeypatch):
    """Fail loudly if a command gets as far as reading data or training."""
    from pyrocompress.cli import app as cli

    def reached(*args, **kwargs):
        raise AssertionError("the bad option was not caught before the data and training")

    monkeypatch.setattr(cli.datasets, "load_dataset", reached)
    monkeypatch.setattr(cli, "fit", reached)
