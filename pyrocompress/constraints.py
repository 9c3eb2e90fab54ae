"""One declarative table of the numeric parameters every entry point validates.

:data:`PARAMETERS` says, once, what each numeric argument of the library may be.
:func:`~pyrocompress.fit`, :func:`~pyrocompress.pretrain`, :func:`~pyrocompress.prune`,
the guide's variance caps, the random-number policy, the
:class:`~pyrocompress.FeatureSelector` and the CLI call :func:`check`; the priors read
their bounds from the table (``"scale"``, ``"prior_inclusion"``) and add, in their
messages, why a value outside them fails (float32 overflow, a KL that swamps the
likelihood). Library messages name the argument (``epochs must be ...``); the CLI passes
the option as the label (``--epochs must be ...``) and turns the ``ValueError`` into one
line and exit code 2.

This module sits at the bottom of the package: it imports nothing of pyrocompress.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["PARAMETERS", "SEED_LIMIT", "Constraint", "check", "check_layer_names", "first_line"]

#: Seeds are integers in ``[0, SEED_LIMIT)`` (NumPy's limit).
SEED_LIMIT = 2**32


@dataclass(frozen=True)
class Constraint:
    """What one numeric parameter may be.

    Attributes
    ----------
    kind
        ``"integer"`` (Python or NumPy integers; not ``bool``) or ``"real"`` (finite).
    low, high
        Bounds, ``None`` for none; ``low_open`` / ``high_open`` exclude them.
    optional
        Whether ``None`` is allowed.
    example
        A valid value, quoted in the message.
    """

    kind: Literal["integer", "real"]
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    example: str = ""

    def describe(self) -> str:
        """Return what the parameter must be, in words (``an integer >= 1``)."""
        kind = "an integer" if self.kind == "integer" else "a number"

        def shown(v: float | None) -> str | None:
            if v is None:
                return None
            return f"{int(v)}" if self.kind == "integer" else f"{v:g}"

        lo, hi = shown(self.low), shown(self.high)
        if lo is not None and hi is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            where = f"in {left}{lo}, {hi}{right}"
        elif lo is not None:
            where = f"{'>' if self.low_open else '>='} {lo}"
        elif hi is not None:
            where = f"{'<' if self.high_open else '<='} {hi}"
        else:
            where = "(finite)" if self.kind == "real" else ""
        text = f"{kind} {where}".rstrip()
        return f"{text} or None" if self.optional else text

    def admits(self, value: Any) -> bool:
        """Return whether ``value`` satisfies the constraint."""
        if value is None:
            return self.optional
        if isinstance(value, bool):
            return False
        if not isinstance(value, numbers.Integral if self.kind == "integer" else numbers.Real):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or (v < self.high if self.high_open else v <= self.high)

    def check(self, label: str, value: Any) -> Any:
        """Return ``value`` if admitted, else raise ``ValueError`` naming ``label``."""
        if self.admits(value):
            return value
        hint = f", e.g. {self.example}" if self.example else ""
        shown = value.item() if hasattr(value, "item") and not isinstance(value, list) else value
        raise ValueError(f"{label} must be {self.describe()}{hint}; got {shown!r}")


#: Every validated numeric parameter, by argument name.
PARAMETERS: dict[str, Constraint] = {
    # training (fit, pretrain, the selector, the CLI)
    # an upper bound catches a typo (1e9 epochs) before hours of training
    "epochs": Constraint("integer", low=1, high=1_000_000, example="100"),
    "max_steps": Constraint("integer", low=1, example="20000"),
    "batch_size": Constraint("integer", low=1, example="128"),
    "lr": Constraint("real", low=0, low_open=True, example="0.01"),
    "kl_warmup": Constraint("integer", low=0, example="0 (off) or 10"),
    "max_weight_variance": Constraint("real", low=0, low_open=True, example="0.04"),
    "group_penalty": Constraint("real", low=0, example="1.5e-3"),
    "num_samples": Constraint("integer", low=1, example="500"),
    # Monte-Carlo draws of an estimate with a standard error (elbo_estimate)
    "num_particles": Constraint("integer", low=2, example="100"),
    "seed": Constraint("integer", low=0, high=SEED_LIMIT - 1, example="0"),
    # torch intra-op threads for the duration of a call (None: leave torch's setting)
    "threads": Constraint("integer", low=1, high=4096, optional=True, example="1"),
    # fit's convergence stop: relative change of the window means, window length in epochs
    "tol": Constraint("real", low=0, low_open=True, optional=True, example="1e-3 (or None: off)"),
    "convergence_window": Constraint("integer", low=2, example="50"),
    # pruning
    "tolerance": Constraint(
        "real", low=0, high=1, high_open=True, example="0.01 (1 point of error)"
    ),
    "sparsity": Constraint("real", low=0, high=1, high_open=True, example="0.5"),
    # priors
    "scale": Constraint("real", low=1e-6, high=1e6, example="1.0"),
    "prior_inclusion": Constraint("real", low=1e-6, high=1 - 1e-6, example="0.1"),
    # feature selection
    "pretrain_epochs": Constraint("integer", low=0, optional=True, example="0 (off) or 100"),
    "kl_warmup_fraction": Constraint("real", low=0, high=1, example="0.1"),
    "fdr_level": Constraint("real", low=0, high=1, high_open=True, example="0.1"),
    "k": Constraint("integer", low=1, optional=True, example="5"),
    "n_init": Constraint("integer", low=1, high=100, example="1 or 3"),
}


def check(name: str, value: Any, *, label: str | None = None) -> Any:
    """Validate ``value`` against ``PARAMETERS[name]`` and return it.

    Parameters
    ----------
    name
        A key of :data:`PARAMETERS`.
    value
        The value given.
    label
        The name the message uses (the argument's name by default; the CLI passes its
        option, ``--epochs``).

    Raises
    ------
    ValueError
        ``"<label> must be <what>, e.g. <example>; got <value>"``.
    """
    return PARAMETERS[name].check(label or name, value)


def check_layer_names(label: str, names: Iterable[str], layers: Sequence[str]) -> None:
    """Check that a per-layer mapping names every layer exactly (no unknown, none missing).

    Parameters
    ----------
    label
        What the mapping is, for the message (``"a threshold dict"``).
    names
        The mapping's keys.
    layers
        The layer names, in network order.

    Raises
    ------
    ValueError
        ``"<label> must name every layer exactly: [...]; unknown [...]; missing [...]"``.
    """
    given = set(names)
    unknown = sorted(given - set(layers))
    missing = [k for k in layers if k not in given]
    if unknown or missing:
        raise ValueError(
            f"{label} must name every layer exactly: {list(layers)}"
            + (f"; unknown {unknown}" if unknown else "")
            + (f"; missing {missing}" if missing else "")
        )


def first_line(error: BaseException) -> str:
    """Return the first line of an exception's message, or its type's name if it has none.

    Messages of one line (the CLI's contract) quote what a library raised this way;
    terminal escape sequences and control characters are removed.
    """
    text = _CONTROL.sub("", str(error).replace("\r", "\n"))  # no terminal control
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


#: terminal control: CSI and OSC sequences, other escapes, C0 and C1 control characters,
#: and the bidirectional overrides that reorder what a terminal shows
_CONTROL = re.compile(
    r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]"
    r"|[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)
