"""Fixtures shared by the command-line tests."""

import pytest


@pytest.fixture
def no_training(monkeypatch):
    """Fail loudly if a command gets as far as reading data or training."""
    from pyrocompress.cli import app as cli

    def reached(*args, **kwargs):
        raise AssertionError("the bad option was not caught before the data and training")

    monkeypatch.setattr(cli.datasets, "load_dataset", reached)
    monkeypatch.setattr(cli, "fit", reached)
