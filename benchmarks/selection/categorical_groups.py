"""Default feature selection with a categorical feature, a few seeds (issue 22, item 7).

The design of ``tests/selection/test_groups.py`` with every default of
``FeatureSelector()`` (spike-and-slab, hidden 50-20, the default training budget, the
median-probability rule): n = 600 rows; y = the effect of a 5-level categorical
``colour`` (levels shifted by -2, -1, 0, 1, 2) + x0 + x1 - x2 + N(0, 0.5²) noise; nulls:
ten standard-normal columns and a 4-level categorical ``shape``. The selector one-hot
encodes each categorical into one group. A seed succeeds when the selection is exactly
{colour, x0, x1, x2}.

Writes ``docs/results/categorical-groups.json`` and ``.md`` with the machine, the date and
the command.

Usage (from the project root)::

    .venv/bin/python benchmarks/selection/categorical_groups.py              # seeds 0, 1, 2
    .venv/bin/python benchmarks/selection/categorical_groups.py --seeds 0    # one seed
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pyrocompress.selection.estimator import FeatureSelector

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import provenance, write_results  # noqa: E402

TRUE = ["colour", "x0", "x1", "x2"]
LEVEL_EFFECTS = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])


def table(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the design's DataFrame and target (as in tests/selection/test_groups.py)."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 5, n)
    X = rng.normal(size=(n, 13))
    y = LEVEL_EFFECTS[colour] + X[:, 0] + X[:, 1] - X[:, 2] + 0.5 * rng.normal(size=n)
    df = pd.DataFrame(X, columns=["x0", "x1", "x2"] + [f"null{j}" for j in range(10)])
    names = np.array(["red", "green", "blue", "grey", "pink"])
    df.insert(1, "colour", pd.Categorical(names[colour]))
    df["shape"] = np.array(["round", "square", "oval", "star"])[rng.integers(0, 4, n)]
    return df, y


def main() -> None:
    """Fit the default selector on each seed's data and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        df, y = table(seed=seed)
        start = time.perf_counter()
        sel = FeatureSelector(random_state=seed).fit(df, y)
        seconds = time.perf_counter() - start
        pip = dict(zip(df.columns, sel.inclusion_probabilities_.round(4).tolist()))
        selected = list(sel.get_feature_names_out())
        rows.append(
            {
                "seed": seed,
                "selected": selected,
                "exact": sorted(selected) == sorted(TRUE),
                "pip_colour": pip["colour"],
                "pip_true_min": min(pip[k] for k in TRUE),
                "pip_null_max": max(p for k, p in pip.items() if k not in TRUE),
                "pip_shape": pip["shape"],
                "epochs": sel.history_.epoch[-1],
                "seconds": round(seconds, 1),
            }
        )
        print(rows[-1], flush=True)
    prov = provenance()
    lines = [
        "# Default selection with a categorical feature (issue 22, item 7)",
        "",
        __doc__.split("\n\n")[1],
        "",
        f"`{prov['command']}`, {prov['date']}, {prov['machine']}, commit {prov['commit']}.",
        "",
        "| seed | exact | PIP colour | min true PIP | max null PIP | PIP shape | epochs | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['seed']} | {r['exact']} | {r['pip_colour']:.3f} | {r['pip_true_min']:.3f} | "
        f"{r['pip_null_max']:.3f} | {r['pip_shape']:.3f} | {r['epochs']} | {r['seconds']} |"
        for r in rows
    ]
    write_results("categorical-groups", {"runs": rows, **prov}, lines)


if __name__ == "__main__":
    main()
