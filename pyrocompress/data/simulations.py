"""Simulation designs of :cite:t:`bai2020efficient` and :cite:t:`sun2021consistent`."""

from __future__ import annotations

import math

import torch


# ---------------------------------------------------------------- simulation designs
def _check_size(n: int, p: int, minimum_p: int) -> None:
    for name, value, low in (("n", n, 2), ("p", p, minimum_p)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def simulate_bai2020(
    n: int = 3000, p: int = 200, *, noise: float = 1.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Simulate the feature-selection design of :cite:t:`bai2020efficient{§5}`.

    :math:`x \sim U(-1, 1)^p`,
    :math:`y = 7x_2/(1 + x_1^2) + 5\sin(x_3x_4) + 2x_5 + \varepsilon`,
    :math:`\varepsilon \sim N(0, \text{noise}^2)`; the relevant inputs are the first five
    (the paper's :math:`x_1, \dots, x_5` are columns 0..4).

    Parameters
    ----------
    n, p
        Number of rows (at least 2) and of inputs (at least 5).
    noise
        Standard deviation of :math:`\varepsilon`.
    seed
        Seed of a private :class:`torch.Generator`: the same seed gives the same data,
        and the global RNG is left alone.

    Returns
    -------
    X : float32 tensor of shape (n, p)
        The inputs.
    y : float32 tensor of shape (n,)
        The noisy responses.

    Raises
    ------
    ValueError
        If ``n`` or ``p`` is not an integer or is below its minimum.
    """
    _check_size(n, p, 5)
    g = torch.Generator().manual_seed(seed)
    x = 2.0 * torch.rand(n, p, generator=g) - 1.0
    y = 7 * x[:, 1] / (1 + x[:, 0] ** 2) + 5 * torch.sin(x[:, 2] * x[:, 3]) + 2 * x[:, 4]
    return x, y + noise * torch.randn(n, generator=g)


def _sun2021_inputs(n: int, p: int, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(n, 1, generator=g)
    z = torch.randn(n, p, generator=g)
    return (e + z) / math.sqrt(2.0), g


def simulate_sun2021(
    n: int = 10_000, p: int = 2000, *, noise: float = 1.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Simulate the regression design of :cite:t:`sun2021consistent`.

    Correlated inputs :math:`x_j = (e + z_j)/\sqrt2` with :math:`e, z_j \sim N(0, 1)`
    independent (so :math:`\mathrm{Var}\,x_j = 1` and pairwise correlation 0.5), and
    :math:`y = 5x_2/(1 + x_1^2) + 5\sin(x_3x_4) + 2x_5 + \varepsilon`,
    :math:`\varepsilon \sim N(0, \text{noise}^2)`; the relevant inputs are
    :math:`x_1, \dots, x_5`, columns 0..4.

    Parameters
    ----------
    n, p
        Number of rows (at least 2) and of inputs (at least 5).
    noise
        Standard deviation of :math:`\varepsilon`.
    seed
        Seed of a private :class:`torch.Generator`: the same seed gives the same data.

    Returns
    -------
    X : float32 tensor of shape (n, p)
        The correlated inputs.
    y : float32 tensor of shape (n,)
        The noisy responses.

    Raises
    ------
    ValueError
        If ``n`` or ``p`` is not an integer or is below its minimum.
    """
    _check_size(n, p, 5)
    x, g = _sun2021_inputs(n, p, seed)
    y = 5 * x[:, 1] / (1 + x[:, 0] ** 2) + 5 * torch.sin(x[:, 2] * x[:, 3]) + 2 * x[:, 4]
    return x, y + noise * torch.randn(n, generator=g)


def simulate_sun2021_classification(
    n: int = 10_000, p: int = 1000, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Simulate the classification design of :cite:t:`sun2021consistent`.

    The correlated
    inputs of :func:`simulate_sun2021` and a noiseless label,
    :math:`y = 1` if :math:`e^{x_1} + x_2^2 + 5\sin(x_3x_4) - 3 > 0` and 0 otherwise; the
    relevant inputs are :math:`x_1, \dots, x_4`, columns 0..3.

    Parameters
    ----------
    n, p
        Number of rows (at least 2) and of inputs (at least 4).
    seed
        Seed of a private :class:`torch.Generator`: the same seed gives the same data
        (and the same inputs as :func:`simulate_sun2021` with that seed).

    Returns
    -------
    X : float32 tensor of shape (n, p)
        The correlated inputs.
    y : int64 tensor of shape (n,)
        The 0/1 labels.

    Raises
    ------
    ValueError
        If ``n`` or ``p`` is not an integer or is below its minimum.
    """
    _check_size(n, p, 4)
    x, _ = _sun2021_inputs(n, p, seed)
    score = torch.exp(x[:, 0]) + x[:, 1] ** 2 + 5 * torch.sin(x[:, 2] * x[:, 3]) - 3
    return x, (score > 0).long()
