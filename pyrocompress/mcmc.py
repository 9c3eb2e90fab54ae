"""The gold standard: NUTS on the same Pyro model, for problems small enough to sample.

:func:`run_nuts` runs Pyro's NUTS on a :class:`~pyrocompress.nn.BayesianNetwork`'s model
(exactly the program SVI fits, without the local reparametrisation handler), one chain
after another with different seeds, and returns an ArviZ DataTree with one row per chain,
so that R-hat and ESS are meaningful. :func:`compare_svi_nuts` lays the SVI posterior and
the NUTS posterior side by side. The spike-and-slab prior has discrete gates, which NUTS
cannot sample.
"""

from __future__ import annotations

import numpy as np
import pyro
import torch
from pyro.infer import MCMC, NUTS

from pyrocompress.priors import SpikeAndSlab

__all__ = ["compare_svi_nuts", "run_nuts"]


def run_nuts(
    bnn,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    num_samples: int = 500,
    warmup_steps: int = 500,
    num_chains: int = 4,
    seed: int = 0,
    target_accept_prob: float = 0.8,
):
    """NUTS draws of every latent site of ``bnn``'s model given ``(X, y)``, as a DataTree.

    Posterior variables are named after the sites with dots replaced by underscores
    (``layer0_weight`` for site ``0.weight``).
    """
    from arviz_base import from_dict

    if isinstance(bnn.prior, SpikeAndSlab):
        raise ValueError("NUTS cannot sample the spike-and-slab's discrete inclusion gates")
    chains: dict[str, list[np.ndarray]] = {}
    for c in range(num_chains):
        pyro.set_rng_seed(seed + c)
        kernel = NUTS(bnn, target_accept_prob=target_accept_prob, jit_compile=False)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps,
                    disable_progbar=True)  # fmt: skip
        mcmc.run(X, y)
        for site, draws in mcmc.get_samples().items():
            chains.setdefault(site, []).append(draws.detach().cpu().numpy())
    posterior = {_name(site): np.stack(v) for site, v in chains.items()}
    return from_dict({"posterior": posterior})


def _name(site: str) -> str:
    head, _, part = site.rpartition(".")
    head = head.replace(".", "_")
    return f"layer{head}_{part}" if head[:1].isdigit() else f"{head}_{part}"


def compare_svi_nuts(bnn, nuts_tree, *, num_samples: int = 2000, seed: int = 0) -> dict:
    """Posterior means and sds of every latent site under SVI (guide draws) and NUTS.

    Returns ``{variable: {"svi_mean", "svi_sd", "nuts_mean", "nuts_sd"}}`` with numpy
    arrays, for the variables NUTS sampled.
    """
    import pyro.poutine as poutine

    torch.manual_seed(seed)
    draws: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for _ in range(num_samples):
            tr = poutine.trace(bnn.guide).get_trace()
            for site, node in tr.nodes.items():
                if node["type"] == "sample":
                    draws.setdefault(_name(site), []).append(node["value"])
    out = {}
    post = nuts_tree["posterior"]
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
