import math

import pytest
import torch

from pyrocompress.data import (
    simulate_bai2020,
    simulate_sun2021,
    simulate_sun2021_classification,
)
from pyrocompress.selection import (
    bayesian_fdr,
    median_probability_model,
    selection_metrics,
    top_k,
)


def test_median_probability_model_and_top_k():
    pip = [0.9, 0.2, 0.5, 0.49, 0.99]
    assert median_probability_model(pip) == [0, 2, 4]
    assert top_k(pip, 2) == [0, 4]
    assert top_k(pip, 0) == []
    with pytest.raises(ValueError, match="k must be"):
        top_k(pip, 6)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        median_probability_model([0.5, 1.2])


def test_bayesian_fdr_takes_the_largest_set_under_q():
    pip = torch.tensor([0.99, 0.95, 0.9, 0.6, 0.1])
    # running mean of 1 - PIP in PIP order: 0.01, 0.03, 0.0533, 0.14, 0.292
    selected, fdr = bayesian_fdr(pip, q=0.1)
    assert selected == [0, 1, 2] and fdr == pytest.approx(0.16 / 3)
    assert bayesian_fdr(pip, q=0.15)[0] == [0, 1, 2, 3]
    assert bayesian_fdr(pip, q=0.0) == ([], 0.0)
    with pytest.raises(ValueError, match="FDR level"):
        bayesian_fdr(pip, q=1.5)


def test_selection_metrics():
    m = selection_metrics([0, 1, 7], truth=[0, 1, 2], num_features=10)
    assert m["tpr"] == pytest.approx(2 / 3)
    assert m["fpr"] == pytest.approx(1 / 7)
    assert m["fdr"] == pytest.approx(1 / 3)
    assert m["mcc"] == pytest.approx((2 * 6 - 1 * 1) / math.sqrt(3 * 3 * 7 * 7))
    perfect = selection_metrics([0, 1, 2], [0, 1, 2], 10)
    assert perfect == {"tpr": 1.0, "fpr": 0.0, "fdr": 0.0, "mcc": 1.0}
    assert selection_metrics([], [0], 5)["fdr"] == 0.0
    with pytest.raises(ValueError, match="feature indices"):
        selection_metrics([12], [0], 10)


def test_bai2020_design():
    X, y = simulate_bai2020(n=20000, p=8, seed=1)
    assert X.shape == (20000, 8) and y.shape == (20000,)
    assert float(X.min()) >= -1 and float(X.max()) <= 1
    signal = 7 * X[:, 1] / (1 + X[:, 0] ** 2) + 5 * torch.sin(X[:, 2] * X[:, 3]) + 2 * X[:, 4]
    resid = y - signal
    # the noise is N(0, 1): mean within 4 standard errors, variance within 4 of its se
    assert abs(resid.mean()) < 4 / math.sqrt(20000)
    assert abs(resid.var() - 1) < 4 * math.sqrt(2 / 20000)
    X2, y2 = simulate_bai2020(n=20000, p=8, seed=1)
    assert torch.equal(X, X2) and torch.equal(y, y2)


def test_sun2021_designs_have_correlation_one_half():
    X, y = simulate_sun2021(n=20000, p=6, seed=0)
    c = torch.corrcoef(X.T)
    off = c[~torch.eye(6, dtype=torch.bool)]
    # se of a sample correlation near 0.5 is (1 - 0.25) / sqrt(n)
    assert (off - 0.5).abs().max() < 4 * 0.75 / math.sqrt(20000)
    assert y.shape == (20000,)
    Xc, yc = simulate_sun2021_classification(n=5000, p=5, seed=0)
    assert yc.dtype == torch.int64 and set(yc.unique().tolist()) == {0, 1}
    score = torch.exp(Xc[:, 0]) + Xc[:, 1] ** 2 + 5 * torch.sin(Xc[:, 2] * Xc[:, 3]) - 3
    assert torch.equal(yc, (score > 0).long())
    with pytest.raises(ValueError, match="p must be"):
        simulate_sun2021(n=10, p=3)
