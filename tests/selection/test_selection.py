"""Selection rules (median, Bayesian FDR, top-k), their metrics, and the simulation
designs of Bai, Song & Cheng (2020) and Sun, Song & Liang (2021)."""

import math

import numpy as np
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


def test_bayesian_fdr_on_unsorted_probabilities():
    # the PIPs of the test above, shuffled: by PIP the order is x1, x4, x3, x0, x2
    pip = [0.6, 0.99, 0.1, 0.9, 0.95]
    # running mean of 1 - PIP: 0.01, 0.03, 0.16/3 = 0.0533, 0.56/4 = 0.14, 1.46/5 = 0.292
    assert bayesian_fdr(pip, q=0.1) == ([1, 3, 4], pytest.approx(0.16 / 3))
    assert bayesian_fdr(pip, q=0.02) == ([1], pytest.approx(0.01))
    assert bayesian_fdr(pip, q=0.2) == ([0, 1, 3, 4], pytest.approx(0.14))
    assert bayesian_fdr(pip, q=0.5) == ([0, 1, 2, 3, 4], pytest.approx(0.292))


def test_bayesian_fdr_takes_the_set_whose_fdr_is_exactly_q():
    # running mean of 1 - PIP: 0.25, 0.5; 0.25 = 0.5 * (0.25 + 0.75) exactly in binary
    pip = [0.75, 0.25]
    assert bayesian_fdr(pip, q=0.25) == ([0], 0.25)
    assert bayesian_fdr(pip, q=0.25 - 1e-9) == ([], 0.0)
    # FDR q up to rounding: in float64 1 - 0.7 = 0.30000000000000004 > 0.3
    assert 1 - 0.7 > 0.3
    assert bayesian_fdr([0.7, 0.7], q=0.3)[0] == [0, 1]


def test_bayesian_fdr_at_level_zero_selects_only_certain_features():
    assert bayesian_fdr([1.0, 0.999, 1.0, 0.2], q=0.0) == ([0, 2], 0.0)
    assert bayesian_fdr([0.999, 0.2], q=0.0) == ([], 0.0)


def test_bayesian_fdr_keeps_or_drops_ties_together():
    # running mean: 0.1, (0.1 + 0.4) / 2 = 0.25, (0.1 + 0.8) / 3 = 0.3. At q = 0.25 the
    # pair could end at 0.25 after one of the tied 0.6's, but the set is a PIP threshold
    pip = [0.6, 0.9, 0.6]
    assert bayesian_fdr(pip, q=0.25) == ([1], pytest.approx(0.1))
    assert bayesian_fdr(pip, q=0.3) == ([0, 1, 2], pytest.approx(0.3))
    # whatever the column order
    assert bayesian_fdr([0.9, 0.6, 0.6], q=0.25) == ([0], pytest.approx(0.1))
    assert bayesian_fdr([0.8, 0.8, 0.8], q=0.2) == ([0, 1, 2], pytest.approx(0.2))


def test_top_k_breaks_ties_by_index():
    assert top_k([0.5, 0.9, 0.5, 0.5], 2) == [0, 1]
    assert top_k([0.5, 0.9, 0.5, 0.5], 4) == [0, 1, 2, 3]


def test_rules_take_numpy_scalars():
    pip = np.array([0.6, 0.99, 0.1, 0.9, 0.95])
    assert top_k(pip, np.int64(2)) == [1, 4]
    assert top_k(pip, np.int32(0)) == []
    selected, fdr = bayesian_fdr(pip, q=np.float32(0.1))
    assert selected == [1, 3, 4] and isinstance(fdr, float)
    assert bayesian_fdr(pip, q=np.float64(0.02))[0] == [1]


@pytest.mark.parametrize("k", [True, 2.0, "2", np.int64(-1), 6, None])
def test_top_k_refuses_a_bad_k(k):
    with pytest.raises(ValueError, match=r"k must be an integer in \[0, 5\]"):
        top_k([0.6, 0.99, 0.1, 0.9, 0.95], k)


@pytest.mark.parametrize("q", [True, -0.1, 1.0, np.float32(1.5), float("nan"), "0.1", None])
def test_bayesian_fdr_refuses_a_bad_level(q):
    with pytest.raises(ValueError, match=r"FDR level q must be a number in \[0, 1\)"):
        bayesian_fdr([0.5, 0.9], q=q)


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
    X3, y3 = simulate_bai2020(n=20000, p=8, seed=2)
    assert not torch.equal(X, X3) and not torch.equal(y, y3)


#: Sample size of the Sun et al. (2021) checks; every tolerance is 4 standard errors.
N_SUN = 20000


def _sun_signal(X):
    """The regression function of Sun et al. (2021): 5 x2 / (1 + x1^2) + 5 sin(x3 x4) + 2 x5
    (the paper's x1..x5 are columns 0..4)."""
    return 5 * X[:, 1] / (1 + X[:, 0] ** 2) + 5 * torch.sin(X[:, 2] * X[:, 3]) + 2 * X[:, 4]


def test_sun2021_response_is_the_formula_plus_standard_normal_noise():
    X, y = simulate_sun2021(n=N_SUN, p=6, seed=0)
    assert X.shape == (N_SUN, 6) and y.shape == (N_SUN,)
    resid = (y - _sun_signal(X)).double()
    # N(0, 1) noise: se of the mean is 1/sqrt(n), se of the sample variance sqrt(2/n)
    assert abs(float(resid.mean())) < 4 / math.sqrt(N_SUN)
    assert abs(float(resid.var()) - 1) < 4 * math.sqrt(2 / N_SUN)
    # the noise scale is a parameter: noise=0 leaves the formula exactly
    X0, y0 = simulate_sun2021(n=100, p=6, noise=0.0, seed=0)
    assert torch.equal(y0, _sun_signal(X0))


def test_sun2021_inputs_have_unit_variance_and_correlation_one_half():
    """x_j = (e + z_j)/sqrt(2) with e, z_j ~ N(0, 1): Var x_j = 1, corr(x_j, x_k) = 0.5."""
    X, _ = simulate_sun2021(n=N_SUN, p=6, seed=0)
    var = X.double().var(0)
    # se of a sample variance of N(0, 1) is sqrt(2 / n)
    assert (var - 1).abs().max() < 4 * math.sqrt(2 / N_SUN), var
    assert X.double().mean(0).abs().max() < 4 / math.sqrt(N_SUN)
    c = torch.corrcoef(X.double().T)
    off = c[~torch.eye(6, dtype=torch.bool)]
    # se of a sample correlation near rho = 0.5 is (1 - rho^2) / sqrt(n)
    assert (off - 0.5).abs().max() < 4 * 0.75 / math.sqrt(N_SUN), off


@pytest.mark.parametrize("simulate", [simulate_sun2021, simulate_sun2021_classification])
def test_sun2021_seeds(simulate):
    X, y = simulate(n=500, p=6, seed=3)
    X2, y2 = simulate(n=500, p=6, seed=3)
    assert torch.equal(X, X2) and torch.equal(y, y2)
    X3, y3 = simulate(n=500, p=6, seed=4)
    assert not torch.equal(X, X3) and not torch.equal(y, y3)
    with pytest.raises(ValueError, match="p must be"):
        simulate(n=10, p=3)


def test_sun2021_classification_labels_follow_the_formula_exactly():
    Xc, yc = simulate_sun2021_classification(n=5000, p=5, seed=0)
    assert Xc.shape == (5000, 5) and yc.shape == (5000,)
    assert yc.dtype == torch.int64 and set(yc.unique().tolist()) == {0, 1}
    score = torch.exp(Xc[:, 0]) + Xc[:, 1] ** 2 + 5 * torch.sin(Xc[:, 2] * Xc[:, 3]) - 3
    assert torch.equal(yc, (score > 0).long())
    # the inputs are those of the regression design with the same seed
    assert torch.equal(Xc, simulate_sun2021(n=5000, p=5, seed=0)[0])
    assert (Xc.double().var(0) - 1).abs().max() < 4 * math.sqrt(2 / 5000)
