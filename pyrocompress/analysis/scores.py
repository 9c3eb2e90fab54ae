"""Sampling-free summaries from propagated moments: predictive moments and unit scores."""

from __future__ import annotations

import torch

from pyrocompress.nn import BayesianNetwork
from pyrocompress.nn.moments import check_supported, propagate
from pyrocompress.nn.rules import _TINY

__all__ = ["predictive_moments", "unit_scores"]


@torch.no_grad()
def predictive_moments(
    bnn: BayesianNetwork, X: torch.Tensor, *, batch_size: int = 2000, covariance: str = "diagonal"
) -> dict[str, torch.Tensor]:
    r"""Return sampling-free predictive summaries of ``bnn`` at ``X``.

    Moment propagation needs independent Gaussian weights (the ``"gaussian"`` prior); for
    a network with a group prior (normal-Jeffreys, horseshoe, spike-and-slab), whose gates
    make a group's weights dependent, use :func:`~pyrocompress.predict` (Monte Carlo over
    the guide), which works for every prior.

    Parameters
    ----------
    bnn
        The fitted network (its priors must support moment propagation).
    X
        Inputs.
    batch_size
        Examples per propagation.
    covariance
        ``"diagonal"``, or ``"full"`` for the full-covariance propagation.

    Returns
    -------
    dict of str to Tensor
        ``{"mean", "var"}`` of the network output (logits, or the regression mean) and:
        for regression ``"predictive_var"`` = ``var`` + noise variance; for
        classification ``"probs"``, the probit approximation of the predictive class
        probabilities, :math:`\mathrm{softmax}\big(m / \sqrt{1 + \pi v / 8}\big)`
        (:cite:t:`mackay1992evidence`; for the Bernoulli likelihood the sigmoid of the same ratio).
        With ``covariance="full"`` the moments come from the full-covariance propagation and
        ``"cov"``, each example's covariance of the output units, is added.

    Raises
    ------
    ValueError
        For a prior without moment propagation; the message points to
        :func:`~pyrocompress.predict`.
    """
    try:
        check_supported(bnn)
    except ValueError as err:
        raise ValueError(
            f"{err}; for the predictive of this network use pyrocompress.predict(bnn, X, "
            "num_samples=100), Monte Carlo over the guide, which works for every prior"
        ) from None
    device = bnn.device
    parts = [
        propagate(bnn, X[i : i + batch_size].to(device), covariance=covariance)
        for i in range(0, len(X), batch_size)
    ]
    mean = torch.cat([part[0] for part in parts])
    second = torch.cat([part[1] for part in parts])
    var = second.diagonal(0, -2, -1) if covariance == "full" else second
    out = {"mean": mean, "var": var}
    if covariance == "full":
        out["cov"] = second
    out.update(bnn.likelihood.predictive(mean, var))
    return out


@torch.no_grad()
def unit_scores(
    bnn: BayesianNetwork, X: torch.Tensor, *, batch_size: int = 2000
) -> dict[str, dict[str, torch.Tensor]]:
    r"""Return the self-compression scores of every group, from propagated moments.

    The groups are the units a pruning plan keeps or drops; the moments are propagated over
    the inputs ``X`` :cite:p:`carannante2020self{§4}`. For group :math:`g` of a layer (an input
    unit :math:`j` of a Linear layer, an output channel of a Conv2d), with :math:`(m, v)`
    the propagated moments of the layer's input and :math:`(M, S)` of its weights, the
    group's contribution :math:`c` to a pre-activation it feeds (:math:`c_{ij} = w_{ij} x_j`
    for a Linear layer) has, under the guide and for one input example, mean
    :math:`\mu = M m` and variance :math:`\nu = (M^2 + S) v + S m^2` (module docstring).
    Summed over the :math:`n` examples of ``X`` and over the units (and positions) the group feeds:

    * signal :math:`\sum \mu^2` and noise :math:`\sum \nu`;
    * the group's part of the layer's output variance, over the data and the posterior
      (law of total variance, :math:`\bar\mu` the mean over the examples):
      :math:`V_g = \sum \nu + \sum (\mu - \bar\mu)^2`.

    Returned by score name, each a dict layer name → tensor of group scores (higher =
    keep):

    ``"output_snr"``
        signal / noise of the group's contribution: a unit whose output the next layer
        receives mostly as noise is redundant;
    ``"kernel_norm"``
        Frobenius norm of the group's mean weights (the kernel of a channel), blind to
        the data;
    ``"variance_share"``
        the group's share :math:`V_g / \sum_h V_h` of the layer's output variance, times
        the layer's number of groups :math:`G` (1 is an equal share), so that one cut
        (``rule="sparsity"``, the global step of ``rule="auto"``) compares layers of
        different widths: a group that barely moves the layer's output is redundant.

    Groups removed by :meth:`~pyrocompress.nn.BayesianNetwork.restrict` score zero.

    Parameters
    ----------
    bnn
        The fitted network (its priors must support moment propagation).
    X
        Inputs the moments are propagated over.
    batch_size
        Examples per propagation.

    Returns
    -------
    dict of str to dict of str to Tensor
        The scores above, by score name and layer name.
    """
    check_supported(bnn)
    device = bnn.device
    layers = bnn.bayesian_layers()
    signal: dict[str, torch.Tensor] = {}
    noise: dict[str, torch.Tensor] = {}
    first: dict[str, torch.Tensor] = {}  # sums over examples of mu and mu², per unit
    second: dict[str, torch.Tensor] = {}
    count = 0
    for i in range(0, len(X), batch_size):
        batch = X[i : i + batch_size].to(device)
        recorded = propagate(bnn, batch, record=True)
        assert len(recorded) == 3  # record=True adds each layer's input moments
        inputs = recorded[2]
        count += len(batch)
        for name, layer in layers.items():
            m, v = inputs[name]
            (w_m, w_v), _ = layer.posterior_moments(bnn.guide[name])
            if not layer.spec.bias_gated:  # group = input unit j; mu_nij = M_ij m_nj
                m1, m2, vv = m.sum(0), m.square().sum(0), v.sum(0)  # [in]
                _add(signal, name, (w_m.square() * m2).sum(0))
                _add(noise, name, ((w_m.square() + w_v) * vv + w_v * m2).sum(0))
                _add(first, name, m1)  # sum_n mu_nij = M_ij sum_n m_nj
                _add(second, name, m2)
            else:  # group = output channel
                # a norm's scale, not its offset: a channel of zero weights carries nothing
                mean_out, noise_out = layer.output_moments(m, v, (w_m, w_v), None, norm=False)
                if layer.norm is not None:
                    a = layer.norm_affine()[0].reshape(-1, *([1] * (mean_out.dim() - 2)))
                    mean_out, noise_out = a * mean_out, a.square() * noise_out
                mean_out, noise_out = layer.mask_output(mean_out), layer.mask_output(noise_out)
                if layer.output_axis != 1:  # groups along another axis (Embedding): move it
                    mean_out = mean_out.movedim(layer.output_axis, 1)
                    noise_out = noise_out.movedim(layer.output_axis, 1)
                positions = [0, *range(2, mean_out.dim())]  # examples and positions
                _add(signal, name, mean_out.square().sum(positions))
                _add(noise, name, noise_out.sum(positions))
                _add(first, name, mean_out.sum(0))  # [channels, *positions]
                _add(second, name, mean_out.square().sum(0))
    scores: dict[str, dict[str, torch.Tensor]] = {
        "output_snr": {},
        "kernel_norm": {},
        "variance_share": {},
    }
    for name, layer in layers.items():
        (w_m, _), _ = layer.posterior_moments(bnn.guide[name])
        if not layer.spec.bias_gated:
            # sum_i sum_n (mu_nij - mean_n mu_nij)^2, with mu_nij = M_ij m_nj
            spread = (w_m.square() * (second[name] - first[name].square() / count)).sum(0)
        else:
            spread = second[name] - first[name].square() / count
            spread = spread.sum(list(range(1, spread.dim())))
        total = noise[name] + spread.clamp_min(0.0)
        scores["output_snr"][name] = signal[name] / (noise[name] + _TINY)
        scores["kernel_norm"][name] = layer.spec.group_sum(w_m.square()).sqrt()
        scores["variance_share"][name] = total * (len(total) / (total.sum() + _TINY))
        if layer.group_mask is not None:
            for score in scores.values():
                score[name] = score[name] * layer.group_mask
    return scores


def _add(sums: dict[str, torch.Tensor], name: str, value: torch.Tensor) -> None:
    """Add ``value`` to the running sum ``sums[name]`` (which starts at ``value``)."""
    sums[name] = sums[name] + value if name in sums else value
