"""The fitted posterior as a file: ``posterior.pt``, re-pruned without training.

``pyrocompress compress`` writes ``posterior.pt`` next to its report; ``pyrocompress prune
--posterior DIR`` reads it, rebuilds the network and prunes it again with another rule or
tolerance. The file is a plain ``torch.save`` dict that loads with ``weights_only=True``
(tensors, strings, numbers, lists and dicts: no pickled code):

``format``
    ``"pyrocompress.posterior/1"``.
``version``
    The pyrocompress version that wrote it.
``settings``
    How to rebuild the network and its data: a flat dict of strings, numbers, booleans,
    ``None`` and lists of numbers (for the CLI: model, prior, guide, dataset, data folder,
    seed, pixel range, objective, score, rule, tolerance, threshold, epochs).
``state``
    :meth:`~torch.nn.Module.state_dict` of the fitted network: the model's
    and the guide's parameters, the norms' running statistics and the recorded Fisher
    information, everything the analysis and the pruning read.
``history``
    :meth:`~pyrocompress.infer.History.to_dict` of the run.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pyrocompress.infer.checkpoint import atomic_write_bytes, safe_load
from pyrocompress.infer.training import History, _history_problem, _network_problem
from pyrocompress.nn import BayesianNetwork

__all__ = ["POSTERIOR_FORMAT", "POSTERIOR_NAME", "load_posterior", "save_posterior"]

#: Format tag of ``posterior.pt``.
POSTERIOR_FORMAT = "pyrocompress.posterior/1"
#: File name the CLI writes and reads.
POSTERIOR_NAME = "posterior.pt"

_KEYS = {"format", "version", "settings", "state", "history"}


def _setting_ok(value: Any) -> bool:
    """Return whether a setting is a JSON-like scalar or a short list of numbers."""
    if value is None or isinstance(value, (bool, str, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return len(value) <= 16 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
    return False


def posterior_bytes(
    bnn: BayesianNetwork, settings: Mapping[str, Any], history: History | None = None
) -> bytes:
    """Return the bytes of ``posterior.pt`` (see :func:`save_posterior`)."""
    if not isinstance(bnn, BayesianNetwork):
        raise TypeError("save_posterior expects the BayesianNetwork of pyrocompress.bayesianize")
    bad = sorted(k for k, v in settings.items() if not isinstance(k, str) or not _setting_ok(v))
    if bad:
        raise ValueError(
            f"settings {bad} must be strings, numbers, booleans, None or lists of numbers"
        )
    from pyrocompress import __version__

    payload = {
        "format": POSTERIOR_FORMAT,
        "version": __version__,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "state": {k: v.detach().cpu().clone() for k, v in bnn.state_dict().items()},
        "history": (history or History()).to_dict(),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_posterior(
    bnn: BayesianNetwork,
    path: str | os.PathLike,
    settings: Mapping[str, Any],
    history: History | None = None,
) -> Path:
    """Write the fitted posterior of ``bnn`` to ``path`` atomically (0644).

    Parameters
    ----------
    bnn
        A fitted network from :func:`~pyrocompress.bayesianize`.
    path
        The file to write (conventionally ``posterior.pt``).
    settings
        What is needed to rebuild ``bnn`` and its data (strings, numbers, booleans,
        ``None``, lists of numbers); :func:`load_posterior` returns it as given.
    history
        The :class:`~pyrocompress.infer.History` of the fit, kept for the loss plot.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    atomic_write_bytes(posterior_bytes(bnn, settings, history), path)
    return path


def load_posterior(path: str | os.PathLike, bnn: BayesianNetwork | None = None) -> dict:
    """Read ``posterior.pt`` (``weights_only=True``) and check it before anything is used.

    Parameters
    ----------
    path
        The file, or a folder holding ``posterior.pt``.
    bnn
        The rebuilt network (same architecture, prior and guide as the one saved): its
        state is loaded from the file after the keys and shapes are checked.

    Returns
    -------
    dict
        ``{"format", "version", "settings", "state", "history"}``, with ``history`` a
        :class:`~pyrocompress.infer.History`.

    Raises
    ------
    ValueError
        Naming the file: it is missing, not a posterior file, malformed, or its state does
        not fit ``bnn``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / POSTERIOR_NAME
    if not path.is_file():
        raise ValueError(f"{path} does not exist: give the folder of a compress run")
    payload = safe_load(path, "posterior file")

    def bad(problem: str) -> ValueError:
        return ValueError(f"{path} is not a usable posterior file: {problem}")

    if not isinstance(payload, dict) or payload.get("format") != POSTERIOR_FORMAT:
        raise bad(f"no format tag {POSTERIOR_FORMAT!r}")
    if set(payload) != _KEYS:
        raise bad(f"its keys must be {sorted(_KEYS)}, got {sorted(map(str, payload))}")
    settings = payload["settings"]
    if not isinstance(settings, dict) or not all(
        isinstance(k, str) and _setting_ok(v) for k, v in settings.items()
    ):
        raise bad("settings must be a dict of strings, numbers, booleans and None")
    state = payload["state"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise bad("state must be a dict of tensors")
    raw = payload["history"]
    listed = raw.get("epoch") if isinstance(raw, dict) else None
    epochs = len(listed) if isinstance(listed, list) else 0
    metric = raw.get("metric_name", "error") if isinstance(raw, dict) else "error"
    problem = _history_problem(raw, epochs, metric if isinstance(metric, str) else "error")
    if problem:
        raise bad(problem)
    if bnn is not None:
        problem = _network_problem(state, bnn.state_dict())
        if problem:
            raise bad(f"it does not fit the rebuilt network: {problem}")
        bnn.load_state_dict(state)
    return {**payload, "history": History(**raw)}
