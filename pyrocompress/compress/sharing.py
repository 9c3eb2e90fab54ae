r"""Weight sharing: per-layer k-means codebooks sized by the posterior, as the bit widths are.

:cite:t:`louizos2017bayesian{"maximum compression" column}` report, on top of the bit widths, the
compression of weight sharing: each layer's kept weights are clustered and every weight is
replaced by its cluster's centre, so that a weight costs the index of its centre
(:math:`\lceil\log_2 K\rceil` bits, fewer after entropy coding) and the layer a codebook of
:math:`K` floats (:cite:t:`han2016deep{§3}`: k-means with a linear
initialisation, which their experiments found best because it keeps the few large
weights).

The codebook size is chosen from the posterior, as the bit widths are
(:meth:`~pyrocompress.Posterior.bit_precision`), and with the same budget: rounding a
layer's weights to the fixed-point grid :math:`\delta = 2^{-t}` of its :math:`t` mantissa
bits moves them by a mean squared error :math:`D_t` (about :math:`\delta^2/12`), and the
codebook is the smallest :math:`K` whose k-means distortion stays within it,

.. math::

    \frac1n \sum_i (w_i - c_{z_i})^2 \le D_t = \frac1n \sum_i
    \bigl(w_i - \delta \lfloor w_i/\delta + \tfrac12 \rfloor\bigr)^2 ,

so that the shared network is as close to the posterior mean as the quantised one
(:cite:t:`louizos2017bayesian{§4}` choose :math:`t` from the posterior variance), but with the
:math:`K` values k-means places where the weights are instead of every grid point between
the extremes. A layer the posterior pins down tightly (large :math:`t`) gets a large
codebook, a noisy one a small one. The clustering is deterministic (linear
initialisation, Lloyd iterations), so the same network and budgets give the same
codebooks; sizes of about :math:`\sqrt2` apart (1, 2, 3, 4, 6, 8, 12, ...) are all tried
and the one with the fewest centres within the budget is kept, so that a larger budget
never gives a larger codebook.

What to expect: at the same mean squared error, a uniform grid whose values are
entropy-coded is within a fraction of a bit of the best scalar quantiser at high rates
:cite:p:`gish1968asymptotically`, and the packed file Huffman-codes the grid's values; sharing saves
distinct values, not bits, and pays 4 bytes for each centre. Measured
(``docs/results/deployable-files.md``), the shared file is no smaller than the packed
one; it is the representation to use where a runtime wants a lookup table.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["kmeans_1d", "share_weights"]


def kmeans_1d(x: np.ndarray, k: int, *, iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the values ``x`` into at most ``k`` centres by Lloyd's algorithm.

    The centres start evenly spaced over ``[min x, max x]`` (the linear initialisation of
    :cite:t:`han2016deep{§3.2}`); in one dimension the assignment is a search among the sorted
    centres' midpoints. Empty clusters are dropped.

    Parameters
    ----------
    x
        The values, any shape.
    k
        The largest number of centres, at least 1.
    iters
        The most Lloyd iterations; it stops earlier when no assignment changes.

    Returns
    -------
    centres : numpy.ndarray
        The sorted centres (float64), at most ``k``.
    index : numpy.ndarray
        Each value's centre, the shape of ``x``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        return np.zeros(0), np.zeros(np.shape(x), dtype=np.int64)
    distinct = np.unique(flat)
    if len(distinct) <= k:  # every value is its own centre
        return distinct, np.searchsorted(distinct, flat).reshape(np.shape(x))
    centres = np.linspace(flat.min(), flat.max(), k)
    index = np.full(flat.size, -1)
    for _ in range(iters):
        new = np.searchsorted((centres[1:] + centres[:-1]) / 2, flat)
        if np.array_equal(new, index):
            break
        index = new
        counts = np.bincount(index, minlength=len(centres))
        sums = np.bincount(index, weights=flat, minlength=len(centres))
        used = counts > 0
        centres = sums[used] / counts[used]
        index = np.cumsum(used)[index] - 1  # renumber after dropping empty clusters
    return centres, index.reshape(np.shape(x))


def share_weights(
    module: nn.Module, budgets: Mapping[str, float], *, max_bits: int = 8
) -> tuple[nn.Module, dict[str, int]]:
    r"""Return a copy of ``module`` with each named weight replaced by its k-means codebook.

    For each state entry named in ``budgets`` (e.g. ``"1.weight"``), the codebook size is
    the smallest :math:`K \le 2^{\text{max\_bits}}` (of sizes about :math:`\sqrt2`
    apart) whose k-means distortion (mean squared change of the entries) is at most the
    budget (module docstring), or :math:`2^{\text{max\_bits}}` when none is. Other
    tensors (biases, norms) are kept.

    Parameters
    ----------
    module
        The compact network (for instance ``prune(...).module``).
    budgets
        The largest mean squared change of each shared weight tensor, by state key
        (:meth:`~pyrocompress.PruneResult.share` passes the mean squared error of rounding
        each layer to its fixed-point grid).
    max_bits
        The largest index width, 1 to 16: at most :math:`2^{\text{max\_bits}}` values.

    Returns
    -------
    module : torch.nn.Module
        The shared network: a deep copy whose shared weights take at most :math:`K`
        distinct values each; :func:`~pyrocompress.save_packed` stores them as codebooks.
    sizes : dict of str to int
        The number of distinct values (centres) of each shared tensor.

    Raises
    ------
    ValueError
        If a key is not a floating tensor of ``module``'s state, a budget is not a finite
        non-negative number, or ``max_bits`` is out of range.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3))
    >>> shared, sizes = share_weights(net, {"0.weight": 1e-2}, max_bits=2)
    >>> sizes["0.weight"] <= 4, int(shared[0].weight.unique().numel()) == sizes["0.weight"]
    (True, True)
    """
    if isinstance(max_bits, bool) or not isinstance(max_bits, int) or not 1 <= max_bits <= 16:
        raise ValueError(f"max_bits must be an integer from 1 to 16, got {max_bits!r}")
    state = module.state_dict()
    for key, budget in budgets.items():
        if key not in state or not state[key].is_floating_point():
            raise ValueError(
                f"budgets names {key!r}, which is not a floating tensor of the module's state"
            )
        if (
            isinstance(budget, bool)
            or not isinstance(budget, (int, float))
            or not np.isfinite(budget)
            or budget < 0
        ):
            raise ValueError(f"the budget of {key!r} must be a finite number >= 0, got {budget!r}")
    out = copy.deepcopy(module)
    sizes: dict[str, int] = {}
    new_state = out.state_dict()
    with torch.no_grad():
        for key, budget in budgets.items():
            w = state[key].detach().cpu().double().numpy()
            centres, index = _smallest_codebook(w, budget, 2**max_bits)
            shared = centres.astype(np.float32)[index]
            new_state[key].copy_(torch.from_numpy(shared).to(new_state[key].dtype))
            sizes[key] = len(np.unique(shared))
    return out, sizes


def _candidates(most: int) -> list[int]:
    """Codebook sizes tried: 1, 2, 3, 4, 6, 8, 12, ... up to ``most`` (steps of about √2)."""
    sizes, k = {1, most}, 2
    while k < most:
        sizes.update((k, k + k // 2))
        k *= 2
    return sorted(x for x in sizes if x <= most)


def _smallest_codebook(w: np.ndarray, budget: float, most: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the k-means codebook with the fewest centres within ``budget``.

    Every size of :func:`_candidates` is fitted and the fit with the fewest actual
    centres kept, so that a larger budget never gives a larger codebook: Lloyd's
    iterations drop empty clusters, so a fit of ``k`` may hold fewer centres than a fit of
    a smaller ``k``, and the first size within the budget is not always the smallest
    codebook. When no codebook is within the budget, the largest is returned.
    """
    fitted = [kmeans_1d(w, k) for k in _candidates(min(most, max(1, len(np.unique(w)))))]
    within = [(c, i) for c, i in fitted if np.mean((w - c[i]) ** 2) <= budget]
    if not within:
        return fitted[-1]
    return min(within, key=lambda ci: len(ci[0]))
