r"""How the columns of a table become the input columns of the selector's network.

A numeric (or boolean) column is one input column. A categorical, string or object column
of a pandas DataFrame with :math:`k` levels becomes :math:`k` one-hot columns, all of
them (no reference level is dropped: with one gate on the whole group no level is
privileged), tied into one group: one gate multiplies the weights of the :math:`k`
columns, so the feature is kept or dropped as a whole and has one inclusion probability
(the group selection of :cite:t:`yuan2006model`, with a gate per group as in
:cite:t:`louizos2017bayesian{§3}`). ``groups`` ties columns of the table further (a spline basis,
dummy codes of the user's own): every input column of a tied column joins its group.

pandas is imported only when a DataFrame is given (a NumPy array never needs it).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "InputEncoding",
    "build_encoding",
    "check_groups",
    "encode_frame",
    "is_frame",
    "non_numeric_columns",
]


def is_frame(X: object) -> bool:
    """Return whether ``X`` is a pandas DataFrame.

    pandas is not imported to answer: if it is not loaded, ``X`` cannot be one.
    """
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(X, pd.DataFrame)


def non_numeric_columns(X: Any) -> list[int]:
    """Return the positions of the columns of DataFrame ``X`` that are not numbers.

    Categorical, string, object (and any other non-numeric) columns are; numeric and
    boolean columns are not.
    """
    from pandas.api import types

    out = []
    for j in range(X.shape[1]):
        col = X.iloc[:, j]
        numeric = types.is_bool_dtype(col.dtype) or (
            types.is_numeric_dtype(col.dtype) and not isinstance(col.dtype, _categorical())
        )
        if not numeric:
            out.append(j)
    return out


def _categorical() -> type:
    import pandas as pd

    return pd.CategoricalDtype


@dataclass(frozen=True)
class InputEncoding:
    """The map from the columns of ``X`` to the network's input columns and their groups.

    Attributes
    ----------
    feature_names
        Name of each column of ``X`` (its DataFrame name, or ``x<j>``).
    levels
        The levels of each one-hot encoded column of ``X``, by its position.
    column_names
        Name of each input column: the feature's name, or ``"<feature>=<level>"``.
    column_features
        Position in ``X`` of the column each input column comes from.
    feature_groups
        Group id (``0..G-1``) of each column of ``X``.
    group_names
        Name of each group: its feature's name, or the label given in ``groups``.
    """

    feature_names: list[str]
    levels: dict[int, list[Any]]
    column_names: list[str]
    column_features: np.ndarray
    feature_groups: np.ndarray
    group_names: list[str]

    @property
    def column_groups(self) -> list[int]:
        """Group id of each input column (``bayesianize(..., groups=...)``)."""
        return self.feature_groups[self.column_features].tolist()

    @property
    def tied(self) -> bool:
        """Whether some group holds more than one input column."""
        return len(self.group_names) < len(self.column_names)


def check_groups(groups: object, n_features: int | None) -> tuple[np.ndarray, list[str]] | None:
    """Validate ``groups`` (one label per column of ``X``) and number its groups.

    Parameters
    ----------
    groups
        ``None``, or a 1-D array-like of ``n_features`` labels (strings or integers);
        columns with equal labels form one group.
    n_features
        The number of columns of ``X``; ``None`` checks the form only (before the data are
        read).

    Returns
    -------
    (ids, labels) or None
        The group id of each column, numbered ``0..G-1`` in order of first appearance,
        and each group's label as text; ``None`` when ``groups`` is ``None``.

    Raises
    ------
    ValueError
        If ``groups`` is not one label per column, or holds a missing value.
    """
    if groups is None:
        return None
    if isinstance(groups, str | bytes | dict):
        raise ValueError(
            "groups must be an array of group labels, one per column of X (e.g. "
            f"['age', 'spline', 'spline', ...]); got {type(groups).__name__}"
        )
    try:
        values = np.asarray(groups, dtype=object)
    except ValueError:  # ragged nesting
        values = np.empty(0, dtype=object).reshape(0, 0)
    if values.ndim != 1 or (n_features is not None and len(values) != n_features):
        columns = "" if n_features is None else f" ({n_features} columns)"
        raise ValueError(
            f"groups must hold one label per column of X{columns}; got shape "
            f"{values.shape}: give each column a label, equal labels tie columns"
        )
    for j, v in enumerate(values):
        if (
            v is None
            or (isinstance(v, float) and v != v)
            or not isinstance(v, str | int | float | np.generic)
        ):
            raise ValueError(
                f"groups[{j}] is {v!r}; every column needs a group label (a string or an "
                "integer), its own when it is not tied to another column"
            )
    ids: dict[Any, int] = {}
    column_ids = np.array([ids.setdefault(_plain(v), len(ids)) for v in values], dtype=np.int64)
    return column_ids, [str(label) for label in ids]


def _plain(value: Any) -> Any:
    """Return a NumPy scalar as the Python value it holds (equal labels compare equal)."""
    return value.item() if isinstance(value, np.generic) else value


def _levels(col: Any) -> list[Any]:
    """Return the observed levels of a non-numeric column (category order, or as text)."""
    import pandas as pd

    present = pd.unique(col.to_numpy())
    if isinstance(col.dtype, pd.CategoricalDtype):
        seen = set(present.tolist())
        return [c for c in col.dtype.categories.tolist() if c in seen]
    return sorted(present.tolist(), key=lambda v: (str(type(v)), str(v)))


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    rows = np.flatnonzero(mask).tolist()
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(map(str, rows[:limit])) + more


def encode_frame(X: Any, names: list[str]) -> tuple[list[np.ndarray], list[list[Any] | None]]:
    """One-hot encode the non-numeric columns of DataFrame ``X``.

    Parameters
    ----------
    X
        A pandas DataFrame.
    names
        The name of each column (for messages and the input columns' names).

    Returns
    -------
    (blocks, levels)
        The input columns of each column of ``X`` as a float64 array ``[n, k_j]`` (one
        column for a numeric or boolean column, one per level otherwise), and the levels
        of each one-hot encoded column (``None`` for a numeric one).

    Raises
    ------
    ValueError
        For a missing value in a non-numeric column (naming the column and its rows).
    """
    non_numeric = set(non_numeric_columns(X))
    n = X.shape[0]
    blocks: list[np.ndarray] = []
    levels: list[list[Any] | None] = []
    for j in range(X.shape[1]):
        col = X.iloc[:, j]
        if j not in non_numeric:
            blocks.append(col.to_numpy(dtype=np.float64, na_value=np.nan).reshape(n, 1))
            levels.append(None)
            continue
        missing = col.isna().to_numpy()
        if missing.any():
            raise ValueError(
                f"column {names[j]!r} of X has missing values (rows {_rows(missing)}); fill "
                "them with a level of their own (X[col].fillna('missing')) or drop those rows"
            )
        found = _levels(col)
        if len(found) > max(10, n // 2):
            warnings.warn(
                f"column {names[j]!r} of X has {len(found)} levels in {n} rows: it becomes "
                f"{len(found)} one-hot input columns; an identifier column should be dropped",
                UserWarning,
                stacklevel=4,
            )
        values = col.to_numpy()
        onehot = np.stack([values == level for level in found], axis=1).astype(np.float64)
        blocks.append(onehot)
        levels.append(found)
    return blocks, levels


def build_encoding(
    names: list[str], levels: Sequence[list[Any] | None] | None, groups: object
) -> InputEncoding:
    """Return the :class:`InputEncoding` of columns ``names`` with one-hot ``levels``.

    ``levels`` gives the levels of each one-hot encoded column (``None`` for a numeric
    one); ``None`` for all: every column numeric. Every column of ``X`` is its own group
    unless ``groups`` ties it to others (:func:`check_groups`).
    """
    checked = check_groups(groups, len(names))
    if checked is None:
        feature_groups, group_names = np.arange(len(names)), list(names)
    else:
        feature_groups, labels = checked
        # a group of one column keeps the column's name; a tie is named by its label
        sizes = np.bincount(feature_groups, minlength=len(labels))
        group_names = [
            names[int(np.flatnonzero(feature_groups == g)[0])] if sizes[g] == 1 else labels[g]
            for g in range(len(labels))
        ]
    if levels is None:
        levels = [None] * len(names)
    column_names: list[str] = []
    column_features: list[int] = []
    for j, (name, found) in enumerate(zip(names, levels, strict=True)):
        if found is None:
            column_names.append(name)
            column_features.append(j)
        else:
            column_names.extend(f"{name}={level}" for level in found)
            column_features.extend([j] * len(found))
    return InputEncoding(
        feature_names=list(names),
        levels={j: found for j, found in enumerate(levels) if found is not None},
        column_names=column_names,
        column_features=np.asarray(column_features, dtype=np.int64),
        feature_groups=np.asarray(feature_groups, dtype=np.int64),
        group_names=group_names,
    )
