"""Write the API reference pages (called by ``conf.py``; checked by ``tests/test_docs.py``).

Two parts:

* the public API, ``pyrocompress.__all__``: one ``autosummary`` entry (and so one page with
  the full docstring) per name, under the stage of the pipeline its module belongs to, in
  the order of ``docs/design.md`` (data → model → inference → analysis → compression →
  selection);
* every module of the package, each page documenting the names that live there and are
  not documented at a shorter path.

Each class and function is documented once, at its shortest public path:
``pyrocompress.X`` when ``X`` is in ``pyrocompress.__all__``, else ``pyrocompress.sub.X``
when it is in a subpackage's ``__all__``, else the module that defines it
(:func:`public_paths`); a constant is documented in the module that assigns it. ``conf.py`` resolves
a reference written with a longer path (``pyrocompress.nn.network.BayesianNetwork``) to that
one, for the same object. A name added to ``__all__`` or to a module appears without an
edit here.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pkgutil
import types
from pathlib import Path

import pyrocompress

#: (title, module prefixes) in the order of the pipeline
STAGES = [
    ("Networks and layers", ("pyrocompress.nn",)),
    ("Priors", ("pyrocompress.priors",)),
    ("Likelihoods", ("pyrocompress.distributions",)),
    ("Inference", ("pyrocompress.infer",)),
    ("Analysis of the posterior", ("pyrocompress.analysis",)),
    ("Compression: plans, compact networks, files", ("pyrocompress.compress",)),
    ("Feature selection", ("pyrocompress.selection",)),
]
#: values that many names share (small ints, strings): placed by the module that assigns them
_SHARED = (int, float, str, bool, type(None))


def _stage(obj) -> str | None:
    """Return the title of the stage ``obj``'s module belongs to, or None."""
    module = getattr(obj, "__module__", None) or ""
    for title, prefixes in STAGES:
        if module.startswith(prefixes):
            return title
    return None


def api_names() -> dict[str, list[str]]:
    """Return the names of ``pyrocompress.__all__`` by section title."""
    sections: dict[str, list[str]] = {title: [] for title, _ in STAGES}
    sections["Other"] = []  # data, random streams, effects, plots
    sections["Subpackages"] = []
    sections["Constants"] = []
    for name in pyrocompress.__all__:
        if name == "__version__":
            continue
        obj = getattr(pyrocompress, name)
        if isinstance(obj, types.ModuleType):
            sections["Subpackages"].append(name)
        elif _is_code(obj):
            sections[_stage(obj) or "Other"].append(name)
        else:
            sections["Constants"].append(name)
    return {k: v for k, v in sections.items() if v}


def module_names() -> list[str]:
    """Return every module of the package (``__main__`` aside), packages first."""
    names = ["pyrocompress"]
    for info in pkgutil.walk_packages(pyrocompress.__path__, "pyrocompress."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def _assigned(module: types.ModuleType) -> list[str]:
    """Return the public names a module's source defines at top level, in order."""
    return list(_assigned_in(getattr(module, "__file__", None) or ""))


@functools.cache
def _assigned_in(path: str) -> tuple[str, ...]:
    """Return :func:`_assigned` of the source file ``path`` (each file parsed once)."""
    if not path:
        return ()
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return tuple(n for n in dict.fromkeys(names) if not n.startswith("_"))


def _candidates(module: types.ModuleType) -> list[str]:
    declared = getattr(module, "__all__", None)
    own = _assigned(module)
    return list(dict.fromkeys([*(declared or []), *own]))


def _exported(module: types.ModuleType, name: str):
    """Return ``module.name`` for a name of its ``__all__`` (a lazy one imported), or None."""
    try:
        return getattr(module, name)
    except AttributeError:
        return None


def _is_code(obj) -> bool:
    return inspect.isclass(obj) or callable(obj)


def public_paths() -> dict[int, str]:
    """Return ``{id(object): its shortest public path}`` for classes, functions and data.

    A class or function in some ``__all__`` gets the shortest of those paths (fewest dots,
    then alphabetical), so ``pyrocompress.selection.top_k`` rather than
    ``pyrocompress.analysis.decisions.top_k``; anything else gets the module that assigns
    it. Lazy names (PEP 562) are imported, so the result does not depend on what was
    imported before.
    """
    modules = [importlib.import_module(m) for m in module_names()]
    exported: dict[int, list[str]] = {}
    for module in modules:
        for name in getattr(module, "__all__", []):
            obj = _exported(module, name)
            if obj is None or name == "__version__" or not _is_code(obj):
                continue  # data: autodoc documents it where it is assigned
            if isinstance(obj, types.ModuleType):
                continue
            exported.setdefault(id(obj), []).append(f"{module.__name__}.{name}")
    paths = {key: min(found, key=lambda p: (p.count("."), p)) for key, found in exported.items()}
    for module in modules:
        for name in _assigned(module):
            obj = vars(module).get(name)
            if obj is None or isinstance(obj, _SHARED):
                continue
            paths.setdefault(id(obj), f"{module.__name__}.{name}")
    return paths


def documented_members(paths: dict[int, str] | None = None) -> dict[str, list[str]]:
    """Return, per module, the names its page documents (those whose public path it is).

    The package itself documents none: its names have their own pages
    (:func:`write_api_pages`).
    """
    paths = public_paths() if paths is None else paths
    out: dict[str, list[str]] = {}
    for name in module_names():
        module = importlib.import_module(name)
        assigned = set(_assigned(module))
        keep = []
        for member in _candidates(module):
            obj = _exported(module, member)
            if obj is None or isinstance(obj, types.ModuleType) or name == "pyrocompress":
                continue
            if isinstance(obj, _SHARED) or not _is_code(obj):
                if member in assigned:
                    keep.append(member)
            elif paths.get(id(obj)) == f"{name}.{member}":
                keep.append(member)
        out[name] = keep
    return out


def write_api_pages(folder: Path) -> None:
    """Write ``folder/index.rst``: the public API by stage, then every module."""
    folder.mkdir(exist_ok=True)
    lines = [
        "API reference",
        "=============",
        "",
        "Every name in the first part is importable from ``pyrocompress`` (``import "
        "pyrocompress as pc``): the package's ``__all__``, grouped by the stage of the "
        "pipeline it belongs to. The second part documents every module with the names "
        "that live there.",
        "",
    ]
    for title, names in api_names().items():
        if title == "Subpackages":
            continue
        lines += [title, "-" * len(title), ""]
        if title == "Constants":
            for name in names:
                lines += [f".. autodata:: pyrocompress.{name}", "   :no-value:", ""]
            continue
        lines += [".. autosummary::", "   :toctree: generated", "   :nosignatures:", ""]
        lines += [f"   pyrocompress.{name}" for name in names]
        lines.append("")
    title = "Modules"
    lines += [title, "-" * len(title), ""]
    lines += [".. autosummary::", "   :toctree: generated", ""]
    lines += [f"   {name}" for name in module_names() if name != "pyrocompress"]
    lines.append("")
    text = "\n".join(lines)
    page = folder / "index.rst"
    if not page.exists() or page.read_text() != text:
        page.write_text(text)
