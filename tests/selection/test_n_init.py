"""``FeatureSelector(n_init=...)``: several initialisations, the fit with the best ELBO kept."""

import numpy as np
import pytest
import torch

from pyrocompress import FeatureSelector
from pyrocompress.infer import elbo_estimate
from pyrocompress.selection.estimator import _init_seeds


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 6))
    y = 1.5 * X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=150)
    return X, y


SMALL = {"hidden": (), "epochs": 30, "tol": None, "pretrain_epochs": 0, "random_state": 7}


def _standardised(sel, X, y):
    return (
        torch.as_tensor((X - sel.x_mean_) / sel.x_scale_, dtype=torch.float32),
        torch.as_tensor((y - sel.y_mean_) / sel.y_scale_, dtype=torch.float32),
    )


def test_the_initialisation_with_the_best_elbo_is_kept(data):
    X, y = data
    sel = FeatureSelector(n_init=3, **SMALL).fit(X, y)
    assert sel.init_elbos_.shape == sel.init_elbo_ses_.shape == (3,)
    # the initialisations differ, and here the first is not the best: the choice bites
    assert len(set(sel.init_elbos_.round(6))) == 3 and sel.best_init_ != 0
    assert sel.best_init_ == int(np.argmax(sel.init_elbos_))
    # the kept network is the one measured best: its ELBO, remeasured on the same draws
    kept = elbo_estimate(sel.module_, _standardised(sel, X, y), num_particles=200, seed=7)
    assert kept.mean == sel.elbo_ == sel.init_elbos_[sel.best_init_]


def test_the_first_initialisation_is_the_single_fit(data):
    X, y = data
    one = FeatureSelector(**SMALL).fit(X, y)
    assert one.best_init_ == 0 and one.init_elbos_.shape == (1,)
    two = FeatureSelector(n_init=2, **SMALL).fit(X, y)
    assert two.init_elbos_[0] == one.elbo_  # same seed, same fit, same draws
    measured = elbo_estimate(one.module_, _standardised(one, X, y), num_particles=200, seed=7)
    assert measured.mean == one.elbo_


def test_the_kept_histories_are_the_kept_initialisations(data):
    X, y = data
    settings = {**SMALL, "pretrain_epochs": 5}
    sel = FeatureSelector(n_init=3, **settings).fit(X, y)
    seed = _init_seeds(7, 3)[sel.best_init_]
    alone = FeatureSelector(**{**settings, "random_state": seed}).fit(X, y)
    assert sel.history_.loss == alone.history_.loss
    assert sel.pretrain_history_.loss == alone.pretrain_history_.loss
    np.testing.assert_array_equal(sel.inclusion_probabilities_, alone.inclusion_probabilities_)


def test_unseeded_initialisations_fit(data):
    X, y = data
    sel = FeatureSelector(n_init=2, **{**SMALL, "random_state": None}).fit(X, y)
    assert np.isfinite(sel.init_elbos_).all() and sel.elbo_ == sel.init_elbos_.max()


def test_init_seeds():
    assert _init_seeds(None, 3) == [None, None, None]
    seeds = _init_seeds(5, 4)
    assert seeds[0] == 5 and len(set(seeds)) == 4 and 6 not in seeds
    assert _init_seeds(5, 2) == seeds[:2] and _init_seeds(5, 1) == [5]  # prefix-stable


@pytest.mark.parametrize("n_init", [0, 1.5, "2", 101])
def test_a_bad_n_init_is_refused_by_name(data, n_init):
    with pytest.raises(ValueError, match="n_init"):
        FeatureSelector(n_init=n_init).fit(*data)
