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

import contextlib
import re
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from numpy.typing import ArrayLike

from pyrocompress.analysis.predictive import guide_traces

if TYPE_CHECKING:
    from xarray import DataTree

    from pyrocompress.analysis.posterior import Posterior
    from pyrocompress.infer import History
    from pyrocompress.nn import BayesianNetwork

__all__ = [
    "KHAT_ADVICE",
    "KHAT_THRESHOLDS",
    "posterior_draws",
    "psis_khat",
    "to_datatree",
    "variable_prefix",
    "vi_diagnostics",
]

#: The thresholds of :cite:t:`yao2018yes`: k-hat < 0.5 the
#: approximation is good and importance sampling can correct it; 0.5-0.7 usable with care;
#: > 0.7 the approximation is poor and even PSIS cannot fix estimates from it.
KHAT_THRESHOLDS = {
    "good": "k < 0.5: the variational approximation is close; PSIS-corrected estimates "
    "are reliable",
    "ok": "0.5 <= k < 0.7: usable with care; importance-weighted estimates converge slowly",
    "bad": "k >= 0.7: the approximation is poor; do not trust it for quantities that depend "
    "on the tails, and do not rely on importance sampling to fix it",
}


#: What to try when the approximation is not good (issue 27): the usual causes of a high
#: k-hat for a mean-field guide on a network are an unconverged fit and posterior
#: correlations the factorised guide cannot hold :cite:p:`yao2018yes{§3}`;
#: :cite:p:`blei2017variational`.
KHAT_ADVICE = {
    "good": "",
    "ok": "train longer (more epochs, or until the ELBO's convergence stop), then check "
    "again; PSIS-weighted summaries (arviz_stats.loo_approximate_posterior) correct "
    "moderate errors",
    "bad": "train longer and check that the loss has levelled off; try guide='conditional' "
    "(weights given their gate) or fewer hidden units; on a small problem compare with "
    "NUTS (pyrocompress.infer.run_nuts) before trusting tail quantities such as PIPs near "
    "0 or 1",
}


def variable_prefix(layer: str) -> str:
    """Return the DataTree variable prefix of a layer (``"1"`` -> ``"layer1"``).

    ``"fc.0"`` -> ``"fc_0"``: the name made an identifier.

    Parameters
    ----------
    layer
        The layer's name (its path in the module tree).

    Returns
    -------
    str
        A valid identifier.
    """
    name = re.sub(r"\W", "_", layer)
    return f"layer{name}" if name[:1].isdigit() else name


@torch.no_grad()
def posterior_draws(
    bnn: BayesianNetwork,
    X: torch.Tensor,
    y: torch.Tensor | None = None,
    num_samples: int = 200,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Draw from the guide and replay the model on ``(X, y)`` for each draw.

    The draws are those of :func:`~pyrocompress.analysis.predictive.guide_traces` (the
    one sampler of the analysis stage, shared with :func:`~pyrocompress.predict`).

    Parameters
    ----------
    bnn
        The fitted network (in eval mode while drawing; its mode is restored after).
    X, y
        The data, on the network's device; ``y=None`` for new inputs without targets:
        the observations are then drawn from the model (posterior predictive) and there
        is no log-likelihood.
    num_samples
        Number of draws ``S``, at least 2.
    seed
        Seed of the draws; torch's global CPU generator is restored afterwards.

    Returns
    -------
    dict
        Numpy arrays with a leading draw axis: per-layer gate draws (``gates``, a dict by
        layer name), the effective weights (``weights``, likewise), posterior-predictive
        ``y_pred [S, N]``, the guide's log-density ``log_q [S]``, the draws of every
        latent site (``sites``, tensors by site name) and, with ``y``, the pointwise
        log-likelihood ``log_lik [S, N]`` and the model's log joint ``log_p [S]`` (prior
        of every latent site plus the log-likelihood).

    Raises
    ------
    ValueError
        If ``num_samples`` is below 2.
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}")
    layers = bnn.bayesian_layers()
    gates: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    weights: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    log_lik: list[torch.Tensor] = []
    y_pred: list[torch.Tensor] = []
    log_q: list[torch.Tensor] = []
    log_p: list[torch.Tensor] = []
    sites: dict[str, list[torch.Tensor]] = {}
    # the traces are drawn under the seed, and so are the observations drawn between them
    with contextlib.closing(guide_traces(bnn, num_samples, seed=seed)) as traces:
        for g_tr in traces:
            m_tr = poutine.trace(poutine.replay(bnn, trace=g_tr)).get_trace(X, y)
            g_tr.compute_log_prob()
            obs = _nodes(m_tr)["obs"]
            if y is None:  # the model drew the observations: the posterior predictive
                y_pred.append(obs["value"])
            else:
                m_tr.compute_log_prob()
                log_lik.append(_log_prob64(obs["fn"], obs["value"]))
                y_pred.append(obs["fn"].sample())
                log_p.append(torch.as_tensor(m_tr.log_prob_sum(), dtype=torch.float64))
            log_q.append(torch.as_tensor(g_tr.log_prob_sum(), dtype=torch.float64))
            values = {s: n["value"] for s, n in _nodes(g_tr).items() if n["type"] == "sample"}
            for site, value in values.items():
                sites.setdefault(site, []).append(value.detach())
            for name, (gate, w) in bnn.effective_weights(values).items():
                if gate is None:  # Gaussian prior: the group's weight norm
                    gate = layers[name].spec.group_sum(w**2).sqrt()
                gates[name].append(gate)
                weights[name].append(w)
    out = {
        "gates": {k: torch.stack(v).cpu().numpy() for k, v in gates.items()},
        "weights": {k: torch.stack(v).cpu().numpy() for k, v in weights.items()},
        "y_pred": torch.stack(y_pred).cpu().numpy(),
        "log_q": torch.stack(log_q).cpu().numpy(),
        "sites": {k: torch.stack(v) for k, v in sites.items()},
    }
    if y is not None:
        out["log_lik"] = torch.stack(log_lik).cpu().numpy()
        out["log_p"] = torch.stack(log_p).cpu().numpy()
    return out


def _nodes(trace: poutine.Trace) -> dict[str, Mapping[str, Any]]:
    """Return the nodes of ``trace`` by site name.

    Pyro types a node as a dict whose keys are all optional; the sites read here (sample
    sites and the likelihood) always have ``fn``, ``value`` and ``type``.
    """
    return dict(trace.nodes)


def _log_prob64(fn: dist.Distribution, value: torch.Tensor) -> torch.Tensor:
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
    # (pyro's Bernoulli, built at run time, subclasses torch's: the type checker sees that)
    elif isinstance(base, torch.distributions.Bernoulli):  # BCE with logits, in double
        lp = dist.Bernoulli(logits=base.logits.double()).log_prob(value.double())
    elif isinstance(base, dist.Normal):
        lp = dist.Normal(base.loc.double(), base.scale.double()).log_prob(value.double())
    else:
        return fn.log_prob(value).double()
    if isinstance(fn, dist.Independent):
        lp = lp.sum(list(range(-fn.reinterpreted_batch_ndims, 0)))
    return lp


def _group_dim(bnn: BayesianNetwork, name: str) -> tuple[str, list]:
    """Return the DataTree dimension of a layer's groups and its coordinates."""
    layer = bnn.bayesian_layers()[name]
    first = next(iter(bnn.bayesian_layers())) == name
    if layer.spec.column_groups is not None:  # tied input columns: one coordinate per group
        return f"{variable_prefix(name)}_group", list(range(layer.spec.num_groups))
    if layer.spec.kind == "linear":
        dim = f"{variable_prefix(name)}_input"
        if first and bnn.feature_names is not None:
            return dim, list(bnn.feature_names)
        return dim, list(range(layer.spec.num_groups))
    return f"{variable_prefix(name)}_channel", list(range(layer.spec.num_groups))


def to_datatree(
    posterior: Posterior,
    X: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    num_samples: int = 200,
    all_weights: bool = False,
    history: History | None = None,
    seed: int = 0,
) -> DataTree:
    """Return the SVI posterior as an ArviZ 1.x ``xarray.DataTree``.

    The implementation of :meth:`Posterior.to_datatree`.

    Groups: ``posterior`` (one chain of ``num_samples`` guide draws of each layer's group
    gate ``<layer>_scale`` — normal-Jeffreys scale, horseshoe gate, spike-and-slab
    inclusion, or the group's weight norm for the Gaussian prior — with a dim
    ``<layer>_input`` (Linear, feature names as coordinates for the first layer when given)
    or ``<layer>_channel`` (Conv2d); where inclusion probabilities are defined, each
    group's ``<layer>_relevance``, the probability that it is relevant given the draw's
    weights (:meth:`~pyrocompress.Posterior.relevance`), whose mean over the draws
    is the guide-draw estimate of its inclusion probability (``estimator="draws"``; so
    ArviZ gives its Monte-Carlo error; for a generalised linear model the default
    estimate in ``variational`` is the normal-means one, which does not read these
    draws); with
    ``all_weights=True`` also ``<layer>_weight``), ``log_likelihood`` (``obs``,
    pointwise), ``posterior_predictive``, ``observed_data``, ``sample_stats`` (``log_q``,
    ``log_p``: the guide's and the model's log-density of each draw, for PSIS),
    ``variational`` (log alpha, group SNR, and where defined the inclusion probability
    ``<layer>_pip`` and the relevance threshold ``<layer>_threshold``) and ``loss`` (the
    training history, when given).

    Without ``y`` (new inputs, no targets), ``posterior_predictive`` holds draws of the
    observations at ``X`` — for each guide draw, one outcome from the likelihood given
    that draw's network — and there is no ``log_likelihood``, ``observed_data`` or
    ``sample_stats`` (they need targets; :func:`vi_diagnostics` needs a tree built with
    ``y``). For the predictive mean and standard deviation at new inputs without the
    draws, :func:`~pyrocompress.predict`.

    Parameters
    ----------
    posterior
        The posterior of the fitted network.
    X, y
        The data (moved to the network's device); ``y=None`` for new inputs.
    num_samples
        Number of guide draws (:func:`posterior_draws`).
    all_weights
        Also record every layer's effective weights.
    history
        The :class:`~pyrocompress.infer.History` of the fit, for the ``loss`` group.
    seed
        Seed of the draws.

    Returns
    -------
    xarray.DataTree
        The groups above.
    """
    from arviz_base import dict_to_dataset, from_dict

    bnn = posterior.bnn
    X = torch.as_tensor(X).float()
    y = None if y is None else torch.as_tensor(y)
    device = bnn.device
    d = posterior_draws(
        bnn, X.to(device), None if y is None else y.to(device), num_samples, seed=seed
    )
    post: dict[str, np.ndarray] = {}
    dims: dict[str, list[str]] = {}
    coords: dict[str, Any] = {"obs_id": np.arange(len(X))}
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
    variational: dict[str, np.ndarray] = {}
    vdims: dict[Hashable, Sequence[Hashable]] = {}
    for key, values in (("log_alpha", analysis.log_alpha()), ("snr", analysis.snr("group"))):
        for name, v in values.items():
            variational[f"{variable_prefix(name)}_{key}"] = v.cpu().numpy()
            vdims[f"{variable_prefix(name)}_{key}"] = [_group_dim(bnn, name)[0]]
    with_pips = [n for n, layer in bnn.bayesian_layers().items()
                 if layer.prior.has_inclusion_probabilities]  # fmt: skip
    if with_pips:
        pips = analysis.inclusion_probabilities(with_pips)
        thresholds = analysis.relevance_thresholds()
        for name, v in pips.items():
            prefix, dim = variable_prefix(name), _group_dim(bnn, name)[0]
            variational[f"{prefix}_pip"] = v.cpu().numpy()
            variational[f"{prefix}_threshold"] = thresholds[name].cpu().numpy()
            vdims[f"{prefix}_pip"] = vdims[f"{prefix}_threshold"] = [dim]
            # per draw, P(|g| > t | w, ...): its mean is the guide-draw estimate of the PIP
            spec = bnn.bayesian_layers()[name].spec
            parts = {p: d["sites"][spec.site(p)].double().cpu()
                     for p in bnn.bayesian_layers()[name].prior.site_priors(spec, X)
                     if spec.site(p) in d["sites"]}  # fmt: skip
            post[f"{prefix}_relevance"] = analysis.relevance(name, parts).numpy()[None]
            dims[f"{prefix}_relevance"] = [dim]
    dims["obs"] = ["obs_id"]
    data: dict[str, dict[str, Any]] = {
        "posterior": post,
        "posterior_predictive": {"obs": d["y_pred"][None]},
    }
    if y is not None:
        data["log_likelihood"] = {"obs": d["log_lik"][None]}
        data["observed_data"] = {"obs": y.cpu().numpy()}
        data["sample_stats"] = {"log_q": d["log_q"][None], "log_p": d["log_p"][None]}
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


def psis_khat(log_weights: ArrayLike) -> float:
    r"""Return the Pareto k-hat of importance log-weights.

    The log-weights are :math:`\log p(\theta, D) - \log q(\theta)` :cite:p:`yao2018yes`.
    arviz-stats' ``psislw`` smooths the *negated* input (it is written for leave-one-out, where the
    raw log-weights are minus the log-likelihood), so the weights are passed negated here; the tests
    check the sign against a case with a known answer.

    Parameters
    ----------
    log_weights
        The log-weights of the draws, any shape (flattened).

    Returns
    -------
    float
        k-hat; ``-inf`` when all weights are equal.

    Raises
    ------
    ValueError
        If a log-weight is not finite.
    """
    from arviz_stats.base.array import array_stats

    lw = np.asarray(log_weights, dtype=float).reshape(-1)
    if not np.all(np.isfinite(lw)):
        raise ValueError("log_weights must be finite")
    if np.ptp(lw) == 0.0:  # q = p up to a constant: all weights equal, nothing heavy-tailed
        return -np.inf
    _, khat = array_stats.psislw(-lw)
    return float(khat)


def vi_diagnostics(tree: DataTree) -> dict[str, Any]:
    """Return the PSIS k-hat of the variational approximation, with its reading.

    Parameters
    ----------
    tree
        A DataTree from :func:`to_datatree` (it holds ``log_p`` and ``log_q``).

    Returns
    -------
    dict
        ``khat``, ``verdict`` (``"good"``, ``"ok"``, ``"bad"``), ``meaning``
        (:data:`KHAT_THRESHOLDS`) and ``advice``: what to try (:data:`KHAT_ADVICE`; empty
        when good).
    """
    if "sample_stats" not in tree.children:
        raise ValueError(
            "the DataTree has no sample_stats (log_p, log_q): build it with the targets, "
            "Posterior.to_datatree(X, y), not for new inputs alone"
        )
    ss = tree["sample_stats"].to_dataset()
    lw = (ss["log_p"] - ss["log_q"]).values
    k = psis_khat(lw)
    verdict = "good" if k < 0.5 else "ok" if k < 0.7 else "bad"
    return {
        "khat": k,
        "verdict": verdict,
        "meaning": KHAT_THRESHOLDS[verdict],
        "advice": KHAT_ADVICE[verdict],
    }
