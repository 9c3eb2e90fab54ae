r"""The gold standard: NUTS on the same Pyro model, for problems small enough to sample.

:func:`run_nuts` runs Pyro's NUTS on a :class:`~pyrocompress.nn.BayesianNetwork`'s model
(exactly the program SVI fits, without the local reparametrisation handler), one chain
after another with different seeds, and returns an ArviZ DataTree with one row per chain,
so that R-hat and ESS are meaningful. :func:`compare_svi_nuts` lays the SVI posterior and
the NUTS posterior side by side.

Two priors are refused: the spike-and-slab's gates are discrete, which NUTS cannot sample
(and the network cannot be enumerated over), and the normal-Jeffreys prior
:math:`p(z) \propto 1/|z|` gives an improper posterior, which no sampler can converge to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyro.poutine as poutine
import torch
from pyro.infer import MCMC, NUTS

from pyrocompress.infer.training import prepare_data
from pyrocompress.nn import BayesianNetwork
from pyrocompress.rng import seeded

if TYPE_CHECKING:
    from xarray import DataTree

__all__ = ["compare_svi_nuts", "run_nuts", "site_variable"]


def run_nuts(
    bnn: BayesianNetwork,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    num_samples: int = 500,
    warmup_steps: int = 500,
    num_chains: int = 4,
    seed: int = 0,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
) -> DataTree:
    """Return NUTS draws of every latent site of ``bnn``'s model given ``(X, y)``, as a DataTree.

    Posterior variables are named after the sites with dots replaced by underscores
    (``layer0_weight`` for site ``0.weight``), plus each layer's effective weights
    ``layer0_effective_weight``.

    Parameters
    ----------
    bnn
        The network; its model is sampled as SVI fits it (no local reparametrisation).
    X, y
        The data (validated, moved to the network's device).
    num_samples, warmup_steps
        Draws kept and warm-up steps of each chain.
    num_chains
        Number of chains, run one after another with seeds ``seed``, ``seed + 1``, ...
    seed
        Seed of the first chain.
    target_accept_prob
        NUTS's target acceptance probability.
    max_tree_depth
        Caps the trajectory length (2^depth leapfrog steps); lower it for quick looks at
        funnel-shaped posteriors.

    Returns
    -------
    xarray.DataTree
        The ``posterior`` group, one chain per row.

    Raises
    ------
    ValueError
        If a layer's prior cannot be sampled by NUTS (the message says why), or a layer
        has a norm after it (its batch statistics are not part of a posterior).
    """
    from arviz_base import from_dict

    for prior in bnn.distinct_priors():
        if prior.nuts_unsupported is not None:
            raise ValueError(prior.nuts_unsupported)
    normed = [n for n, layer in bnn.bayesian_layers().items() if layer.norm is not None]
    if normed:
        raise ValueError(
            f"NUTS samples the weights of a fixed model; the layers {normed} have a BatchNorm "
            "after them, whose batch statistics and point-estimated parameters are not part "
            "of the posterior: compare SVI and NUTS on a network without norms"
        )
    X, y = prepare_data(bnn, (X, y), "data", bnn.device)  # validated, on the network's device
    chains: dict[str, list[np.ndarray]] = {}
    for c in range(num_chains):
        with seeded(seed + c):
            samples = _chain(bnn, X, y, num_samples, warmup_steps, target_accept_prob,
                             max_tree_depth)  # fmt: skip
        for site, draws in samples.items():
            chains.setdefault(site, []).append(draws.detach().cpu().numpy())
        n = next(iter(samples.values())).shape[0]
        effective = [_effective(bnn, {k: v[i] for k, v in samples.items()}) for i in range(n)]
        for key in effective[0]:
            chains.setdefault(key, []).append(torch.stack([e[key] for e in effective]).numpy())
    posterior = {site_variable(site): np.stack(v) for site, v in chains.items()}
    return from_dict({"posterior": posterior})


def _chain(
    bnn: BayesianNetwork,
    X: torch.Tensor,
    y: torch.Tensor,
    num_samples: int,
    warmup_steps: int,
    target_accept_prob: float,
    max_tree_depth: int,
) -> dict[str, torch.Tensor]:
    """Return one NUTS chain's draws of every latent site."""
    kernel = NUTS(
        bnn,
        target_accept_prob=target_accept_prob,
        max_tree_depth=max_tree_depth,
        jit_compile=False,
    )
    mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, disable_progbar=True)
    mcmc.run(X, y)
    return mcmc.get_samples()


def site_variable(site: str) -> str:
    """Return the DataTree variable name of a site (``"0.weight"`` -> ``"layer0_weight"``)."""
    head, _, part = site.rpartition(".")
    head = head.replace(".", "_")
    return f"layer{head}_{part}" if head[:1].isdigit() else f"{head}_{part}"


def _effective(bnn: BayesianNetwork, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the effective weights ``g * W~`` of every layer from one draw of the sites."""
    return {
        f"{name}.effective_weight": w.detach().cpu()
        for name, (_, w) in bnn.effective_weights(values).items()
    }


def compare_svi_nuts(
    bnn: BayesianNetwork, nuts_tree: DataTree, *, num_samples: int = 2000, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """Return posterior means and sds under SVI (guide draws) and NUTS, side by side.

    For every latent site, and for the effective weights (``<layer>_effective_weight``,
    the gate times the non-centred weight).

    Parameters
    ----------
    bnn
        The fitted network.
    nuts_tree
        The DataTree of :func:`run_nuts`.
    num_samples
        Number of guide draws.
    seed
        Seed of the guide draws.

    Returns
    -------
    dict
        ``{variable: {"svi_mean", "svi_sd", "nuts_mean", "nuts_sd"}}`` with numpy arrays,
        for the variables NUTS sampled.
    """
    draws: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad(), seeded(seed):
        for _ in range(num_samples):
            tr = poutine.trace(bnn.guide).get_trace()
            # (Pyro types a node as a dict whose keys are all optional; sample sites have
            # "type" and "value")
            nodes: dict[str, Mapping[str, Any]] = dict(tr.nodes)
            values = {s: n["value"] for s, n in nodes.items() if n["type"] == "sample"}
            values.update(_effective(bnn, values))
            for site, value in values.items():
                draws.setdefault(site_variable(site), []).append(value)
    out: dict[str, dict[str, np.ndarray]] = {}
    post = nuts_tree["posterior"].to_dataset()
    for name, values in draws.items():
        if name not in post:
            continue
        v = torch.stack(values).cpu().numpy()
        n = post[name].values.reshape(-1, *v.shape[1:])
        out[name] = {
            "svi_mean": v.mean(0),
            "svi_sd": v.std(0),
            "nuts_mean": n.mean(0),
            "nuts_sd": n.std(0),
        }
    return out
