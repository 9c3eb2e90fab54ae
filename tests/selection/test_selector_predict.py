"""FeatureSelector as a model: predict, predict_proba, score and cross-validation (issue 27).

The budgets are tiny (a linear model, a few dozen full-batch steps): the tests check the
plumbing (preprocessing, units, label order, the scikit-learn contract), not accuracy,
except where a seeded fit is asked to beat a trivial predictor by a wide margin.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import cross_val_score

from pyrocompress.selection.estimator import FeatureSelector

#: A linear model trained for 60 full-batch steps, no pre-training.
FAST = {"hidden": (), "epochs": 60, "batch_size": 1000, "lr": 0.05, "pretrain_epochs": 0}


def _regression(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = 3.0 + 2.0 * X[:, 0] - 1.0 * X[:, 1] + 0.3 * rng.normal(size=n)
    return X, y


def _classes(n=120, seed=0, labels=("low", "mid", "high")):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    score = 2.5 * X[:, 0]
    codes = np.digitize(score, [-1.0, 1.0]) if len(labels) == 3 else (score > 0).astype(int)
    return X, np.asarray(labels, dtype=object)[codes]


@pytest.fixture(scope="module")
def regressor():
    X, y = _regression()
    return FeatureSelector(**FAST).fit(X, y), X, y


def test_regression_predicts_in_the_units_of_y(regressor):
    sel, X, y = regressor
    pred = sel.predict(X)
    assert pred.shape == (120,) and pred.dtype == np.float64
    assert sel.score(X, y) == pytest.approx(r2_score(y, pred))
    assert sel.score(X, y) > 0.8  # y's sd is 2.3, its noise 0.3: far from the mean's 0
    mean, std = sel.predict(X, return_std=True)
    np.testing.assert_allclose(mean, pred)
    # sd in y's units, the noise included: about 0.3 for a good fit, never below
    # the fitted noise scale
    noise = sel.module_.likelihood.noise.item() * sel.y_scale_
    assert (std >= noise * (1 - 1e-5)).all() and np.median(std) < 1.0
    assert not hasattr(sel, "predict_proba")
    with pytest.raises(AttributeError, match="predict_proba") as info:
        sel.predict_proba(X)
    assert "this selector does regression" in str(info.value.__cause__)  # says why


def test_predictions_follow_the_selectors_own_standardisation(regressor):
    """Fitted on X in other units (times 1000, shifted), the selector standardises them to
    the same network inputs, so it predicts the same (up to float32 rounding)."""
    sel, X, y = regressor
    other = FeatureSelector(**FAST).fit(1000.0 * X - 5.0, y)
    np.testing.assert_allclose(other.predict(1000.0 * X - 5.0), sel.predict(X), rtol=1e-4)


def test_predict_is_seeded_and_leaves_the_callers_state(regressor):
    sel, X, _ = regressor
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    first = sel.predict(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()
    np.testing.assert_array_equal(sel.predict(X), first)  # deterministic
    np.testing.assert_array_equal(sel.predict(X[10:20]), first[10:20])  # row by row


@pytest.mark.parametrize("labels", [("no", "yes"), ("low", "mid", "high")])
def test_classification_probabilities_follow_classes_(labels):
    X, y = _classes(labels=labels)
    sel = FeatureSelector(**FAST).fit(X, y)
    assert list(sel.classes_) == sorted(labels)
    proba = sel.predict_proba(X)
    assert proba.shape == (120, len(labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    pred = sel.predict(X)
    np.testing.assert_array_equal(pred, sel.classes_[proba.argmax(axis=1)])
    assert sel.score(X, y) == pytest.approx(accuracy_score(y, pred))
    assert sel.score(X, y) > 0.8  # one strong feature; the largest class is at most 0.5
    with pytest.raises(ValueError, match="return_std is for regression"):
        sel.predict(X, return_std=True)
    # the uncertainty of the probabilities is in predictive()
    full = sel.predictive(X)
    assert full.sd.shape == (120, len(labels)) and full.num_samples == sel.predict_samples


def test_cross_val_score_runs_on_the_selector():
    X, y = _regression(n=60)
    scores = cross_val_score(FeatureSelector(**FAST), X, y, cv=3)
    assert scores.shape == (3,) and (scores > 0.5).all()
    Xc, yc = _classes(n=60, labels=("no", "yes"))
    acc = cross_val_score(FeatureSelector(**FAST), Xc, yc, cv=3)
    assert acc.shape == (3,) and np.isfinite(acc).all() and (acc >= 0).all()


def test_a_dataframe_with_a_categorical_column_is_encoded_as_in_fit():
    rng = np.random.default_rng(0)
    n = 90
    colour = rng.choice(["red", "green", "blue"], size=n)
    x = rng.normal(size=n)
    y = x + np.where(colour == "red", 2.0, 0.0) + 0.2 * rng.normal(size=n)
    df = pd.DataFrame({"x": x, "colour": pd.Categorical(colour)})
    sel = FeatureSelector(**FAST).fit(df, y)
    assert sel.score(df, y) > 0.8
    red = pd.DataFrame({"x": [0.0, 0.0], "colour": pd.Categorical(["red", "blue"])})
    gap = np.diff(sel.predict(red))[0]  # blue minus red: about -2
    assert -2.6 < gap < -1.4
    with pytest.warns(UserWarning, match="not seen in fit"):
        sel.predict(pd.DataFrame({"x": [0.0], "colour": ["purple"]}))
    with pytest.raises(ValueError, match="non-numeric columns"):
        sel.predict(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="missing values"):
        sel.predict(pd.DataFrame({"x": [0.0], "colour": pd.Categorical([None])}))


def test_predict_checks_its_input_and_parameters(regressor):
    sel, X, _ = regressor
    with pytest.raises(ValueError, match="4 features"):
        sel.predict(X[:, :3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = X.copy()
        bad[0, 0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            sel.predict(bad)
    with pytest.raises(ValueError, match="predict_samples must be at least 2"):
        FeatureSelector(predict_samples=1).fit(X, X[:, 0])


def test_effects_of_a_linear_multiclass_selector_are_per_class_and_refused_with_hidden_layers():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 3))
    y = np.digitize(2 * X[:, 0], [-1.0, 1.0])  # three ordered classes driven by column 0
    sel = FeatureSelector(hidden=(), epochs=300, random_state=0, progress=False).fit(X, y)
    effects = sel.effects()
    assert effects["classes"] == [0, 1, 2] and effects["units"].startswith("each class's logit")
    first = effects["columns"]["x0"]
    assert len(first["mean"]) == 3 and all(s > 0 for s in first["sd"])
    assert first["mean"][2] - first["mean"][0] > 1.0  # class 2 rises with x0, class 0 falls
    deep = FeatureSelector(hidden=(3,), epochs=2, random_state=0, progress=False).fit(X, y)
    with pytest.raises(ValueError, match="linear model"):
        deep.effects()
