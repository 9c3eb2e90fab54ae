"""``pyrocompress select`` on a CSV with text columns: each is one-hot encoded into one
group (one gate, one PIP) and the report names the CSV's columns; text in a numeric column
and missing labels are refused with one line and exit code 2."""

from __future__ import annotations

import numpy as np
import pytest

from pyrocompress.cli import main


def _table(path, n=200, seed=0):
    """y = level effect of `colour` (4 levels) + 2 age + noise; `dose` and `shape` nulls."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 4, n)
    shape = rng.integers(0, 3, n)
    age, dose = rng.normal(size=(2, n))
    y = np.array([-2.0, -1.0, 1.0, 2.0])[colour] + 2 * age + 0.3 * rng.normal(size=n)
    colours = np.array(["red", "green", "blue", "grey"])[colour]
    shapes = np.array(["round", "square", "star"])[shape]
    rows = ["age,colour,dose,shape,outcome"]
    rows += [
        f"{a:.6g},{c},{d:.6g},{s},{t:.6g}"
        for a, c, d, s, t in zip(age, colours, dose, shapes, y, strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def fitted_selectors(monkeypatch):
    """The FeatureSelector instances that `pyrocompress select` fits, in order."""
    from pyrocompress.cli import app as cli

    made = []

    class Recorded(cli.FeatureSelector):
        def fit(self, X, y):
            made.append(self)
            return super().fit(X, y)

    monkeypatch.setattr(cli, "FeatureSelector", Recorded)
    return made


def test_select_encodes_text_columns_as_groups(tmp_path, capsys, fitted_selectors):
    csv = _table(tmp_path / "t.csv")
    args = ["select", "--csv", str(csv), "--target", "outcome", "--hidden", "0"]
    assert main([*args, "--epochs", "2", "--quiet"]) == 0  # no --out: no plot to draw
    (sel,) = fitted_selectors
    # the report (selection.json is the summary) names the CSV's columns, one PIP each
    selection = sel.summary_dict()
    assert selection["features"] == ["age", "colour", "dose", "shape"]
    assert set(selection["inclusion_probabilities"]) == set(selection["features"])
    printed = capsys.readouterr().out
    assert "of 4 features" in printed and "colour=" not in printed
    assert sel.module_.feature_names == [
        "age",
        "colour=blue",
        "colour=green",
        "colour=grey",
        "colour=red",
        "dose",
        "shape=round",
        "shape=square",
        "shape=star",
    ]  # levels sorted as text
    layer = next(iter(sel.module_.bayesian_layers().values()))
    assert layer.spec.column_groups == (0, 1, 1, 1, 1, 2, 3, 3, 3)


BAD = {
    "text in a numeric column": (
        "a,b,y\n1,2,3\n4,x,6\n7,8,9\n",
        "feature column 'b' is numeric but for value 'x' in data row 2",
    ),
    "missing label": (
        "a,b,y\n1,red,3\n4,,6\n7,blue,9\n",
        "feature column 'b' has missing values in data row(s) 2",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_select_refuses_bad_text_columns_with_one_line(tmp_path, capsys, case):
    text, message = BAD[case]
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    code = main(["select", "--csv", str(csv), "--target", "y", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_a_wide_table_is_read_without_a_fragmentation_warning(tmp_path):
    import warnings

    import pandas as pd

    from pyrocompress.cli.app import _load_table

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20, 150)), columns=[f"x{j}" for j in range(150)])
    frame["colour"] = rng.choice(["red", "blue"], size=20)
    frame["y"] = rng.normal(size=20)
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        X, y = _load_table(str(path), "y")
    assert list(X.columns) == [*(f"x{j}" for j in range(150)), "colour"]
    assert X["colour"].tolist() == frame["colour"].tolist() and len(y) == 20
