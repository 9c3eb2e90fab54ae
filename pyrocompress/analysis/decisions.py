r"""Decision rules on posterior inclusion probabilities: which groups or features to keep.

:func:`median_probability_model`
    Keep every one with PIP :math:`\ge 0.5` :cite:p:`barbieri2004optimal`: the model with the
    best predictions under squared loss in the linear case.
:func:`bayesian_fdr`
    The largest set :math:`\{j : \mathrm{PIP}_j \ge t\}` whose estimated false-discovery
    rate :math:`\widehat{\mathrm{FDR}}(S) = \frac{1}{|S|}\sum_{j \in S}(1 - \mathrm{PIP}_j)`
    is at most :math:`q` :cite:p:`newton2004detecting,muller2007fdr`.
:func:`top_k`
    The :math:`k` with the largest PIPs.

One implementation each, used by feature selection (:mod:`pyrocompress.selection`) and by
the PIP pruning rules (:mod:`pyrocompress.compress.rules`), which both come after the
analysis stage. The rules take NumPy scalars (``np.int64`` k, ``np.float32`` q) as well as
Python numbers.
"""

from __future__ import annotations

import numbers

import torch
from numpy.typing import ArrayLike

__all__ = ["FDR_TOLERANCE", "bayesian_fdr", "median_probability_model", "top_k"]

#: Rounding slack of the FDR comparison: a set whose estimated FDR is ``q`` up to float64
#: rounding of the running mean is still taken.
FDR_TOLERANCE = 1e-12


def _pip(pip: ArrayLike | torch.Tensor) -> torch.Tensor:
    """Return ``pip`` as a float64 vector, refusing values outside [0, 1] and NaN."""
    p = torch.as_tensor(pip, dtype=torch.float64).flatten()
    if p.numel() == 0 or not bool(((p >= 0) & (p <= 1)).all()):
        raise ValueError(
            "pip (the inclusion probabilities) must be a non-empty vector of values in [0, 1] "
            "with no NaN (the inclusion_probabilities of a Posterior or a fitted selector)"
        )
    return p


def median_probability_model(pip: ArrayLike | torch.Tensor, threshold: float = 0.5) -> list[int]:
    """Return the indices with inclusion probability at least ``threshold``, in order.

    At the default 0.5, the median-probability model of :cite:t:`barbieri2004optimal`; another
    threshold keeps the groups or features a stricter (or looser) cut-off on the PIP keeps.

    Parameters
    ----------
    pip
        Inclusion probabilities, a vector of values in [0, 1].
    threshold
        The PIP cut-off, in [0, 1].

    Returns
    -------
    list of int
        The selected indices.

    Raises
    ------
    ValueError
        If ``pip`` is empty or has values outside [0, 1] (or NaN), or ``threshold`` is
        not in [0, 1].
    """
    if isinstance(threshold, bool) or not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a PIP cut-off in [0, 1], got {threshold!r}")
    return torch.nonzero(_pip(pip) >= float(threshold)).flatten().tolist()


def bayesian_fdr(pip: ArrayLike | torch.Tensor, q: float = 0.1) -> tuple[list[int], float]:
    r"""Return the largest PIP-threshold set whose estimated Bayesian FDR is at most ``q``.

    The candidates are the sets :math:`S_t = \{j : \mathrm{PIP}_j \ge t\}`; the rule
    takes the largest one with
    :math:`\widehat{\mathrm{FDR}}(S_t) = \frac{1}{|S_t|}\sum_{j \in S_t}(1 - \mathrm{PIP}_j)
    \le q` :cite:p:`newton2004detecting{§3}`; :cite:p:`muller2007fdr`. Because the sets are
    thresholds on the PIP, features with equal PIPs are selected or left out together, whatever the
    order of the columns. The comparison allows
    :data:`~pyrocompress.analysis.decisions.FDR_TOLERANCE` of rounding, so a set whose estimated FDR
    is exactly ``q`` is taken.

    Parameters
    ----------
    pip
        Inclusion probabilities, a vector of values in [0, 1].
    q
        The FDR level, a real number in [0, 1) (Python or NumPy scalar); ``q = 0``
        selects only the features with PIP 1 (up to rounding).

    Returns
    -------
    selected : list of int
        The selected indices in increasing order.
    fdr : float
        Their estimated FDR (0 for the empty set).

    Raises
    ------
    ValueError
        If ``q`` is not a number in [0, 1), or ``pip`` is not a valid vector.
    """
    if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0.0 <= float(q) < 1.0:
        raise ValueError(f"the FDR level q must be a number in [0, 1), such as 0.1; got {q!r}")
    q = float(q)
    p = _pip(pip)
    order = torch.argsort(p, descending=True, stable=True)
    ranked = p[order]
    running = torch.cumsum(1.0 - ranked, 0) / torch.arange(1, len(p) + 1, dtype=p.dtype)
    # a set may end only where the PIP drops, so a tie is never split
    ends = torch.ones(len(p), dtype=torch.bool)
    ends[:-1] = ranked[:-1] > ranked[1:]
    ok = torch.nonzero((running <= q + FDR_TOLERANCE) & ends).flatten()
    if ok.numel() == 0:
        return [], 0.0
    k = int(ok.max()) + 1
    return sorted(order[:k].tolist()), float(running[k - 1])


def top_k(pip: ArrayLike | torch.Tensor, k: int) -> list[int]:
    """Return the ``k`` features with the largest inclusion probabilities (sorted indices).

    Ties at the ``k``-th largest PIP are broken in favour of the lower index.

    Parameters
    ----------
    pip
        Inclusion probabilities, a vector of values in [0, 1].
    k
        An integer in ``[0, len(pip)]`` (a Python or NumPy integer).

    Returns
    -------
    list of int
        The selected indices, in increasing order.

    Raises
    ------
    ValueError
        If ``k`` is out of range or ``pip`` is not a valid vector.
    """
    p = _pip(pip)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= int(k) <= len(p):
        raise ValueError(
            f"k must be an integer in [0, {len(p)}] (at most the number of features), got {k!r}"
        )
    return sorted(torch.argsort(p, descending=True, stable=True)[: int(k)].tolist())
