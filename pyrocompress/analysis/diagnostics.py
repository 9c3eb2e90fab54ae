"""Posterior diagnostics with ArviZ 1.x: the SVI posterior as a DataTree, PSIS k-hat, LOO.

arviz-base has no Pyro converter for variational posteriors, so :func:`to_datatree`
builds one with :func:`arviz_base.from_dict`: draws from the guide, the pointwise
log-likelihood obtained by replaying the model under each draw (the pattern of NumPyro's
``log_likelihood``), posterior-predictive draws, the observed data, the guide's and the
model's log-densities of each draw (``sample_stats``: ``log_q``, ``log_p``), the
variational summaries (``variational``: log alpha, inclusion probabilities, group SNR)
and the loss history.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pyro.distributions as dist
import pyro.poutine as poutine
import torch

if TYPE_CHECKING:
    from pyrocompress.analysis.posterior import Posterior

__all__ = [
    "KHAT_THRESHOLDS",
    "posterior_draws",
    "psis_khat",
    "to_datatree",
    "variable_prefix",
    "vi_diagnostics",
]

#: Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?": k-hat < 0.5 the
#: approximation is good and importance sampling can correct it; 0.5-0.7 usable with care;
#: > 0.7 the approximation is poor and even PSIS cannot fix estimates from it.
KHAT_THRESHOLDS = {
    "good": "k < 0.5: the variational approximation is close; PSIS-corrected estimates "
    "are reliable",
    "ok": "0.5 <= k < 0.7: usable with care; importance-weighted estimates converge slowly",
    "bad": "k >= 0.7: the approximation is poor; do not trust it for quantities that depend "
    "on the tails, and do not rely on importance sampling to fix it",
}


def variable_prefix(layer: str) -> str:
    """DataTree variable prefix of a layer: ``"1"`` -> ``"layer1"``, ``"fc.0"`` -> ``"fc_0"``."""
    name = re.sub(r"\W", "_", layer)
    return f"layer{name}" if name[:1].isdigit() else name


@torch.no_grad()
def posterior_draws(bnn, X: torch.Tensor, y: torch.Tensor, num_samples: int = 200, *, seed=0):
    """Draw from the guide and replay the model on ``(X, y)`` for each draw.

    Returns a dict of numpy arrays with a leading draw axis: per-layer gate draws
    (``gates``), optionally the effective weights (``weights``), the pointwise
    log-likelihood ``log_lik [S, N]``, posterior-predictive ``y_pred [S, N]``, the guide's
    log-density ``log_q [S]`` and the model's log joint ``log_p [S]`` (prior of every latent
    site plus the log-likelihood).
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}")
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)
    layers = bnn.bayesian_layers()
    bnn.eval()
    out = {"gates": {n: [] for n in layers}, "weights": {n: [] for n in layers}}
    log_lik, y_pred, log_q, log_p = [], [], [], []
    try:
        for _ in range(num_samples):
            g_tr = poutine.trace(bnn.guide).get_trace()
            m_tr = poutine.trace(poutine.replay(bnn, trace=g_tr)).get_trace(X, y)
            g_tr.compute_log_prob()
            m_tr.compute_log_prob()
            obs = m_tr.nodes["obs"]
            ll = _log_prob64(obs["fn"], obs["value"])
            log_lik.append(ll)
            y_pred.append(obs["fn"].sample())
            log_q.append(g_tr.log_prob_sum().double())
            log_p.append(m_tr.log_prob_sum().double())
            values = {s: n["value"] for s, n in g_tr.nodes.items() if n["type"] == "sample"}
            for name, (gate, w) in bnn.effective_weights(values).items():
                if gate is None:  # Gaussian prior: the group's weight norm
                    gate = layers[name].spec.group_sum(w**2).sqrt()
                out["gates"][name].append(gate)
                out["weights"][name].append(w)
    finally:
        torch.set_rng_state(gen_state)
    out["gates"] = {k: torch.stack(v).cpu().numpy() for k, v in out["gates"].items()}
    out["weights"] = {k: torch.stack(v).cpu().numpy() for k, v in out["weights"].items()}
    out["log_lik"] = torch.stack(log_lik).cpu().numpy()
    out["y_pred"] = torch.stack(y_pred).cpu().numpy()
    out["log_q"] = torch.stack(log_q).cpu().numpy()
    out["log_p"] = torch.stack(log_p).cpu().numpy()
    return out


def _log_prob64(fn, value: torch.Tensor) -> torch.Tensor:
    """Pointwise log-likelihood in double precision.

    A confidently predicted observation's log-probability otherwise rounds to exactly 0
    for every draw, and Pareto smoothing in ``arviz_stats.loo`` fails on such a column.
    """
    base = fn.base_dist if isinstance(fn, dist.Independent) else fn
    if isinstance(base, dist.Categorical):
        # -log1p(sum_{j != y} exp(l_j - l_y)) keeps log-probabilities as small as 1e-300,
        # where log_softmax rounds them to 0
        logits = base.logits.double()
        diff = logits - logits.gather(-1, value.long().unsqueeze(-1))
        others = diff.exp().scatter(-1, value.long().unsqueeze(-1), 0.0).sum(-1)
        lp = -torch.log1p(others)
    elif isinstance(base, dist.Bernoulli):  # binary cross-entropy with logits, in double
        lp = dist.Bernoulli(logits=base.logits.double()).log_prob(value.double())
    elif isinstance(base, dist.Normal):
        lp = dist.Normal(base.loc.double(), base.scale.double()).log_prob(value.double())
    else:
        return fn.log_prob(value).double()
    if isinstance(fn, dist.Independent):
        lp = lp.sum(list(range(-fn.reinterpreted_batch_ndims, 0)))
    return lp


def _group_dim(bnn, name: str) -> tuple[str, list]:
    layer = bnn.bayesian_layers()[name]
    first = next(iter(bnn.bayesian_layers())) == name
    if layer.spec.kind == "linear":
        dim = f"{variable_prefix(name)}_input"
        if first and bnn.feature_names is not None:
            return dim, list(bnn.feature_names)
        return dim, list(range(layer.spec.num_groups))
    return f"{variable_prefix(name)}_channel", list(range(layer.spec.num_groups))


def to_datatree(
    posterior: Posterior,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    num_samples: int = 200,
    all_weights: bool = False,
    history=None,
    seed: int = 0,
):
    """The SVI posterior as an ArviZ 1.x ``xarray.DataTree`` (:meth:`Posterior.to_datatree`).

    Groups: ``posterior`` (one chain of ``num_samples`` guide draws of each layer's group
    gate ``<layer>_scale`` — normal-Jeffreys scale, horseshoe gate, spike-and-slab
    inclusion, or the group's weight norm for the Gaussian prior — with a dim
    ``<layer>_input`` (Linear, feature names as coordinates for the first layer when given)
    or ``<layer>_channel`` (Conv2d); with ``all_weights=True`` also ``<layer>_weight``),
    ``log_likelihood`` (``obs``, pointwise), ``posterior_predictive``, ``observed_data``,
    ``sample_stats`` (``log_q``, ``log_p``: the guide's and the model's log-density of each
    draw, for PSIS), ``variational`` (log alpha, inclusion probability where defined, group
    SNR) and ``loss`` (the training history, when given).
    """
    from arviz_base import dict_to_dataset, from_dict

    bnn = posterior.bnn
    X = torch.as_tensor(X).float()
    y = torch.as_tensor(y)
    device = bnn.device
    d = posterior_draws(bnn, X.to(device), y.to(device), num_samples, seed=seed)
    post, dims, coords = {}, {}, {"obs_id": np.arange(len(y))}
    for name, draws in d["gates"].items():
        dim, coord = _group_dim(bnn, name)
        var = f"{variable_prefix(name)}_scale"
        post[var] = draws[None]
        dims[var] = [dim]
        coords[dim] = coord
        if all_weights:
            w = d["weights"][name]
            wvar = f"{variable_prefix(name)}_weight"
            post[wvar] = w[None]
            dims[wvar] = [f"{variable_prefix(name)}_w{i}" for i in range(w.ndim - 1)]
    analysis = posterior
    variational, vdims = {}, {}
    for key, values in (("log_alpha", analysis.log_alpha()), ("snr", analysis.snr("group"))):
        for name, v in values.items():
            variational[f"{variable_prefix(name)}_{key}"] = v.cpu().numpy()
            vdims[f"{variable_prefix(name)}_{key}"] = [_group_dim(bnn, name)[0]]
    with_pips = [n for n, layer in bnn.bayesian_layers().items()
                 if layer.prior.has_inclusion_probabilities]  # fmt: skip
    if with_pips:
        pips = analysis.inclusion_probabilities(with_pips)
        for name, v in pips.items():
            variational[f"{variable_prefix(name)}_pip"] = v.cpu().numpy()
            vdims[f"{variable_prefix(name)}_pip"] = [_group_dim(bnn, name)[0]]
    dims["obs"] = ["obs_id"]
    data = {
        "posterior": post,
        "log_likelihood": {"obs": d["log_lik"][None]},
        "posterior_predictive": {"obs": d["y_pred"][None]},
        "observed_data": {"obs": y.cpu().numpy()},
        "sample_stats": {"log_q": d["log_q"][None], "log_p": d["log_p"][None]},
    }
    tree = from_dict(data, dims=dims, coords=coords)
    tree["variational"] = dict_to_dataset(
        variational, sample_dims=[], dims=vdims, coords=coords, inference_library=None
    )
    if history is not None:
        h = history.to_dict()
        epochs = np.asarray(h["epoch"])
        tree["loss"] = dict_to_dataset(
            {k: np.asarray(h[k]) for k in ("loss", "kl_scale", "lr", "val_metric")},
            sample_dims=[],
            dims={k: ["epoch"] for k in ("loss", "kl_scale", "lr", "val_metric")},
            coords={"epoch": epochs},
            inference_library=None,
        )
    return tree


def psis_khat(log_weights) -> float:
    r"""Pareto k-hat of importance log-weights :math:`\log p(\theta, D) - \log q(\theta)`.

    Yao, Vehtari, Simpson & Gelman (2018). arviz-stats' ``psislw`` smooths the *negated*
    input (it is written for leave-one-out, where the raw log-weights are minus the
    log-likelihood), so the weights are passed negated here; the tests check the sign
    against a case with a known answer.
    """
    from arviz_stats.base import array_stats

    lw = np.asarray(log_weights, dtype=float).reshape(-1)
    if not np.all(np.isfinite(lw)):
        raise ValueError("log_weights must be finite")
    if np.ptp(lw) == 0.0:  # q = p up to a constant: all weights equal, nothing heavy-tailed
        return -np.inf
    _, khat = array_stats.psislw(-lw)
    return float(khat)


def vi_diagnostics(tree) -> dict:
    """PSIS k-hat of the variational approximation, with its reading.

    ``tree`` is a DataTree from :func:`to_datatree` (it holds ``log_p`` and ``log_q``).
    """
    ss = tree["sample_stats"]
    lw = (ss["log_p"] - ss["log_q"]).values
    k = psis_khat(lw)
    verdict = "good" if k < 0.5 else "ok" if k < 0.7 else "bad"
    return {"khat": k, "verdict": verdict, "meaning": KHAT_THRESHOLDS[verdict]}
