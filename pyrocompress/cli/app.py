"""Command line: ``pyrocompress demo``, ``pyrocompress compress`` and ``pyrocompress select``.

``--model`` and ``--dataset`` name entries of registries: the models of ``_MODELS`` here
(ready-made, or ``module:PATH.py:FACTORY`` for the user's own) and the data sets of
:func:`pyrocompress.data.registered_datasets`.

Bad input (a wrong option value, missing data, an unusable ``--out``) ends with a one-line
message on stderr and exit code 2; no output file is written unless the whole run
succeeds.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import inspect
import itertools
import math
import os
import re
import sys
import tempfile
import time
import traceback
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, cast

import numpy as np
import pandas as pd
import torch

from pyrocompress import data as datasets
from pyrocompress.analysis import Posterior, variable_prefix
from pyrocompress.compress.deploy import EXPORT_FORMATS, check_formats, deployable_files
from pyrocompress.compress.files import save_compact
from pyrocompress.compress.pruning import MOMENT_SCORES, SCORES, plain_input, prune, pruning_curve
from pyrocompress.compress.report import format_report, json_writer, write_outputs
from pyrocompress.compress.rules import pruning_rules
from pyrocompress.compress.surgery import needs_graph_export
from pyrocompress.constraints import check, first_line
from pyrocompress.infer import History, fit, world
from pyrocompress.infer.checkpoint import check_checkpoint_target
from pyrocompress.infer.posterior_file import POSTERIOR_NAME, load_posterior, posterior_bytes
from pyrocompress.infer.training import FIT_TOL, ConvergenceWarning
from pyrocompress.nn import (
    BayesianNetwork,
    bayesianize,
    lenet5_caffe,
    lenet_300_100,
    mlp,
    resnet20,
    vgg_bn_cifar,
)
from pyrocompress.plots import (
    plot_architecture,
    plot_bits,
    plot_forest,
    plot_group_histograms,
    plot_input_importance,
    plot_loss,
    plot_pip_stem,
    plot_pruning_curve,
)
from pyrocompress.priors import get_prior, prior_keys
from pyrocompress.priors.conditional import GUIDES
from pyrocompress.rng import DEFAULT_THREADS, seeded, threads_by
from pyrocompress.selection.estimator import (
    DEFAULT_TOL,
    FeatureSelector,
    infer_task,
    selection_priors,
)

__all__ = ["build_model", "main", "run", "run_prune", "run_select"]

DEMO = {
    "model": "mlp:64-100-100-10",
    "prior": "group-horseshoe",
    "dataset": "digits",
    "epochs": 300,
    "batch_size": 128,
    "lr": 1e-2,
    "tol": None,  # a fixed recipe: the README's demo numbers are those of 300 epochs
}


class UsageError(ValueError):
    """A problem with the user's input: reported in one line, exit code 2."""


class RunError(RuntimeError):
    """A failure after the input was accepted (an export): one line, exit code 1."""


class _HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, unless its text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text
            or default is None
            or default is False
            or default == ""
            or default is argparse.SUPPRESS
        ):
            return action.help
        return f"{text} (default: %(default)s)".lstrip()


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (no usage block), exit 2.

    Its help shows every option's default (:class:`_HelpFormatter`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())  # one line, whatever argparse put in it
        self.exit(2, f"{self.prog}: error: {message} (run `{self.prog} --help` for usage)\n")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Parse ``args`` as :meth:`argparse.ArgumentParser.parse_args` does.

        Unlike it, an unknown option is reported by the subcommand it was given to
        (``pyrocompress compress: error: ...``).
        """
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            commands = {}
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction):
                    commands.update(action.choices)
            parser = commands.get(getattr(parsed, "command", None), self)
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return cast(argparse.Namespace, parsed)


def _check(name: str, value, option: str) -> None:
    """Validate ``value`` against the library's constraint ``name``, naming the CLI ``option``.

    The constraints are those of :data:`pyrocompress.constraints.PARAMETERS`.
    """
    try:
        check(name, value, label=option)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _check_writable_dir(path: str | None, option: str) -> None:
    """Raise :class:`UsageError` unless ``path`` is a writable folder or one that can be created.

    A folder can be created when it does not exist and its nearest existing parent is a
    writable folder. Nothing is left behind.
    """
    if path is None:
        return
    if not str(path).strip():
        raise UsageError(f"{option} is empty; give a directory (created if missing)")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option} {path} is a file; give a directory (created if missing)")
    probe_in = folder
    while not probe_in.exists():
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise UsageError(
            f"{option} {path} cannot be created: {probe_in} is a file, not a directory; "
            "give a path whose parents are directories"
        )
    try:  # a real write: permissions, read-only file systems, quotas
        os.rmdir(tempfile.mkdtemp(prefix=".pyrocompress-probe-", dir=probe_in))
    except OSError as e:
        what = "is not writable" if probe_in == folder else "cannot be created"
        raise UsageError(
            f"{option} {path} {what} ({e.strerror or e} in {probe_in}); give a directory "
            "in a place you can write to"
        ) from None


# --------------------------------------------------------------------------- --model


class BuiltModel(NamedTuple):
    """A model built for ``--model`` and how its compact form is rebuilt from a file.

    ``factory`` (``"package.module:function"``, or ``"PATH.py:FACTORY"`` for a user's
    file) and ``factory_kwargs`` are given to :func:`~pyrocompress.save_compact` for a
    network that is not an ``nn.Sequential``; ``None`` for the ready-made chains.
    """

    module: torch.nn.Module
    factory: str | None = None
    factory_kwargs: dict[str, int] | None = None


#: Builds the model from the shape of one input example and the number of classes:
#: ``build(in_shape, num_classes)``.
ModelBuilder = Callable[[tuple[int, ...], int], BuiltModel]


@dataclass(frozen=True)
class _ModelKind:
    """One kind of ``--model`` value: ``NAME`` or, when ``argument``, ``NAME:ARGUMENT``.

    ``resolve(spec, argument)`` checks what it can without the data (sizes, the user's
    file) and returns the builder, which checks the rest against the data.
    """

    resolve: Callable[[str, str], ModelBuilder]
    usage: str
    help: str
    argument: bool = False


def _fixed(
    build: Callable[[tuple[int, ...], int], torch.nn.Module],
) -> Callable[[str, str], ModelBuilder]:
    """Return the ``resolve`` of a ready-made chain: its builder, nothing to check first."""
    return lambda spec, argument: lambda in_shape, k: BuiltModel(build(in_shape, k))


def _cifar(name: str, factory: Callable[..., torch.nn.Module], side: int | None):
    """Return the ``resolve`` of a ready-made CNN of :mod:`pyrocompress.nn.models`."""

    def build(in_shape: tuple[int, ...], num_classes: int) -> BuiltModel:
        if len(in_shape) != 3 or (side is not None and tuple(in_shape[1:]) != (side, side)):
            need = f"{side}x{side} images" if side is not None else "images [C, H, W]"
            raise UsageError(
                f"{name} needs {need} (--dataset mnist32 or cifar10); this data has shape "
                f"{tuple(in_shape)}"
            )
        kwargs = {"num_classes": num_classes, "in_channels": in_shape[0]}
        return BuiltModel(factory(**kwargs), f"{factory.__module__}:{factory.__name__}", kwargs)

    return lambda spec, argument: build


def _lenet5(in_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    if tuple(in_shape[-2:]) != (28, 28):
        raise UsageError(
            f"lenet-5-caffe needs 28x28 images (--dataset mnist); this data has shape "
            f"{tuple(in_shape)}"
        )
    return lenet5_caffe(in_shape[0] if len(in_shape) == 3 else 1, num_classes)


#: the most weights an ``mlp:`` model may have (a typo's width should not exhaust memory)
_MAX_MLP_WEIGHTS = 500_000_000


def _mlp(spec: str, argument: str) -> ModelBuilder:
    try:
        sizes = [int(s) for s in argument.split("-")]
    except ValueError:
        raise UsageError(
            f"--model {spec}: sizes must be integers, e.g. mlp:784-300-100-10"
        ) from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise UsageError(f"--model {spec}: give at least two positive sizes")
    weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    if weights > _MAX_MLP_WEIGHTS:  # each weight has a mean and a variance in the guide
        raise UsageError(
            f"--model {spec}: {weights:,} weights is more than {_MAX_MLP_WEIGHTS:,} (about "
            f"{16 * weights / 2**30:,.0f} GiB for the weights' means and variances and their "
            "gradients); give smaller widths"
        )

    def build(in_shape: tuple[int, ...], num_classes: int) -> BuiltModel:
        n_in = math.prod(in_shape)
        if sizes[0] != n_in or sizes[-1] != num_classes:
            raise UsageError(
                f"--model {spec}: the first size must be the number of inputs ({n_in}) and "
                f"the last the number of classes ({num_classes})"
            )
        return BuiltModel(mlp(sizes))

    return build


#: The keyword arguments a user's factory is given when it names them, from the data.
FACTORY_ARGUMENTS = {
    "num_classes": lambda in_shape, num_classes: num_classes,
    "in_channels": lambda in_shape, num_classes: in_shape[0],
    "in_features": lambda in_shape, num_classes: math.prod(in_shape),
}
_USER_MODULES = itertools.count()


def _user_factory(spec: str, argument: str) -> ModelBuilder:
    """``module:PATH.py:FACTORY``: import the file, find FACTORY; the builder calls it."""
    path_text, _, name = argument.rpartition(":")  # PATH may hold colons, FACTORY not
    if not path_text or not name.isidentifier():
        raise UsageError(
            f"--model {spec}: give module:PATH.py:FACTORY, FACTORY the name of a function or "
            "class in the Python file PATH.py, e.g. module:my_net.py:make_net"
        )
    path = Path(path_text).expanduser()
    if path.suffix != ".py" or not path.is_file():
        what = "not found" if not path.exists() else "is not a .py file"
        raise UsageError(
            f"--model {spec}: {path} {what}; give the path of the Python file that defines {name}"
        )
    module = _import_user_file(spec, path.resolve())
    try:
        factory = _find_factory(spec, path, module, name)
    except UsageError:
        del sys.modules[module.__name__]  # a refused file leaves no trace
        raise

    def build(in_shape: tuple[int, ...], num_classes: int) -> BuiltModel:
        try:
            accepted = inspect.signature(factory).parameters
        except (TypeError, ValueError):  # no signature to read (a builtin): no arguments
            accepted = {}
        keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        kwargs = {
            k: value(in_shape, num_classes)
            for k, value in FACTORY_ARGUMENTS.items()
            if k in accepted and accepted[k].kind in keywords
        }
        call = f"{name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
        try:
            net = factory(**kwargs)
        except Exception as e:  # the user's code: one line, with its place in their file
            raise UsageError(f"--model {spec}: {call} raised {_one_line(e, path)}") from e
        if not isinstance(net, torch.nn.Module):
            raise UsageError(
                f"--model {spec}: {call} returned a {type(net).__name__}, not a "
                "torch.nn.Module; return the model"
            )
        return BuiltModel(net, f"{path.resolve()}:{name}", kwargs)

    return build


def _find_factory(spec: str, path: Path, module: types.ModuleType, name: str) -> Callable:
    """Return the callable ``name`` of the user's ``module``, or a :class:`UsageError`."""
    if not hasattr(module, name):
        found = sorted(
            n
            for n, v in vars(module).items()
            if callable(v)
            and not n.startswith("_")
            and getattr(v, "__module__", None) == module.__name__
        )
        raise UsageError(
            f"--model {spec}: {path} defines no {name}; its functions and classes are: "
            f"{', '.join(found) or 'none'}"
        )
    factory = getattr(module, name)
    if not callable(factory):
        raise UsageError(
            f"--model {spec}: {name} in {path} is a {type(factory).__name__}, not callable; "
            "give a function or class that returns a torch.nn.Module"
        )
    return factory


def _import_user_file(spec: str, path: Path) -> types.ModuleType:
    """Import the user's file under a module name of its own (registered in ``sys.modules``)."""
    module_name = f"_pyrocompress_user_{re.sub(r'\W', '_', path.stem)}_{next(_USER_MODULES)}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"--model {spec}: {path} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # as `import` does: dataclasses, pickling find it
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # the user's code: one line, with its place in their file
        del sys.modules[module_name]
        raise UsageError(f"--model {spec}: importing {path} raised {_one_line(e, path)}") from e
    return module


def _one_line(error: BaseException, path: Path) -> str:
    """``Type: message (at FILE:LINE)``, the line the last of ``path``'s frames was on."""
    line = error.lineno if isinstance(error, SyntaxError) else None
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    message = " ".join(str(error).split()) or "(no message)"
    where = f" (at {path}:{line})" if line is not None else ""
    return f"{type(error).__name__}: {message}{where}"


#: The ``--model`` values: NAME, or NAME:ARGUMENT for the entries with an argument.
_MODELS: dict[str, _ModelKind] = {
    "lenet-300-100": _ModelKind(
        _fixed(lambda in_shape, k: lenet_300_100(math.prod(in_shape), k)),
        "lenet-300-100",
        "lenet-300-100 (flattened inputs)",
    ),
    "lenet-5-caffe": _ModelKind(_fixed(_lenet5), "lenet-5-caffe", "lenet-5-caffe (28x28)"),
    "mlp": _ModelKind(_mlp, "mlp:SIZES", "mlp:A-B-... (widths, inputs first)", argument=True),
    "vgg-bn-cifar": _ModelKind(
        _cifar("vgg-bn-cifar", vgg_bn_cifar, 32),
        "vgg-bn-cifar",
        "vgg-bn-cifar (Louizos et al. 2017; 32x32 images)",
    ),
    "resnet20": _ModelKind(
        _cifar("resnet20", resnet20, None),
        "resnet20",
        "resnet20 (He et al. 2016; images)",
    ),
    "module": _ModelKind(
        _user_factory,
        "module:PATH.py:FACTORY",
        "module:PATH.py:FACTORY, your own model: the function or class FACTORY of the file "
        "PATH.py is called with those of the keywords num_classes, in_channels (the images' "
        "channels, or the number of inputs of flat data) and in_features (the number of "
        "input values) that it names, and must return a torch.nn.Module",
        argument=True,
    ),
}


def _resolve_model(spec: str) -> ModelBuilder:
    """Check ``--model`` as far as it can be without the data; return its builder."""
    name, colon, argument = spec.partition(":")
    kind = _MODELS.get(name)
    if kind is None or kind.argument != bool(colon):
        raise UsageError(
            f"--model {spec!r} is not one of {', '.join(k.usage for k in _MODELS.values())} "
            "(e.g. mlp:784-300-100-10, module:my_net.py:make_net)"
        )
    return kind.resolve(spec, argument)


def build_model(spec: str, in_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    """Build the plain torch model that ``--model spec`` names, for the data's shapes.

    Parameters
    ----------
    spec : str
        ``lenet-300-100``, ``lenet-5-caffe``, ``mlp:784-300-100-10``, ``vgg-bn-cifar``,
        ``resnet20`` or ``module:PATH.py:FACTORY`` (a function or class of the user's
        file, called with those of the keywords of :data:`FACTORY_ARGUMENTS` it names).
    in_shape : tuple of int
        The shape of one input example, ``(C, H, W)`` for images or ``(D,)``.
    num_classes : int
        Number of classes.

    Returns
    -------
    torch.nn.Module
        The model, initialised from torch's global generator.

    Raises
    ------
    UsageError
        With a one-line message naming ``--model``: an unknown value, sizes that do not
        fit the data, a user's file or factory that cannot be used.
    """
    return _resolve_model(spec)(tuple(in_shape), num_classes).module


@threads_by("threads")
def run(
    *,
    model: str,
    prior: str,
    dataset: str,
    data_dir: str | None,
    epochs: int | None,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    out: str | None,
    kl_warmup: int = 0,
    tolerance: float = 0.01,
    lr_schedule: str = "cosine",
    pixel_range: tuple[float, float] = (0.0, 1.0),
    clip_var: float | None = None,
    checkpoint_dir: str | None = None,
    resume: bool = False,
    overwrite_checkpoint: bool = False,
    objective: str = "elbo",
    score: str = "snr",
    rule: str = "auto",
    threshold: float | None = None,
    guide: str = "mean-field",
    export: str = "",
    progress: bool = True,
    tol: float | None = FIT_TOL,
    threads: int | None = DEFAULT_THREADS,
) -> dict:
    """Train, prune and write ``report.json``, ``model.pt``, ``posterior.pt`` and plots.

    Returns the report. ``out=None`` writes into ``compress-out`` (the message names it);
    ``tol`` is :func:`~pyrocompress.fit`'s convergence tolerance (``None``: run all
    ``epochs``). ``posterior.pt`` holds the fitted posterior and the settings, for
    ``pyrocompress prune --posterior`` (:func:`run_prune`). ``threads``: torch intra-op
    threads for the whole command (one by default; ``None`` keeps torch's setting).

    ``export`` names deployable files to write too (``"onnx,packed,shared"``,
    :func:`~pyrocompress.deployable_files`): ``model.onnx`` holds the compact network of
    ``model.pt``; ``model.packed`` that network with its weights on their fixed-point
    grids, ``model.shared`` the weight-shared one.

    Every option is checked before the data are read or training starts: a number out of
    range, an ``--out`` or ``--checkpoint-dir`` that is a file or cannot be created or
    written, raise :class:`UsageError` naming the option (one line, exit code 2 from
    :func:`main`). The outputs are written all or nothing (:func:`write_outputs`).
    """
    out = DEFAULT_OUT["compress"] if out is None else out
    _check_compress_options(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        kl_warmup=kl_warmup,
        tolerance=tolerance,
        seed=seed,
        clip_var=clip_var,
        pixel_range=pixel_range,
        out=out,
        checkpoint_dir=checkpoint_dir,
        device=device,
        resume=resume,
        overwrite_checkpoint=overwrite_checkpoint,
        objective=objective,
        prior=prior,
        score=score,
        rule=rule,
        threshold=threshold,
    )
    if tol is not None:
        _check("tol", tol, "--tol")
    formats = _check_export(export)
    settings = {
        "model": model,
        "prior": prior,
        "guide": guide,
        "dataset": dataset,
        "data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
        "seed": seed,
        "pixel_range": list(pixel_range),
        "epochs": epochs,
        "objective": objective,
        "score": score,
        "rule": rule,
        "tolerance": tolerance,
        "threshold": threshold,
    }
    start = time.perf_counter()
    built, bnn, splits = _build(settings)
    settings["data_sha256"] = _fingerprint(splits)
    with warnings.catch_warnings():  # said in one line below, with the options to change
        warnings.simplefilter("ignore", ConvergenceWarning)
        history = _train(
            bnn,
            splits,
            settings,
            dict(
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                lr_schedule=lr_schedule,
                kl_warmup=kl_warmup,
                clip_var=clip_var,
                device=device,
                checkpoint_dir=checkpoint_dir,
                resume=resume,
                overwrite_checkpoint=overwrite_checkpoint,
                progress=progress,
                tol=tol,
            ),
        )
    if not world().is_main:
        return {}  # under torchrun, rank 0 prunes, reports and writes
    _warn_unconverged(history, tol, "--epochs")
    bnn.cpu()
    settings["epochs"] = len(history)
    return _prune_and_write(built, bnn, splits, history, settings, formats, out, start)


def _warn_unconverged(history: History, tol: float | None, budget: str) -> None:
    """Say in one line that training ended before its convergence test was met.

    The library's :class:`~pyrocompress.ConvergenceWarning` names ``fit``'s arguments; the
    command line names its options (``budget``: ``--epochs`` or ``--max-steps``).
    """
    if tol is None or history.converged_at is not None:
        return
    reason = history.stop_reason
    why = reason.split("; ", 1)[1] if "; " in reason else reason
    _say(
        f"pyrocompress: warning: training ended before the ELBO converged ({why}); give a "
        f"larger {budget} (now {len(history)} epochs) or --tol (now {tol:g}), or --tol off"
    )


def _fingerprint(splits) -> str:
    """SHA-256 of the validation and test data: the data ``prune --posterior`` must see."""
    digest = hashlib.sha256()
    for part in (splits.val.X, splits.val.y, splits.test.X, splits.test.y):
        array = np.ascontiguousarray(torch.as_tensor(part).cpu().numpy())
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _train(bnn: BayesianNetwork, splits, settings: dict, options: dict) -> History:
    """Fit ``bnn`` on the training split with the training options of :func:`run`."""
    o = options
    try:
        return fit(
            bnn,
            splits.train,
            epochs=o["epochs"],
            batch_size=o["batch_size"],
            lr=o["lr"],
            lr_schedule=o["lr_schedule"],
            kl_warmup=o["kl_warmup"],
            max_weight_variance=(
                {next(iter(bnn.bayesian_layers())): o["clip_var"]}
                if o["clip_var"] is not None
                else None
            ),
            validation=splits.val,
            seed=settings["seed"],
            device=o["device"],
            checkpoint_dir=o["checkpoint_dir"],
            resume=o["resume"],
            overwrite_checkpoint=o["overwrite_checkpoint"],
            objective=settings["objective"],
            progress=o["progress"],
            tol=o["tol"],
            threads=None,  # run() holds the command's number of threads
        )
    except ValueError as e:  # a checkpoint that does not fit, or refused to load
        raise UsageError(str(e)) from e


#: Where ``compress`` and ``prune`` write when ``--out`` is not given.
DEFAULT_OUT = {"compress": "compress-out", "prune": "prune-out"}


def _build(settings: dict) -> tuple[BuiltModel, BayesianNetwork, Any]:
    """Resolve the model, read the data and build the Bayesian network of ``settings``.

    ``compress`` and ``prune --posterior`` share it, so that the re-pruned network is
    built exactly as the trained one was (same seed, same data split).
    """
    model, dataset, data_dir, seed = (settings[k] for k in ("model", "dataset", "data_dir", "seed"))
    entry = datasets.registered_datasets().get(dataset)
    if data_dir is not None and entry is not None and not entry.files:
        raise UsageError(
            f"--data-dir is for the data sets read from files; --dataset {dataset} comes "
            "with its package: leave --data-dir out"
        )
    with seeded(seed):  # a user's file may draw when imported; the caller's state stays
        build = _resolve_model(model)  # before the data: a bad --model fails at once
    try:
        splits = datasets.load_dataset(
            dataset,
            data_dir=data_dir,
            seed=seed,
            flatten=None,
            pixel_range=tuple(settings["pixel_range"]),
        )
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from e
    with seeded(seed):  # torch's initialisation of the plain model; the caller's state stays
        built = build(tuple(splits.train.X.shape[1:]), splits.num_classes)
    try:
        bnn = bayesianize(
            built.module,
            get_prior(settings["prior"]),
            feature_names=splits.train.feature_names,
            guide=settings["guide"],
            seed=seed,
        )
    except (TypeError, ValueError) as e:  # a user's model with a module no rule covers
        raise UsageError(f"--model {model}: {e}") from None
    return built, bnn, splits


def _prune_and_write(
    built: BuiltModel,
    bnn: BayesianNetwork,
    splits,
    history: History,
    settings: dict,
    formats: list[str],
    out: str,
    start: float,
) -> dict:
    """Prune ``bnn`` by the rule of ``settings``, print the report, write the outputs.

    ``compress`` (after training) and ``prune --posterior`` (after loading) end here, so
    a re-pruning at the same settings gives the same network and report.
    """
    meta = {k: settings[k] for k in ("model", "prior", "dataset", "epochs", "seed")}
    meta.update(objective=settings["objective"], score=settings["score"])
    result = prune(
        bnn,
        settings["rule"],
        validation=(splits.val.X, splits.val.y),
        test=(splits.test.X, splits.test.y),
        threshold=settings["threshold"],
        tolerance=settings["tolerance"],
        score=settings["score"],
        metadata=meta,
    )
    report = result.report
    rebuild = (  # a network exported as the user's class is rebuilt by its factory
        {"factory": built.factory, "factory_kwargs": built.factory_kwargs}
        if needs_graph_export(bnn) and built.factory is not None
        else {}
    )
    files = _deployable(result, formats, bnn, splits, rebuild) if formats else {}
    if "pt2" not in formats:  # always written; a network torch.export cannot capture warns
        try:
            files.update(_deployable(result, ["pt2"], bnn, splits, rebuild))
        except (UsageError, RunError) as e:
            _say(f"pyrocompress: warning: model.pt2 is not written: {first_line(e.__cause__ or e)}")
    report["seconds"] = time.perf_counter() - start
    report["history"] = history.to_dict()
    print(format_report(report))
    writers = _compress_writers(bnn, result, history, meta, rebuild)
    posterior = posterior_bytes(bnn, settings, history)
    writers[POSTERIOR_NAME] = _bytes_writer(posterior)
    writers.update({name: _bytes_writer(data) for name, data in files.items()})
    writers.update(_more_plots(bnn, result, splits, settings["seed"]))
    _write(out, writers)
    print(f"wrote {', '.join(writers)} to {out}")
    return report


@threads_by("threads")
def run_prune(
    *,
    posterior: str,
    rule: str | None = None,
    tolerance: float | None = None,
    threshold: float | None = None,
    score: str | None = None,
    data_dir: str | None = None,
    out: str | None = None,
    export: str = "",
    threads: int | None = DEFAULT_THREADS,
) -> dict:
    """Re-prune the posterior that ``compress`` saved (``posterior.pt``), without training.

    The network is rebuilt from the settings in the file (model, prior, guide, data set,
    seed, pixel range), its fitted state loaded, and pruned by ``rule`` / ``tolerance`` /
    ``threshold`` / ``score`` (each defaulting to the saved run's); the outputs are those
    of ``compress``, ``posterior.pt`` included. At the saved settings the network and the
    report are those of the ``compress`` run (tested).
    """
    out = DEFAULT_OUT["prune"] if out is None else out
    _check_writable_dir(out, "--out")
    source = Path(posterior)
    folder = source.parent if source.suffix == ".pt" and not source.is_dir() else source
    if Path(out).resolve() == folder.resolve():
        raise UsageError(
            f"--out {out} is the folder of --posterior: give another folder, so that the "
            "compress run's outputs are kept"
        )
    formats = _check_export(export)
    try:
        saved = load_posterior(posterior)
    except ValueError as e:
        raise UsageError(f"--posterior: {first_line(e)}") from None
    settings = _prune_settings(saved["settings"], rule, tolerance, threshold, score, data_dir)
    start = time.perf_counter()
    built, bnn, splits = _build(settings)
    saved_data = settings.get("data_sha256")
    if saved_data is not None and saved_data != _fingerprint(splits):
        raise UsageError(
            f"--posterior: the validation and test data read now (--dataset "
            f"{settings['dataset']}, --data-dir {settings['data_dir']}) differ from those the "
            "compress run pruned with; give the same files with --data-dir"
        )
    try:
        load_posterior(posterior, bnn)
    except ValueError as e:
        raise UsageError(f"--posterior: {first_line(e)}") from None
    bnn.eval()
    return _prune_and_write(built, bnn, splits, saved["history"], settings, formats, out, start)


def _prune_settings(
    saved: dict,
    rule: str | None,
    tolerance: float | None,
    threshold: float | None,
    score: str | None,
    data_dir: str | None,
) -> dict:
    """Return the saved run's settings with ``prune``'s options applied, all checked."""
    settings = dict(saved)
    missing = sorted(set(_POSTERIOR_SETTINGS) - set(settings))
    if missing:
        raise UsageError(f"--posterior: the file lacks the settings {missing}")
    if rule is not None:
        settings.update(rule=rule, threshold=threshold)
    elif threshold is not None:
        settings["threshold"] = threshold
    if tolerance is not None:
        settings["tolerance"] = tolerance
    if score is not None:
        settings["score"] = score
    if data_dir is not None:
        settings["data_dir"] = str(Path(data_dir).resolve())
    _check("tolerance", settings["tolerance"], "--tolerance")
    if tolerance is not None and settings["rule"] != "auto":
        raise UsageError(
            f"--tolerance is for --rule auto; the rule here is {settings['rule']} (give "
            "--rule auto, or --threshold for a threshold rule)"
        )
    if settings["score"] not in SCORES:
        raise UsageError(f"--score must be one of {', '.join(SCORES)}; got {settings['score']!r}")
    if settings["score"] in MOMENT_SCORES and not get_prior(settings["prior"]).supports_moments:
        raise UsageError(
            f"--score {settings['score']} is computed from propagated Gaussian weight "
            f"moments: the posterior's prior is {settings['prior']}; use --score snr"
        )
    _check_rule(settings["rule"], settings["threshold"])
    return settings


#: the settings ``prune --posterior`` needs from ``posterior.pt``
_POSTERIOR_SETTINGS = (
    *("model", "prior", "guide", "dataset", "data_dir", "seed", "pixel_range", "epochs"),
    *("objective", "score", "rule", "tolerance", "threshold"),
)


def _check_export(export: str) -> list[str]:
    """``--export``: some of onnx, packed, shared; checked before any data are read."""
    if not export:
        return []
    try:
        formats = check_formats(export)
    except ValueError:
        raise UsageError(
            f"--export takes some of {', '.join(EXPORT_FORMATS)}, comma-separated (e.g. "
            f"--export onnx,packed); got {export!r}"
        ) from None
    if "onnx" in formats:
        import importlib.util

        missing = [m for m in _ONNX_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise UsageError(
                f"--export onnx needs {', '.join(missing)}: pip install 'pyrocompress[onnx]'"
            )
    return formats


#: what ``--export onnx`` imports (the ``onnx`` extra)
_ONNX_MODULES = ("onnx", "onnxruntime", "onnxscript")


def _deployable(result, formats: list[str], bnn, splits, rebuild: dict) -> dict[str, bytes]:
    """Return the bytes of the ``--export`` files; their sizes go into the report.

    A network that cannot be described is the user's input (:class:`UsageError`); an
    export that fails after training is not (:class:`RunError`, exit code 1).
    """
    try:
        return deployable_files(
            result,
            formats,
            example=plain_input(bnn, torch.as_tensor(splits.val.X[:64])),
            test=(plain_input(bnn, torch.as_tensor(splits.test.X)), torch.as_tensor(splits.test.y)),
            error=bnn.likelihood.error,
            **rebuild,
        )
    except (TypeError, ValueError) as e:
        raise UsageError(f"--export: the files cannot be written: {first_line(e)}") from e
    except RuntimeError as e:
        raise RunError(f"--export: the files cannot be written: {first_line(e)}") from e


def _bytes_writer(data: bytes):
    """Return a writer of ``data`` (outputs are staged, then published all at once)."""

    def write(path: Path) -> None:
        path.write_bytes(data)

    return write


def _check_compress_options(
    *,
    epochs,
    batch_size,
    lr,
    kl_warmup,
    tolerance,
    seed,
    clip_var,
    pixel_range,
    out,
    checkpoint_dir,
    device,
    resume,
    objective,
    overwrite_checkpoint,
    prior,
    score,
    rule,
    threshold,
) -> None:
    """Check every option of ``compress`` before the data are read (:class:`UsageError`)."""
    for name, value, option in (
        ("epochs", 1 if epochs is None else epochs, "--epochs"),
        ("batch_size", batch_size, "--batch-size"),
        ("lr", lr, "--lr"),
        ("kl_warmup", kl_warmup, "--kl-warmup"),
        ("tolerance", tolerance, "--tolerance"),
        ("seed", seed, "--seed"),
    ):
        _check(name, value, option)
    if clip_var is not None:
        _check("max_weight_variance", clip_var, "--clip-var")
    low, high = pixel_range
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise UsageError(
            f"--pixel-range needs finite LOW < HIGH, e.g. 0,1 or -1,1; got {low},{high}"
        )
    _check_writable_dir(out, "--out")
    _check_writable_dir(checkpoint_dir, "--checkpoint-dir")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was requested but CUDA is not available")
    if resume and checkpoint_dir is None:
        raise UsageError("--resume needs --checkpoint-dir, the folder of the checkpoint")
    if overwrite_checkpoint and checkpoint_dir is None:
        raise UsageError(
            "--overwrite-checkpoint needs --checkpoint-dir, the folder of the checkpoint"
        )
    if checkpoint_dir is not None:  # never start over another run's checkpoint unasked
        try:
            check_checkpoint_target(
                checkpoint_dir,
                resume=resume,
                overwrite=overwrite_checkpoint,
                names=("--checkpoint-dir", "--resume", "--overwrite-checkpoint"),
            )
        except ValueError as e:
            raise UsageError(str(e)) from None
    moments_ok = get_prior(prior).supports_moments
    if objective == "moments" and not moments_ok:
        raise UsageError(
            f"--objective moments propagates Gaussian weight moments: use --prior gaussian "
            f"(got --prior {prior}), or --objective elbo"
        )
    if score in MOMENT_SCORES and not moments_ok:
        raise UsageError(
            f"--score {score} is computed from propagated Gaussian weight moments: use "
            f"--prior gaussian (got --prior {prior}), or --score snr"
        )
    if score not in SCORES:
        raise UsageError(f"--score must be one of {', '.join(SCORES)}; got {score!r}")
    _check_rule(rule, threshold)


def _compress_writers(bnn: BayesianNetwork, result, history, meta, rebuild: dict) -> dict:
    """Return the writers of ``report.json``, ``model.pt`` and the posterior plots.

    ``rebuild`` holds the ``factory`` and ``factory_kwargs`` of a network that is not an
    ``nn.Sequential`` (:class:`BuiltModel`); a compact network that cannot be written is
    a :class:`UsageError` (and nothing is written).
    """
    from pyrocompress.plots import describe_rule, layer_labels, plan_thresholds

    report, plan = result.report, result.plan
    post = Posterior(bnn)

    def write_model(path: Path) -> None:
        try:
            save_compact(result.module, path, **rebuild, **meta)
        except (TypeError, ValueError) as e:
            raise UsageError(f"--out: model.pt cannot be written: {e}") from e

    # one histogram per layer, named by its path and size; kept/pruned from the plan's
    # masks; a threshold line only where the rule is a threshold on the quantity plotted
    labels, rule = layer_labels(bnn), describe_rule(plan, metric=report["metric"])

    def histograms(values: dict, quantity: str, xlabel: str, **kwargs) -> Callable:
        return lambda p: _save(
            plot_group_histograms(
                values,
                kept=plan.masks,
                threshold=plan_thresholds(plan, quantity),
                threshold_label=f"{plan.rule} rule's threshold",
                labels=labels,
                title=rule,
                xlabel=xlabel,
                **kwargs,
            ),
            p,
        )

    writers = {
        "report.json": json_writer(report),
        "model.pt": write_model,
        "loss.png": lambda p: _save(plot_loss(history), p),
        "log_alpha.png": histograms(
            post.log_alpha(), "log_alpha", "log α of the group (large: prunable)"
        ),
        "snr.png": histograms(  # SNR 0 is log SNR −∞: counted, not a far bar at log 1e-30
            {k: v.log() for k, v in post.snr("group").items()},
            "log_snr",
            "log SNR of the group (small: prunable)",
        ),
    }
    if all(p.has_inclusion_probabilities for p in bnn.distinct_priors()):
        writers["inclusion.png"] = histograms(
            post.inclusion_probabilities(),
            "pip",
            "inclusion probability (PIP) of the group",
            value_range=(0.0, 1.0),
        )
    return writers


def _check_rule(rule: str, threshold: float | None) -> None:
    """``--rule`` and ``--threshold``, checked before any data are read."""
    rules = pruning_rules()
    if rule != "auto" and rule not in rules:
        raise UsageError(f"--rule must be one of auto, {', '.join(rules)}; got {rule!r}")
    if threshold is None:
        return
    if rule == "auto":
        raise UsageError(
            f"--threshold is for the threshold rules ({', '.join(rules)}); --rule auto "
            "searches its own thresholds (set --tolerance instead)"
        )
    problem = rules[rule].check(threshold) if math.isfinite(threshold) else "not finite"
    if problem is not None:
        raise UsageError(f"--threshold {threshold:g} for --rule {rule}: {problem}")


def _write(out: str, writers: dict) -> None:
    """:func:`write_outputs`, with a file-system error as a :class:`UsageError`."""
    try:
        write_outputs(out, writers)
    except OSError as e:
        raise UsageError(
            f"--out {out}: the outputs could not be written ({e.strerror or e}); nothing was "
            "written there: free space or give another directory"
        ) from None


#: options whose value may start with a minus sign
_SIGNED_OPTIONS = ("--pixel-range",)


def _attach_negative_values(argv: list[str]) -> list[str]:
    """Rewrite ``--pixel-range -1,1`` as ``--pixel-range=-1,1``.

    Otherwise argparse would take ``-1,1`` for an option and stop with "expected one
    argument".
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _SIGNED_OPTIONS and i + 1 < len(argv) and argv[i + 1][:1] == "-":
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def _parse_range(text: str) -> tuple[float, float]:
    """``"-1,1"`` -> ``(-1.0, 1.0)`` for ``--pixel-range``."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LOW,HIGH, e.g. 0,1 or -1,1") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise argparse.ArgumentTypeError(f"{text!r}: need finite LOW < HIGH, e.g. -1,1")
    return low, high


def _parse_hidden(text: str) -> tuple[int, ...]:
    """``"20,10"`` → ``(20, 10)``; ``""``, ``"0"`` or ``"none"`` → ``()`` (a linear model)."""
    if text.strip().lower() in ("", "0", "none"):
        return ()
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise UsageError(
            f"--hidden must be comma-separated positive widths such as 20,10 "
            f"(or 0 for a linear model), got {text!r}"
        )
    return widths


def _parse_tol(text: str) -> float | None:
    """``--tol``: a number, or ``off`` / ``none`` for no convergence stop."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--tol must be a positive number such as 0.005, or 'off'; got {text!r}"
        ) from None


def _parse_epochs(text: str) -> int | None:
    """``--epochs``: a whole number, or ``auto`` for the budget that follows the data."""
    if text.strip().lower() == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--epochs must be a whole number such as 100, or 'auto'; got {text!r}"
        ) from None


def _parse_threads(text: str) -> int | None:
    """``--threads``: a positive integer, or ``torch`` to keep torch's own setting."""
    if text.strip().lower() == "torch":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 4096:
        raise argparse.ArgumentTypeError(
            f"--threads must be a whole number of threads >= 1 such as 1 or 2, or 'torch' "
            f"for torch's default; got {text!r}"
        )
    return value


@threads_by("threads")
def run_select(
    *,
    csv: str,
    target: str,
    task: str | None = None,
    prior: str = "spike-slab",
    hidden: str = "50,20",
    epochs: int | None = None,
    max_steps: int | None = None,
    tol: float | None = DEFAULT_TOL,
    fdr: float | None = None,
    seed: int = 0,
    out: str | None = None,
    guide: str = "mean-field",
    exclude: str = "",
    n_init: int = 1,
    progress: bool = True,
    threads: int | None = DEFAULT_THREADS,
) -> dict:
    """Select features of a CSV table; writes ``selection.json`` and ``pip.png`` to ``out``.

    ``threads``: torch intra-op threads for the whole command (the library's policy, one;
    :func:`pyrocompress.rng.intra_op_threads`).

    ``exclude`` names columns (comma-separated) that are neither the target nor features:
    an ID column, a date. ``selection.json`` records the run: task, prior, hidden widths,
    epochs run, seed, excluded columns and the package version.

    The training budget is the selector's
    (:func:`~pyrocompress.selection.estimator.training_budget`):
    ``epochs`` fixes it, else ``max_steps`` and ``tol`` (``None``: no convergence stop)
    shape the default one. ``n_init`` fits from that many initialisations and keeps the one
    with the highest ELBO (``FeatureSelector(n_init=...)``), recorded in ``selection.json``
    with every initialisation's ELBO.

    Numeric (and boolean) columns are features as they are; a non-numeric column (text
    labels) is one-hot encoded, every level a column, and its columns share one gate, so
    it is selected or dropped as a whole with one inclusion probability (see
    :class:`~pyrocompress.FeatureSelector`); the report names the CSV's columns.

    ``pip.png`` marks the cut-off of the rule used: PIP 0.5 for the median-probability
    model :cite:p:`barbieri2004optimal`, the smallest selected PIP with ``--fdr``
    :cite:p:`newton2004detecting`. Every option is checked before the CSV is read; a bad one raises
    :class:`UsageError` naming it. Returns the selection (the contents of ``selection.json``).
    """
    _check_writable_dir(out, "--out")
    if epochs is not None:
        _check("epochs", epochs, "--epochs")
    if max_steps is not None:
        _check("max_steps", max_steps, "--max-steps")
    _check("tol", tol, "--tol")
    if fdr is not None:
        _check("fdr_level", fdr, "--fdr")
    _check("seed", seed, "--seed")
    _check("n_init", n_init, "--n-init")
    widths = _parse_hidden(hidden)
    reason = None
    excluded = [c.strip() for c in exclude.split(",") if c.strip()]
    if target in excluded:
        raise UsageError(f"--exclude names the target column {target!r}; it cannot be both")
    try:
        X, y = _load_table(csv, target, excluded)
        if task is None:
            task, reason = infer_task(y)  # once here, so the selector does not infer it again
    except ValueError as e:
        raise UsageError(str(e)) from e
    is_main = world().is_main  # under torchrun, rank 0 prints and writes
    if is_main and reason is not None:
        print(f"task: {task} (inferred: {reason}; override with --task)")
    elif is_main:
        print(f"task: {task}")
    selector = FeatureSelector(
        task=task,
        prior=prior,
        hidden=widths,
        guide=guide,
        epochs=epochs,
        max_steps=max_steps,
        tol=tol,
        rule="median" if fdr is None else "fdr",
        fdr_level=0.1 if fdr is None else fdr,
        random_state=seed,
        n_init=n_init,
        progress=progress,
    )
    try:
        with warnings.catch_warnings():  # said in one line below, with the options to change
            warnings.simplefilter("ignore", ConvergenceWarning)
            selector.fit(X, y)
    except ValueError as e:
        raise UsageError(str(e)) from e
    if not is_main:
        return {}
    _warn_unconverged(selector.history_, selector.budget_.tol, "--max-steps")
    from pyrocompress import __version__

    selection = {
        **selector.summary_dict(),
        "seconds": selector.fit_seconds_,
        "task": task,
        "prior": prior,
        "hidden": list(widths),
        "epochs": selector.history_.epoch[-1],
        "seed": seed,
        "n_init": n_init,
        # per example, in nats: the kept fit's, and every initialisation's
        "elbo": selector.elbo_,
        "init_elbos": selector.init_elbos_.tolist(),
        "excluded": excluded,
        "version": __version__,
        # the sign and size of each column's effect, where the model is linear
        "effects": selector.effects() if not widths else None,
    }
    print(_format_selection(selection, prior, widths, selector.history_.epoch[-1]))
    if out is not None:
        writers = {
            "selection.json": json_writer(selection),
            "pip.png": lambda p: _save(selector.plot_inclusion_probabilities(), p),
        }
        _write(out, writers)
        print(f"wrote {', '.join(writers)} to {out}")
    return selection


def _load_table(
    csv: str, target: str, excluded: Sequence[str] = ()
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read the CSV of ``select``: its feature columns as a DataFrame, and the target.

    As :func:`pyrocompress.data.load_csv` (the same checks and messages), except that
    a non-numeric feature column is kept as text for the selector to one-hot encode; a
    missing value in one is refused with its data rows.
    """
    from pyrocompress.data import loaders

    path = Path(csv)
    if not path.is_file():
        raise ValueError(f"CSV file {path} does not exist (or is not a file)")
    raw, df = loaders._read_csv(path)
    loaders._check_unique_header(path, raw)
    unknown = [c for c in excluded if c not in {str(name) for name in df.columns}]
    if unknown:
        raise ValueError(
            f"--exclude names {', '.join(map(repr, unknown))}, not a column of {path}; its "
            "columns are: " + ", ".join(map(str, df.columns))
        )
    df = df.drop(columns=list(excluded))
    features = loaders._feature_columns(path, df, target)
    numeric = [c for c in features if c not in _text_columns(df, features)]
    values = dict(zip(numeric, loaders._numeric_features(df, numeric).T)) if numeric else {}
    columns: dict[str, Any] = {}  # built at once below: column by column fragments a frame
    for c in features:
        if c in values:
            columns[c] = values[c]
            continue
        missing = df[c].isna().to_numpy()
        if missing.any():
            raise ValueError(
                f"feature column {c!r} has missing values in data row(s) "
                f"{loaders._rows(missing)}; fill them with a level of their own or drop "
                "those rows"
            )
        parsed = np.asarray(pd.notna(pd.to_numeric(df[c], errors="coerce")), dtype=bool)
        if parsed.mean() >= 0.5:  # a numeric column with a stray value: not categories
            row = int(np.flatnonzero(~parsed)[0])
            raise ValueError(
                f"feature column {c!r} is numeric but for value {df[c].iloc[row]!r} in data "
                f"row {row + 1}; fix or drop those rows (a column of labels is one-hot "
                "encoded, but this one looks like numbers)"
            )
        columns[c] = df[c].astype(str).to_numpy()
    X = pd.DataFrame(columns, index=df.index, columns=features)
    y = loaders._target_values(cast("pd.Series", df[target]), target)
    return X, y


def _text_columns(df: pd.DataFrame, features: list[str]) -> set[str]:
    """Return the feature columns of ``df`` that are neither numbers nor booleans."""
    return {
        c
        for c in features
        if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]))
    }


def _format_selection(selection: dict, prior: str, hidden: tuple, epochs: int) -> str:
    pip = selection["inclusion_probabilities"]
    ranked = sorted(pip, key=pip.get, reverse=True)
    shown = ranked[: max(10, len(selection["selected"]))]
    width = max(len(n) for n in shown)
    arch = "-".join(map(str, hidden)) or "linear"
    lines = [
        f"prior {prior}, hidden {arch}, {epochs} epochs, {selection['seconds']:.1f} s",
        f"rule: {selection['rule']}; selected {len(selection['selected'])} of {len(pip)} "
        f"features, estimated FDR {selection['estimated_fdr']:.3f}",
        f"{'feature':<{width}}  PIP",
    ]
    for name in shown:
        mark = "  selected" if name in selection["selected"] else ""
        lines.append(f"{name:<{width}}  {pip[name]:.3f}{mark}")
    if len(ranked) > len(shown):
        lines.append(f"... {len(ranked) - len(shown)} more features with lower PIP")
    return "\n".join(lines)


def _more_plots(bnn: BayesianNetwork, result, splits, seed) -> dict:
    """PIP stem plot, input importance, pruning curve, architecture, bits, forest plot.

    Layers are named by :func:`~pyrocompress.plots.layer_labels`, input features by the
    data's names (``pixel_<row>_<column>`` for images), what was kept is coloured from
    the plan's masks, and the rule is said in words (:func:`~pyrocompress.plots.describe_rule`).
    """
    from pyrocompress.plots import describe_rule, layer_labels, plan_thresholds

    report, post, plan = result.report, Posterior(bnn), result.plan
    layers, labels = bnn.bayesian_layers(), layer_labels(bnn)
    rule = describe_rule(plan, metric=report["metric"])
    first = report["layers"][0]
    val = (splits.val.X, splits.val.y)
    score = plan.score if plan.score in _PLOTTED_SCORES else "snr"  # the curve's ranking
    before, after = report["architecture_before"], report["architecture_after"]
    names = _interface_names(bnn, labels)
    writers: dict[str, Callable[[Path], None]] = {
        "architecture.png": lambda p: _save(
            plot_architecture(before, after, names=names if len(names) == len(before) else None),
            p,
        ),
        "bits.png": lambda p: _save(
            plot_bits(report["bits_per_layer"], [labels[k] for k in report["layers"]]), p
        ),
        "pruning_curve.png": lambda p: _save(
            plot_pruning_curve(
                pruning_curve(bnn, val, score=score),
                metric=report["metric"],
                score=_PLOTTED_SCORES[score][0],
                chosen=_chosen_point(bnn, plan, val),
                chosen_label=f"the pruned network ({plan.rule} rule)",
            ),
            p,
        ),
    }
    feature_names, noun = _group_names(bnn, first, labels[first], splits.train.image_shape)
    if all(p.has_inclusion_probabilities for p in bnn.distinct_priors()):
        writers["pip.png"] = lambda p: _save(
            plot_pip_stem(
                post.inclusion_probabilities()[first],
                feature_names=feature_names,
                threshold=plan_thresholds(plan, "pip").get(first),
                threshold_label=f"{plan.rule} rule's threshold",
                selected=plan.masks[first].cpu().numpy(),
                selected_labels=("kept", "pruned"),
                xlabel=noun,
                title=f"inclusion probabilities of the groups of {labels[first]}\n{rule}",
            ),
            p,
        )
    if report.get("kept_inputs") is not None and splits.train.image_shape is not None:
        shape = tuple(splits.train.image_shape)
        if (
            len(report["kept_inputs"]) <= shape[0] * shape[1]
            and layers[first].spec.weight_shape[1] == shape[0] * shape[1]
        ):
            what, statistic = _PLOTTED_SCORES[score]
            writers["input_importance.png"] = lambda p: _save(
                plot_input_importance(
                    report["kept_inputs"],
                    shape,
                    values=statistic(post)[first],
                    values_label=what,
                ),
                p,
            )

    def forest(path: Path) -> None:
        # the forest shows posterior draws only: two input rows (no y) keep the replay of
        # each draw cheap (500 rows with their log-likelihood took 19 s on LeNet-5)
        tree = post.to_datatree(splits.val.X[:2], num_samples=100, seed=seed)
        smallest = min(layers, key=lambda k: layers[k].spec.num_groups)
        var = f"{variable_prefix(smallest)}_scale"
        title = f"group gates ({var}) of {labels[smallest]}, near 0 when a group is off"
        _save(plot_forest(tree, [var], kept=plan.masks[smallest].cpu(), title=title), path)

    writers["forest.png"] = forest
    return writers


#: The posterior scores the plots can rank by: their name in words and the statistic.
_PLOTTED_SCORES: dict[str, tuple[str, Callable[[Posterior], dict[str, torch.Tensor]]]] = {
    "snr": ("log SNR", lambda post: {k: v.log() for k, v in post.snr("group").items()}),
    "log_alpha": ("log α", lambda post: post.log_alpha()),
    "pip": ("PIP", lambda post: post.inclusion_probabilities()),
}


def _chosen_point(bnn: BayesianNetwork, plan, val) -> tuple[float, float]:
    """Return the plan's point on the pruning curve: weights its masks remove, and the metric."""
    total = kept = 0
    for name, layer in bnn.bayesian_layers().items():
        sizes = torch.tensor(layer.spec.group_sizes)
        total += int(sizes.sum())
        kept += int(sizes[plan.masks[name].cpu().bool()].sum())
    metric = plan.validation_error_pruned
    if metric is None:  # a threshold rule: the metric of its masks, as the curve's
        X, y = torch.as_tensor(val[0]).float(), torch.as_tensor(val[1])
        metric = bnn.point_error(X.to(bnn.device), y.to(bnn.device), plan.masks)
    return 1.0 - kept / total, float(metric)


def _interface_names(bnn: BayesianNetwork, labels: dict[str, str]) -> list[str]:
    """Name the layer interfaces of the report's architecture: inputs, each layer's outputs.

    As the report counts them: a Linear layer after a convolution adds its (flattened)
    inputs.
    """
    names, previous = ["inputs"], None
    for name, layer in bnn.bayesian_layers().items():
        short = labels[name].split(":")[0]
        if previous is not None and previous.groups_on_outputs and not layer.groups_on_outputs:
            names.append(f"{short} in")
        names.append(f"{short} out")
        previous = layer
    return names


def _group_names(
    bnn: BayesianNetwork, first: str, label: str, image_shape
) -> tuple[list[str] | None, str]:
    """Return the names of the first layer's groups (or ``None``) and what a group is."""
    layer = bnn.bayesian_layers()[first]
    n_in = layer.spec.weight_shape[1]
    if layer.groups_on_outputs:
        return None, f"output channel of {label}"
    if layer.spec.column_groups is not None:
        return None, "group of input columns"
    if bnn.feature_names is not None:
        return list(bnn.feature_names), "input feature"
    if image_shape is not None and len(image_shape) == 2 and math.prod(image_shape) == n_in:
        width = image_shape[1]
        return [f"pixel_{i // width}_{i % width}" for i in range(n_in)], "input pixel"
    return None, "input"


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


_GUIDE_HELP = (
    "the weights' guide: independent of their group's gate (mean-field), or Gaussian "
    "given it (conditional; priors with a continuous gate)"
)


_SEED_HELP = "seed of the initial weights, minibatches and noise (same seed, same run)"
_EXPORT_HELP = (
    "deployable files to write next to model.pt, comma-separated: onnx (model.onnx; needs "
    "pip install 'pyrocompress[onnx]'), packed (model.packed: the compact network with its "
    "weights at their bits), shared (model.shared: k-means weight sharing); model.pt2 (a "
    "torch.export program that loads with torch alone) is always written"
)


def _add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads``, the same on every command."""
    parser.add_argument(
        "--threads",
        type=_parse_threads,
        default=DEFAULT_THREADS,
        help="torch intra-op threads (one per process keeps runs that share cores fast; "
        "the number of cores for one large run alone; 'torch' for torch's own setting)",
    )


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pyrocompress",
        description="Bayesian compression of neural networks with Pyro: train with group "
        "priors, prune from the posterior, export a smaller network.",
    )
    from pyrocompress import __version__

    p.add_argument("--version", action="version", version=f"pyrocompress {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("demo", help="MLP on scikit-learn's digits, group horseshoe, auto pruning")
    d.add_argument("--out", default="demo-out", help="output directory (default: demo-out)")
    d.add_argument("--epochs", type=int, default=DEMO["epochs"], help="passes over the data")
    d.add_argument("--seed", type=int, default=0, help=_SEED_HELP)
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--export", default="packed", help=_EXPORT_HELP + " (default: %(default)s)")
    c = sub.add_parser("compress", help="train, prune and export one model")
    c.add_argument("--model", required=True, help="; ".join(k.help for k in _MODELS.values()))
    c.add_argument("--prior", required=True, choices=prior_keys())
    registered = datasets.registered_datasets()
    c.add_argument(
        "--dataset",
        required=True,
        choices=tuple(registered),
        help="; ".join(f"{k}: {e.description}" for k, e in registered.items() if e.description),
    )
    c.add_argument(
        "--data-dir",
        default=None,
        help="folder with the data set's files ("
        + "; ".join(f"{k}: {e.files}" for k, e in registered.items() if e.files)
        + ")",
    )
    c.add_argument(
        "--epochs",
        type=_parse_epochs,
        default=None,
        help="the largest number of passes over the training data, or 'auto' (the default: "
        "about 20,000 steps, pyrocompress.infer.fit_budget); training stops earlier when the "
        "ELBO has converged (--tol)",
    )
    c.add_argument(
        "--tol",
        type=_parse_tol,
        default=FIT_TOL,
        help="stop when the ELBO has converged to this relative tolerance (pyrocompress.fit), "
        "or 'off' to run all --epochs",
    )
    c.add_argument("--batch-size", type=int, default=128, help="examples per SVI step")
    c.add_argument("--lr", type=float, default=1e-2, help="Adam's learning rate")
    c.add_argument("--kl-warmup", type=int, default=0, help="epochs of linear KL warm-up")
    c.add_argument("--tolerance", type=float, default=0.01, help="auto rule: max error increase")
    c.add_argument(
        "--lr-schedule",
        default="cosine",
        choices=("cosine", "constant", "exponential"),
        help="learning-rate schedule over the epochs",
    )
    c.add_argument(
        "--pixel-range",
        type=_parse_range,
        default=(0.0, 1.0),
        metavar="LOW,HIGH",
        help="interval the pixels are scaled to (default 0,1; Louizos et al.'s code: -1,1)",
    )
    c.add_argument(
        "--clip-var",
        type=float,
        default=None,
        help="largest weight variance of the first layer (Louizos et al.'s code: 0.04)",
    )
    c.add_argument("--seed", type=int, default=0, help=_SEED_HELP)
    c.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="training device")
    c.add_argument(
        "--objective",
        default="elbo",
        choices=("elbo", "moments"),
        help="sampled ELBO, or its sampling-free moment-propagation form (gaussian prior)",
    )
    c.add_argument(
        "--score",
        default="snr",
        choices=SCORES,
        help="what ranks the groups for the automatic pruning rule: posterior group SNR "
        "(default), log_alpha, pip, or the propagated-moment scores output_snr, "
        "kernel_norm, variance_share (gaussian prior)",
    )
    c.add_argument(
        "--rule",
        default="auto",
        choices=("auto", *pruning_rules()),
        help="the pruning rule: auto (default; the largest pruning within --tolerance of "
        "the validation error) or a threshold rule (pyrocompress.compress.pruning_rules)",
    )
    c.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="the threshold of a threshold rule (default: the rule's own)",
    )
    c.add_argument(
        "--checkpoint-dir", default=None, help="save a checkpoint there after every epoch"
    )
    c.add_argument(
        "--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir"
    )
    c.add_argument(
        "--overwrite-checkpoint",
        action="store_true",
        help="start afresh and replace the checkpoint in --checkpoint-dir (without it or "
        "--resume, a checkpoint there is refused)",
    )
    c.add_argument("--guide", default="mean-field", choices=GUIDES, help=_GUIDE_HELP)
    c.add_argument(
        "--out",
        default=DEFAULT_OUT["compress"],
        help="output directory: report, model.pt, posterior.pt (for prune), plots",
    )
    c.add_argument("--export", default="", help=_EXPORT_HELP)
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    pr = sub.add_parser(
        "prune",
        help="prune a saved posterior again (another rule or tolerance), without training",
    )
    pr.add_argument(
        "--posterior",
        required=True,
        metavar="DIR",
        help="the --out folder of a compress run (its posterior.pt), or the file",
    )
    pr.add_argument(
        "--rule",
        default=None,
        choices=("auto", *pruning_rules()),
        help="the pruning rule (default: the compress run's)",
    )
    pr.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="auto rule: max error increase (default: the run's)",
    )
    pr.add_argument(
        "--threshold", type=float, default=None, help="the threshold of a threshold rule"
    )
    pr.add_argument(
        "--score", default=None, choices=SCORES, help="what ranks the groups (default: the run's)"
    )
    pr.add_argument(
        "--data-dir", default=None, help="folder of the data set's files (default: the run's)"
    )
    pr.add_argument("--out", default=DEFAULT_OUT["prune"], help="output directory")
    pr.add_argument("--export", default="", help=_EXPORT_HELP)
    sel = sub.add_parser(
        "select", help="select the features of a CSV table by posterior inclusion probability"
    )
    sel.add_argument(
        "--csv",
        required=True,
        help="CSV file with a header row (a column of text labels is one-hot encoded, one group)",
    )
    sel.add_argument("--target", required=True, help="name of the target column")
    sel.add_argument(
        "--task",
        choices=("regression", "classification"),
        default=None,
        help="default: inferred (an integer target with at most 10 values is classification)",
    )
    sel.add_argument("--prior", choices=selection_priors(), default="spike-slab")
    sel.add_argument("--hidden", default="50,20", help="hidden widths, 0 for linear (50,20)")
    sel.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="passes in minibatches (default: the budget follows the data: full batches "
        "until the ELBO converges for up to 2048 rows, else 12 000 minibatch steps)",
    )
    sel.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="most optimisation steps of the default budget (4000 full-batch, 12 000 minibatch)",
    )
    sel.add_argument(
        "--tol",
        type=_parse_tol,
        default=DEFAULT_TOL,
        help=f"convergence tolerance of the full-batch budget, or 'off' ({DEFAULT_TOL:g})",
    )
    sel.add_argument(
        "--fdr",
        type=float,
        default=None,
        metavar="Q",
        help="select by Bayesian FDR at level Q (default: median-probability model)",
    )
    sel.add_argument("--guide", default="mean-field", choices=GUIDES, help=_GUIDE_HELP)
    sel.add_argument("--seed", type=int, default=0, help=_SEED_HELP)
    sel.add_argument(
        "--n-init",
        type=int,
        default=1,
        metavar="N",
        help="fit from N initialisations and keep the one with the highest ELBO (N times the time)",
    )
    sel.add_argument("--out", default=None, help="output directory")
    sel.add_argument(
        "--exclude",
        default="",
        metavar="COL[,COL]",
        help="columns that are neither target nor features (an ID, a date)",
    )
    sel.add_argument("--quiet", action="store_true", help="no progress bar")
    for command in (d, c, pr, sel):
        _add_threads(command)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pyrocompress`` command; returns the exit code."""
    import matplotlib

    matplotlib.use("Agg")  # the command line only writes files
    parser = _parser()
    args = parser.parse_args(_attach_negative_values(sys.argv[1:] if argv is None else argv))
    if args.command == "select":
        settings = {
            k: getattr(args, k)
            for k in (
                *("csv", "target", "task", "prior", "hidden", "epochs", "max_steps", "tol"),
                *("fdr", "seed", "out", "guide", "exclude", "n_init"),
            )
        }
        return _guarded(run_select, **settings, progress=not args.quiet, threads=args.threads)
    if args.command == "prune":
        keys = ("posterior", "rule", "tolerance", "threshold", "score", "data_dir", "out")
        keys += ("export", "threads")
        return _guarded(run_prune, **{k: getattr(args, k) for k in keys})
    if args.command == "demo":
        settings = {**DEMO, "data_dir": None, "device": "cpu"}
    else:
        settings = {
            k: getattr(args, k)
            for k in ("model", "prior", "dataset", "data_dir", "batch_size", "lr", "device")
        }
        settings.update(
            kl_warmup=args.kl_warmup,
            tolerance=args.tolerance,
            lr_schedule=args.lr_schedule,
            pixel_range=args.pixel_range,
            clip_var=args.clip_var,
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
            overwrite_checkpoint=args.overwrite_checkpoint,
            objective=args.objective,
            score=args.score,
            rule=args.rule,
            threshold=args.threshold,
            guide=args.guide,
            tol=args.tol,
        )
    settings.update(
        epochs=args.epochs,
        seed=args.seed,
        out=args.out,
        export=args.export,
        progress=not args.quiet,
        threads=args.threads,
    )
    return _guarded(run, **settings)


#: How library messages name arguments, and the CLI options that set them.
_OPTIONS = {r"^out_dir ": "--out ", r"\bpass data_dir\b": "pass --data-dir"}


def _as_options(message: str) -> str:
    """Return a library message with the arguments it names as the CLI options."""
    for pattern, option in _OPTIONS.items():
        message = re.sub(pattern, option, message)
    return message


def _guarded(command, **settings) -> int:
    """Run a command; a :class:`UsageError` becomes one line on stderr and exit code 2."""
    try:
        command(**settings)
    except UsageError as e:
        _say(f"pyrocompress: error: {_as_options(str(e))}")
        return 2
    except (FloatingPointError, RunError) as e:  # training diverged, an export failed
        _say(f"pyrocompress: error: {e}")
        return 1
    return 0


def _say(message: str) -> None:
    """Print an error on stderr as one clean line, once under ``torchrun``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank checks the same input and raises
    the same error: rank 0 prints it. Control characters are removed
    (:func:`~pyrocompress.constraints.first_line`).
    """
    several = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
    if not several or os.environ.get("RANK", "0") == "0":
        print(first_line(RuntimeError(message)), file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
