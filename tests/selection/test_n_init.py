"""``FeatureSelector(n_init=...)``: several initialisations, the fit with the best ELBO kept."""

import numpy as np
import pytest

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


def test_the_best_of_several_initialisations_is_kept(data):
    X, y = data
    sel = FeatureSelector(n_init=3, **SMALL).fit(X, y)
    assert sel.init_elbos_.shape == (3,)
    assert sel.best_init_ == int(np.argmax(sel.init_elbos_))
    assert sel.elbo_ == sel.init_elbos_.max()
    # the kept network is the one whose ELBO was measured best (same draws, same value)
    Xt = (X - sel.x_mean_) / sel.x_scale_
    yt = (y - sel.y_mean_) / sel.y_scale_
    import torch

    data_t = (torch.as_tensor(Xt, dtype=torch.float32), torch.as_tensor(yt, dtype=torch.float32))
    assert elbo_estimate(sel.module_, data_t, num_particles=200, seed=7).mean == sel.elbo_
    # the initialisations differ: distinct starting points reach distinct ELBOs
    assert len(set(sel.init_elbos_.round(6))) == 3


def test_the_first_initialisation_is_the_single_fit(data):
    X, y = data
    one = FeatureSelector(**SMALL).fit(X, y)
    assert one.elbo_ is None and one.init_elbos_ is None and one.best_init_ == 0
    two = FeatureSelector(n_init=2, **SMALL).fit(X, y)
    Xt = (X - one.x_mean_) / one.x_scale_
    yt = (y - one.y_mean_) / one.y_scale_
    import torch

    data_t = (torch.as_tensor(Xt, dtype=torch.float32), torch.as_tensor(yt, dtype=torch.float32))
    first = elbo_estimate(one.module_, data_t, num_particles=200, seed=7).mean
    assert two.init_elbos_[0] == first


def test_init_seeds():
    assert _init_seeds(None, 3) == [None, None, None]
    seeds = _init_seeds(5, 4)
    assert seeds[0] == 5 and len(set(seeds)) == 4 and 6 not in seeds
    assert _init_seeds(5, 4) == seeds and _init_seeds(5, 1) == [5]


@pytest.mark.parametrize("n_init", [0, 1.5, "2", 101])
def test_a_bad_n_init_is_refused_by_name(data, n_init):
    with pytest.raises(ValueError, match="n_init"):
        FeatureSelector(n_init=n_init).fit(*data)
