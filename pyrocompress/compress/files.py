"""Compact-model files: the architecture as data and the weights, loadable without pickle.

A compact ``nn.Sequential`` of plain modules is written as
``{"format", "architecture", "state_dict", "metadata"}``: the architecture is a list of
module descriptions built from the constructor arguments each module's op rule declares
(:attr:`~pyrocompress.nn.OpRule.args`), so a registered op is also a writable one.

A compact network of the user's own class (a torchvision ``ResNet`` with fewer channels)
cannot be described module by module — its ``forward`` is code. Its file
(:data:`FORMAT_FACTORY`) names the *factory* that builds the dense architecture
(``"package.module:function"`` and its keyword arguments) and describes every module
with parameters; :func:`load_compact` calls the factory, puts the described modules at
their paths and loads the weights. No code is stored or unpickled. A factory named by a
file is only a name, and calling a named function with stored arguments could run
anything (``subprocess:run``): :func:`load_compact` therefore calls on its own only the
model functions of :data:`TRUSTED_FACTORIES` (pyrocompress's and torchvision's models,
never with arguments that download weights); any other — a package function, or a
user's ``PATH.py:FACTORY`` — is used only when the caller passes it (``factory=`` the
function, or the same name to confirm it).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyrocompress.constraints import first_line
from pyrocompress.infer.checkpoint import atomic_save, safe_load
from pyrocompress.nn.rules import registered_ops

__all__ = [
    "FORMAT",
    "FORMAT_FACTORY",
    "TRUSTED_FACTORIES",
    "build_architecture",
    "describe_architecture",
    "load_compact",
    "save_compact",
]

FORMAT = "pyrocompress.compact/1"
#: The format of a compact network rebuilt by a factory.
FORMAT_FACTORY = "pyrocompress.compact-factory/1"
#: Modules whose model functions :func:`load_compact` calls as factories without being
#: asked: pyrocompress's ready-made models, and torchvision's model builders (those
#: ``torchvision.models.list_models()`` names), never with pretrained weights.
TRUSTED_FACTORIES = ("pyrocompress.nn.models", "torchvision.models")
_PYROCOMPRESS_MODELS = ("lenet_300_100", "lenet5_caffe", "mlp", "resnet20", "vgg_bn_cifar")
#: Keyword arguments that would download weights when a file is loaded.
_DOWNLOADS = ("weights", "pretrained", "weights_backbone", "pretrained_backbone")


def _writable() -> dict[str, list[type[nn.Module]]]:
    """Return the module classes a file can describe (with rule ``args``), by class name."""
    out: dict[str, list[type[nn.Module]]] = {}
    for key, rule in registered_ops().items():
        if isinstance(key, type) and issubclass(key, nn.Module) and rule.args is not None:
            out.setdefault(key.__name__, []).append(key)
    return out


def _class_named(name: object) -> type[nn.Module]:
    """Return the writable module class called ``name`` (unknown or ambiguous: ValueError)."""
    found = _writable().get(name, []) if isinstance(name, str) else []
    if len(found) != 1:
        what = "unknown" if not found else "ambiguous (registered more than once)"
        raise ValueError(f"{what} module type {name!r} in the architecture")
    return found[0]


def _describe(m: nn.Module, tensors_in_state: bool = False) -> dict:
    """Return the description of module ``m``: its type and its rule's constructor arguments.

    With ``tensors_in_state``, a tensor argument that is also a buffer or parameter of
    ``m`` is described by its shape and dtype only (:func:`_construct` makes a placeholder
    that loading the state fills).
    """
    cls = type(m)
    rule = registered_ops().get(cls)  # the exact type: files rebuild modules by class name
    args = None if rule is None else rule.args
    if args is None:
        raise TypeError(
            f"cannot serialise module {cls.__name__}: register an op rule with its "
            "constructor arguments (pyrocompress.nn.register_op(..., OpRule(args=...))), or "
            "save the network with factory='package.module:function' that builds it"
        )
    if _writable()[cls.__name__] != [cls]:
        raise TypeError(
            f"cannot serialise module {cls.__qualname__}: another registered module class is "
            f"also called {cls.__name__!r}, and files name classes by their name"
        )
    spec: dict = {"type": cls.__name__}
    for arg in args:
        value = getattr(m, arg)
        if isinstance(value, torch.Tensor):
            # a tensor argument that is also the module's state (SelectFeatures' indices)
            # is written once, with the state: the description holds its shape and dtype
            state = dict(m.named_buffers(recurse=False)) | dict(m.named_parameters(recurse=False))
            if tensors_in_state and state.get(arg) is value:
                value = {"tensor": list(value.shape), "dtype": str(value.dtype).split(".")[-1]}
            else:
                value = value.tolist()
        spec[arg] = list(value) if isinstance(value, tuple) else value
    if "bias" in inspect.signature(cls).parameters:  # a layer that may have no bias
        spec["bias"] = getattr(m, "bias", None) is not None
    return spec


def _construct(spec: dict) -> nn.Module:
    """Return the module a description of :func:`_describe` stands for."""
    spec = dict(spec)
    cls = _class_named(spec.pop("type", None))
    args = {}
    for k, v in spec.items():
        if isinstance(v, dict):  # a tensor held by the state: a placeholder of its shape
            args[k] = _placeholder(v)
        else:  # JSON-like files hold tuples (kernel sizes, strides, indices) as lists
            args[k] = tuple(v) if isinstance(v, list) else v
    return cls(**args)


#: the dtypes a file may name (placeholders here, tensors of packed files), by name
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "int64": torch.int64,
    "int32": torch.int32,
    "bool": torch.bool,
}


def _placeholder(v: dict) -> torch.Tensor:
    """Return zeros of the shape and dtype a ``{"tensor": shape, "dtype": name}`` states."""
    shape, dtype = v.get("tensor"), DTYPES.get(v.get("dtype"))  # type: ignore[arg-type]
    if (
        not isinstance(shape, list)
        or not all(isinstance(n, int) and 0 <= n < 2**31 for n in shape)
        or dtype is None
    ):
        raise ValueError(f"malformed tensor argument {v!r} in the architecture")
    return torch.zeros(shape, dtype=dtype)


def _leaf_descriptions(module: nn.Module, tensors_in_state: bool = False) -> dict[str, dict]:
    """Describe every module that holds parameters or buffers of its own, by path."""
    out = {}
    for path, m in module.named_modules():
        own = list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))
        if own and path:
            out[path] = _describe(m, tensors_in_state)
    return out


def _check_factory(factory: object) -> str:
    """Return ``factory`` if it is ``"package.module:function"`` or ``"PATH.py:function"``."""
    if not isinstance(factory, str) or ":" not in factory:
        raise TypeError(
            "factory must name the function that builds the dense architecture as "
            "'package.module:function' (e.g. 'torchvision.models:resnet18') or "
            f"'PATH.py:function'; got {factory!r}"
        )
    where, _, attr = factory.rpartition(":")
    if not where or not attr.isidentifier():
        raise ValueError(
            f"factory {factory!r} must be 'package.module:function' or 'PATH.py:function'"
        )
    return factory


def _import_factory(factory: str):
    """Import the function a factory name stands for (a module, or a Python file)."""
    import importlib
    import importlib.util

    where, _, attr = _check_factory(factory).rpartition(":")
    try:
        if where.endswith(".py"):
            spec = importlib.util.spec_from_file_location(f"_pyrocompress_factory_{attr}", where)
            if spec is None or spec.loader is None:
                raise ImportError(f"{where} is not a Python file")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        return getattr(module, attr)
    except (ImportError, AttributeError, OSError) as err:
        raise ValueError(
            f"cannot import the factory {factory!r} ({err}); install it or pass the function "
            "as load_compact(path, factory=...)"
        ) from None


def _trusted(where: str, name: str) -> bool:
    """Whether ``where:name`` is a model function :func:`load_compact` may call unasked."""
    if where == "pyrocompress.nn.models":
        return name in _PYROCOMPRESS_MODELS
    if where == "torchvision.models":
        try:
            import torchvision.models
        except ImportError:
            return False
        return name in torchvision.models.list_models()
    return False


def _check_payload(payload: dict, path: object) -> None:
    """Refuse a factory file whose fields are not what :func:`save_compact` writes."""
    fields = {"factory": str, "factory_kwargs": dict, "modules": dict}
    for key, kind in fields.items():
        if not isinstance(payload.get(key), kind):
            raise ValueError(f"{path}: the compact model's {key!r} is missing or malformed")
    downloads = sorted(k for k in payload["factory_kwargs"] if k in _DOWNLOADS)
    if downloads:
        raise ValueError(
            f"{path}: the factory's arguments {downloads} would download weights when the "
            "file is loaded; a compact model holds its own weights"
        )


def _resolve(stored: str, given: object):
    """Return the factory to call: the one given, or a trusted stored one."""
    if callable(given):
        return given
    if given is not None and given != stored:
        raise ValueError(
            f"factory={given!r} is not the file's factory {stored!r}; pass the function "
            "itself to use another"
        )
    where, _, name = stored.rpartition(":")
    if given is None and not _trusted(where, name):
        raise ValueError(
            f"the file is rebuilt by {stored!r}, which pyrocompress does not call unasked "
            f"(only {', '.join(TRUSTED_FACTORIES)} are trusted); pass the function, or "
            f"factory={stored!r} to confirm it"
        )
    return _import_factory(stored)


def describe_architecture(
    module: nn.Module,
    *,
    factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None,
    tensors_in_state: bool = False,
) -> dict[str, Any]:
    """Return the description of ``module``'s architecture that a file stores (no weights).

    Parameters
    ----------
    module
        An ``nn.Sequential`` of modules with op rules, or (with ``factory``) an instance of
        the class the factory builds.
    factory, factory_kwargs
        As for :func:`save_compact`.
    tensors_in_state
        Describe a tensor argument that is also module state (``SelectFeatures``' indices)
        by its shape and dtype only; its values then come with the state.

    Returns
    -------
    dict
        ``{"architecture": [...]}``, or ``{"factory", "factory_kwargs", "modules"}``.

    Raises
    ------
    TypeError
        As :func:`save_compact`.
    """
    if factory is None:
        if not isinstance(module, nn.Sequential):
            raise TypeError(
                f"a compact {type(module).__name__} is rebuilt by the function that builds "
                "its architecture: pass factory='package.module:function' (and "
                "factory_kwargs) to save it"
            )
        return {"architecture": [_describe(m, tensors_in_state) for m in module]}
    return {
        "factory": _check_factory(factory),
        "factory_kwargs": dict(factory_kwargs or {}),
        "modules": _leaf_descriptions(module, tensors_in_state),
    }


def build_architecture(arch: dict, path: object, *, factory=None) -> nn.Module:
    """Build the module (untrained weights) that :func:`describe_architecture` describes.

    A factory is called only as :func:`load_compact` says (trusted, or given).

    Parameters
    ----------
    arch
        The description.
    path
        The file it comes from, for messages.
    factory
        As for :func:`load_compact`.

    Returns
    -------
    torch.nn.Module
        The module, whose state the caller loads.

    Raises
    ------
    ValueError
        If the description is malformed, names an unknown module type, or a factory that
        is not trusted and not given.
    """
    with torch.random.fork_rng(devices=[]):  # constructors draw initial weights
        return _build(arch, path, factory)


def _build(arch: dict, path: object, factory) -> nn.Module:
    if "factory" not in arch:
        specs = arch.get("architecture")
        if not isinstance(specs, list) or not all(isinstance(x, dict) for x in specs):
            raise ValueError(f"{path}: the compact model's 'architecture' is malformed")
        return nn.Sequential(*[_construct_from(x, path) for x in specs])
    _check_payload(arch, path)
    try:
        build = _resolve(arch["factory"], factory)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if not callable(build):
        raise TypeError(f"the factory is a {type(build).__name__}, not callable")
    try:
        module = build(**arch["factory_kwargs"])
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(
            f"{path}: the factory {arch['factory']!r} failed: {first_line(e)}"
        ) from None
    if not isinstance(module, nn.Module):
        raise TypeError(f"the factory returned {type(module).__name__}, not an nn.Module")
    existing = dict(module.named_modules())
    for where, x in arch["modules"].items():
        parts = where.split(".") if isinstance(where, str) else [""]
        if where not in existing or not all(
            (q.isidentifier() or q.isdigit()) and not q.startswith("_") for q in parts
        ):
            raise ValueError(f"{path}: the factory's network has no module {where!r}")
        if not isinstance(x, dict):
            raise ValueError(f"{path}: the description of module {where!r} is malformed")
        parent, _, leaf = where.rpartition(".")
        owner = module.get_submodule(parent) if parent else module
        setattr(owner, leaf, _construct_from(x, path))
    return module


def _construct_from(spec: dict, path: object) -> nn.Module:
    """:func:`_construct`, any failure a ValueError naming the file."""
    try:
        return _construct(spec)
    except (TypeError, ValueError, RuntimeError) as e:  # torch refuses some values itself
        raise ValueError(
            f"{path}: malformed module description {spec!r:.80} ({first_line(e)})"
        ) from None


def save_compact(
    module: nn.Module,
    path: str | os.PathLike,
    *,
    factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None,
    **metadata: Any,
) -> None:
    """Write a compact network atomically (module docstring for the two formats).

    The file loads with ``torch.load(path, weights_only=True)``; :func:`load_compact`
    rebuilds the module from it.

    Parameters
    ----------
    module
        The compact network: an ``nn.Sequential`` of modules with op rules, or an instance
        of any class that ``factory`` builds (with more channels).
    path
        Destination file.
    factory
        ``"package.module:function"`` or ``"PATH.py:function"`` returning the dense
        architecture; required for a module that is not an ``nn.Sequential`` (e.g.
        ``"torchvision.models:resnet18"``).
    factory_kwargs
        Keyword arguments of the factory (e.g. ``{"num_classes": 10}``).
    **metadata
        Stored as they are (values ``torch.load(weights_only=True)`` can read).

    Raises
    ------
    TypeError
        If a module has no op rule with constructor arguments, or a module that is not an
        ``nn.Sequential`` comes without ``factory``.
    ValueError
        If ``factory`` is not of the form ``"package.module:function"``.

    Examples
    --------
    A round trip of a pruned network, in a temporary folder:

    >>> import os, tempfile, torch, pyrocompress as pc
    >>> g = torch.Generator().manual_seed(0)  # a local generator: global state untouched
    >>> X = torch.randn(64, 4, generator=g)
    >>> y = (X[:, 0] > 0).long()
    >>> bnn = pc.bayesianize(pc.mlp([4, 8, 2]), "group-nj", seed=0)
    >>> _ = pc.fit(bnn, (X, y), epochs=2, batch_size=32, tol=None, progress=False)
    >>> result = pc.prune(bnn, "sparsity", sparsity=0.5, example_input=X)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.pt")
    ...     pc.save_compact(result.module, path, dataset="made-up")
    ...     payload = torch.load(path, weights_only=True)  # torch alone reads it
    ...     loaded = pc.load_compact(path)
    >>> payload["format"], payload["metadata"]
    ('pyrocompress.compact/1', {'dataset': 'made-up'})
    >>> torch.equal(loaded(X), result.module(X))
    True
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    arch = describe_architecture(module, factory=factory, factory_kwargs=factory_kwargs)
    payload = {
        "format": FORMAT if factory is None else FORMAT_FACTORY,
        **arch,
        "state_dict": state,
        "metadata": metadata,
    }
    atomic_save(payload, path)


def load_compact(path: str | os.PathLike, *, factory=None) -> nn.Module:
    """Load a compact network written by :func:`save_compact`.

    The file is read with ``weights_only=True``
    (:func:`pyrocompress.infer.checkpoint.safe_load`): a file that would run code when
    unpickled raises :class:`ValueError` unexecuted.

    Parameters
    ----------
    path
        The file.
    factory
        For a file written with a factory: the function to call (with the stored keyword
        arguments) instead of the one it names, or that name, to confirm a factory outside
        :data:`TRUSTED_FACTORIES` (module docstring).

    Returns
    -------
    torch.nn.Module
        The network, in eval mode: an ``nn.Sequential``, or an instance of the factory's
        class.

    Raises
    ------
    ValueError
        If the file is not a compact model, names an unknown module type or a factory that
        cannot be imported, or cannot be read safely.

    Examples
    --------
    A network that is not an ``nn.Sequential`` is rebuilt by the factory it was saved
    with (one of pyrocompress's models here, a trusted factory):

    >>> import os, tempfile, torch, pyrocompress as pc
    >>> net = pc.resnet20(num_classes=3).eval()
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "resnet.pt")
    ...     pc.save_compact(
    ...         net, path, factory="pyrocompress.nn.models:resnet20",
    ...         factory_kwargs={"num_classes": 3},
    ...     )
    ...     loaded = pc.load_compact(path)
    >>> type(loaded).__name__, loaded.training
    ('ResNetCIFAR', False)
    >>> x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> torch.equal(loaded(x), net(x))
    True
    """
    payload = safe_load(path, "compact model")
    kind = payload.get("format") if isinstance(payload, dict) else None
    if kind not in (FORMAT, FORMAT_FACTORY) or not isinstance(payload, dict):
        raise ValueError(
            f"{path} is not a pyrocompress compact model (format {FORMAT} or {FORMAT_FACTORY})"
        )
    if not isinstance(payload.get("state_dict"), dict):
        raise ValueError(f"{path}: the compact model's 'state_dict' is missing or malformed")
    module = build_architecture(payload, path, factory=factory)
    module.load_state_dict(payload["state_dict"])
    return module.eval()
