"""FeatureSelector with groups of columns: a categorical (or text) column of a DataFrame is
one-hot encoded into one group with one gate, and ``groups=`` ties columns of X; PIPs,
get_support and transform are per column of X (each column carries its group's)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from pyrocompress.selection.encoding import build_encoding, check_groups
from pyrocompress.selection.estimator import FeatureSelector

#: Effect of each level of the true categorical feature on y.
LEVEL_EFFECTS = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])


def _mixed_table(n=600, seed=0):
    """y = level effect of `colour` (5 levels) + x0 + x1 - x2 + noise (sd 0.5); nulls:
    null0..null9 (numeric) and `shape` (4 levels)."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 5, n)
    X = rng.normal(size=(n, 13))
    y = LEVEL_EFFECTS[colour] + X[:, 0] + X[:, 1] - X[:, 2] + 0.5 * rng.normal(size=n)
    df = pd.DataFrame(X, columns=["x0", "x1", "x2"] + [f"null{j}" for j in range(10)])
    df.insert(
        1, "colour", pd.Categorical(np.array(["red", "green", "blue", "grey", "pink"])[colour])
    )
    df["shape"] = np.array(["round", "square", "oval", "star"])[rng.integers(0, 4, n)]
    return df, y


@pytest.fixture(scope="module")
def mixed_fit():
    df, y = _mixed_table()
    # a small budget (about 2 s) that separates true and null features by a wide margin:
    # true PIPs 0.999, null PIPs below 0.08 at this seed
    sel = FeatureSelector(hidden=(8,), epochs=150, batch_size=200, lr=0.03, random_state=0)
    sel.fit(df, y)
    return sel, df, y


def test_categorical_feature_is_one_group_and_nulls_are_dropped(mixed_fit):
    sel, df, _ = mixed_fit
    # one PIP per original column, in the DataFrame's order
    assert list(sel.feature_names_in_) == list(df.columns) and sel.n_features_in_ == 15
    pip = dict(zip(df.columns, sel.inclusion_probabilities_))
    assert len(sel.group_inclusion_probabilities_) == 15
    # seeded fit: the true features (colour as a whole) in, every null (shape too) out
    assert min(pip["colour"], pip["x0"], pip["x1"], pip["x2"]) > 0.9, pip
    assert max(p for k, p in pip.items() if k.startswith("null") or k == "shape") < 0.5, pip
    assert list(sel.get_feature_names_out()) == ["x0", "colour", "x1", "x2"]
    # the network reads the one-hot columns: all five levels of colour, four of shape
    names = sel.module_.feature_names
    levels = [f"colour={c}" for c in df["colour"].cat.categories]  # in category order
    assert [n for n in names if n.startswith("colour=")] == levels and len(levels) == 5
    assert len(names) == 13 + 5 + 4
    layer = next(iter(sel.module_.bayesian_layers().values()))
    assert layer.spec.num_groups == 15


def test_transform_of_a_dataframe_returns_the_selected_original_columns(mixed_fit):
    sel, df, _ = mixed_fit
    out = sel.transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["x0", "colour", "x1", "x2"]
    assert isinstance(out["colour"].dtype, pd.CategoricalDtype)  # dtypes kept
    pd.testing.assert_frame_equal(out, df[["x0", "colour", "x1", "x2"]])
    summary = sel.summary()
    assert summary["feature"].tolist() == list(df.columns)
    assert summary.loc[summary["selected"], "feature"].tolist() == ["x0", "colour", "x1", "x2"]


def test_transform_checks_the_columns(mixed_fit):
    sel, df, _ = mixed_fit
    with pytest.raises(ValueError, match="feature names"):
        sel.transform(df[df.columns[::-1]])


def _tied_data(n=300, seed=1):
    """y = x0 + x0^2 (a two-column basis of x0, tied) + x2; x3, x4 nulls."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    X = np.column_stack([x[:, 0], x[:, 0] ** 2, x[:, 1], x[:, 2], x[:, 3]])
    y = X[:, 0] + X[:, 1] + X[:, 2] + 0.3 * rng.normal(size=n)
    return X, y


def test_groups_tie_columns_into_one_pip():
    X, y = _tied_data()
    groups = ["basis", "basis", "x2", "x3", "x4"]
    sel = FeatureSelector(
        hidden=(), epochs=300, batch_size=300, lr=0.05, groups=groups, random_state=0
    ).fit(X, y)
    assert sel.group_names_ == ["basis", "x2", "x3", "x4"]
    assert sel.groups_.tolist() == [0, 0, 1, 2, 3]
    pip = sel.inclusion_probabilities_
    assert pip[0] == pip[1] == sel.group_inclusion_probabilities_[0]
    layer = next(iter(sel.module_.bayesian_layers().values()))
    assert layer.spec.column_groups == (0, 0, 1, 2, 3)
    support = sel.get_support()
    assert support[0] == support[1]  # kept or dropped together
    # seeded: the basis and x2 in, the nulls out
    assert support.tolist() == [True, True, True, False, False], pip
    np.testing.assert_array_equal(sel.transform(X), X[:, :3])
    # the summary names each column's group
    assert sel.summary()["group"].tolist() == ["basis", "basis", "x2", "x3", "x4"]
    # clone keeps the parameter
    assert clone(sel).get_params()["groups"] == groups


def test_groups_tie_a_categorical_with_other_columns():
    df, y = _mixed_table(n=120)
    groups = ["a", "a"] + [f"g{j}" for j in range(13)]  # x0 and colour tied
    sel = FeatureSelector(hidden=(), epochs=3, groups=groups).fit(df, y)
    layer = next(iter(sel.module_.bayesian_layers().values()))
    assert layer.spec.column_groups[:6] == (0,) * 6  # x0 and colour's five levels
    assert len(sel.group_inclusion_probabilities_) == 14
    assert sel.inclusion_probabilities_[0] == sel.inclusion_probabilities_[1]


def test_rules_count_groups():
    """top-k picks k groups: a tied group counts once."""
    X, y = _tied_data(n=80)
    sel = FeatureSelector(hidden=(), epochs=3, rule="top-k", k=2, groups=[0, 0, 1, 2, 3]).fit(X, y)
    assert len(set(sel.groups_[sel.get_support()])) == 2


@pytest.mark.parametrize(
    ("groups", "match"),
    [
        ([0, 0, 1], r"one label per column of X \(5 columns\)"),
        ([0, 0, 1, None, 2], r"groups\[3\] is None"),
        ([0, 0, 1, float("nan"), 2], r"groups\[3\] is nan"),
        ("aabcd", "an array of group labels"),
        ([[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]], "one label per column"),
    ],
)
def test_bad_groups_are_refused_before_training(groups, match):
    X, y = _tied_data(n=40)
    with pytest.raises(ValueError, match=match):
        FeatureSelector(epochs=1, groups=groups).fit(X, y)


@pytest.mark.parametrize("groups", ["aabcd", [0, None], [[0, 1], [2]]])
def test_the_form_of_groups_is_checked_before_the_data_are_read(groups):
    with pytest.raises(ValueError, match="groups"):
        FeatureSelector(groups=groups).fit("not data", None)


def test_missing_level_is_refused_with_its_rows():
    df, y = _mixed_table(n=50)
    df.loc[[3, 7], "shape"] = None
    with pytest.raises(ValueError, match=r"column 'shape' of X has missing values \(rows 3, 7\)"):
        FeatureSelector(epochs=1).fit(df, y)


def test_identifier_like_column_warns():
    df, y = _mixed_table(n=40)
    df["id"] = [f"id{i}" for i in range(40)]
    with pytest.warns(UserWarning, match="'id' of X has 40 levels in 40 rows"):
        FeatureSelector(epochs=1, hidden=()).fit(df, y)


def test_encoding_of_levels_and_groups():
    enc = build_encoding(["a", "b", "c"], [None, ["u", "v"], None], groups=None)
    assert enc.column_names == ["a", "b=u", "b=v", "c"]
    assert enc.column_groups == [0, 1, 1, 2] and enc.tied
    plain = build_encoding(["a", "b"], [None, None], groups=["p", "q"])
    assert not plain.tied and plain.group_names == ["a", "b"]  # singletons keep their names
    ids, labels = check_groups(np.array([3, 1, 3, 2]), 4)  # type: ignore[misc]
    assert ids.tolist() == [0, 1, 0, 2] and labels == ["3", "1", "2"]  # by first appearance


def test_numeric_input_is_unchanged_by_the_encoding():
    """All-numeric X: same input columns, no ties, sklearn's transform (a NumPy array)."""
    X, y = _tied_data(n=60)
    df = pd.DataFrame(X, columns=list("abcde"))
    sel = FeatureSelector(hidden=(), epochs=2).fit(df, y)
    assert sel.module_.feature_names == list("abcde")
    layer = next(iter(sel.module_.bayesian_layers().values()))
    assert layer.spec.column_groups is None
    assert isinstance(sel.transform(df), np.ndarray)
