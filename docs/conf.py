"""Sphinx configuration of the pyrocompress documentation (``make docs``).

The stack (docs/design.md, "Documentation"): Sphinx with ``numpydoc`` for the docstrings'
numpy sections, ``autosummary`` for one page per public name, ``myst-nb`` for the Markdown
pages and the notebooks (rendered with the outputs they were executed with: CI executes
every notebook in smoke mode in ``tests/test_notebooks.py``, and a full run takes an hour),
``sphinxcontrib-bibtex`` for the bibliography (``references.bib``) and the
``pydata-sphinx-theme``, the theme of NumPy, pandas and ArviZ.

The build is offline (no intersphinx inventories can be fetched on the CI machine), so a
reference to a name outside pyrocompress is not resolved; ``nitpicky`` stays on for every
name inside it, so a broken cross-reference to pyrocompress fails the build (``-W``).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

from sphinxcontrib.bibtex.plugin import register_plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _api import documented_members, public_paths, write_api_pages  # noqa: E402

import pyrocompress  # noqa: E402

project = "pyrocompress"
author = "the pyrocompress developers"
copyright = "2026, the pyrocompress developers"  # noqa: A001
release = pyrocompress.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
    "sphinxcontrib.bibtex",
]

# -- sources ----------------------------------------------------------------------------
exclude_patterns = [
    "_build",
    "results/notes/*",  # stitched into results.md by benchmarks/page/results_page.py
    "results/core/**",
    "results/fine-tune/**",
    "**.ipynb_checkpoints",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

# The notebooks live in notebooks/ (the repository's, executed in CI); the build copies them
# here, so that the site renders exactly the committed files.
NOTEBOOKS = HERE / "notebooks"
if NOTEBOOKS.exists():
    shutil.rmtree(NOTEBOOKS)
NOTEBOOKS.mkdir()
for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
    shutil.copy2(nb, NOTEBOOKS / nb.name)

# The API reference: one page per name of pyrocompress.__all__ (docs/_api.py).
write_api_pages(HERE / "api")

# -- extensions ---------------------------------------------------------------------------
templates_path = ["_templates"]
# each module page documents the names that live there (docs/_api.py)
autosummary_context = {"documented": documented_members()}
autosummary_generate = True
autosummary_imported_members = True
# a method without a docstring of its own (a torch.distributions override) shows none,
# rather than torch's, written for torch's own documentation
autodoc_inherit_docstrings = False
autodoc_typehints = "none"  # the signature shows them; numpydoc's sections say the rest
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
numpydoc_xref_param_type = False
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
bibtex_bibfiles = ["references.bib"]
bibtex_default_style = "plain"


def _semicolons() -> BracketStyle:
    return BracketStyle(sep="; ", sep2="; ", last_sep="; ")


@dataclasses.dataclass
class AuthorYearSemicolons(AuthorYearReferenceStyle):
    """Author-year citations; several in one bracket are separated by semicolons.

    The stock ``author_year`` style separates them by commas, which reads as one list of
    authors and years ("[Müller et al., 2007, Newton et al., 2004]").
    """

    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=_semicolons)
    bracket_textual: BracketStyle = dataclasses.field(default_factory=_semicolons)


register_plugin(  # force: a rerun of this file (sphinx-autobuild) registers it again
    "sphinxcontrib.bibtex.style.referencing",
    "author_year_semicolons",
    AuthorYearSemicolons,
    force=True,
)
bibtex_reference_style = "author_year_semicolons"

nitpicky = True
# names outside pyrocompress, and the type words of numpy-style "Parameters" sections
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(torch|pyro|numpy|np|pandas|pd|sklearn|xarray|arviz|arviz_base|scipy|"
        r"matplotlib|onnx|onnxruntime|safetensors|torch_pruning|collections|typing|os|"
        r"pathlib|dataclasses|abc|enum|builtins|contextlib|random|nn|optim|dist)(\..*)?",
    ),
    (r"py:.*", r"_.*"),  # private helpers, not documented
    (r"py:.*", r".*\._[A-Za-z].*"),  # private bases shown by :show-inheritance:
]

# -- output ------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"pyrocompress {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_depth": 3,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
}
html_show_sourcelink = False


# -- references to where a name is defined ------------------------------------------------
# Docstrings refer to a name by the module that defines it (``pyrocompress.nn.network.
# BayesianNetwork``) or by a subpackage (``pyrocompress.nn.BayesianNetwork``); the
# reference documents it once, at the shortest public path. A reference that finds no
# target is retried at that path (for the same object), so that it resolves when the object
# is documented and still fails the build when it is not.
_MISSING = object()
_PATHS: dict[int, str] = {}


def _lookup(target: str):
    """Return the object at the dotted path ``target``, or ``_MISSING``."""
    import importlib

    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part, _MISSING)
            if obj is _MISSING:
                break
        return obj
    return _MISSING


def _candidates(node, target: str) -> tuple[list[str], set[str]]:
    """Return the dotted paths ``target`` may mean, and the docstring's subpackages."""
    if target.startswith("pyrocompress."):
        return [target], set()
    # relative to the docstring's module and class
    module, cls = node.get("py:module"), node.get("py:class")
    scope = {_subpackage(module)} if module else set()
    candidates = [f"{module}.{cls}.{target}"] if module and cls else []
    candidates += [f"{module}.{target}"] if module else []
    # the module that defines the object whose page this is (autosummary's pages are
    # named by the object's path), or the docstring's class
    page = node.get("refdoc", "").rpartition("/")[2]
    for owner in (f"{module}.{cls}" if module and cls else None, page):
        obj = _lookup(owner) if owner and owner.startswith("pyrocompress") else _MISSING
        defined_in = getattr(obj, "__module__", None)
        if defined_in:
            candidates.append(f"{defined_in}.{target}")
            scope.add(_subpackage(defined_in))
    candidates.append(f"pyrocompress.{target}")
    return candidates, scope


def _resolve_elsewhere(app, env, node, contnode):
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py":
        return None
    candidates, scope = _candidates(node, target)
    if not _PATHS:
        _PATHS.update(public_paths())
    domain = env.get_domain("py")
    for candidate in candidates:
        parts = candidate.split(".")
        # the longest prefix that is a public object, then the attributes after it
        for cut in range(len(parts), 1, -1):
            public = _PATHS.get(id(_lookup(".".join(parts[:cut]))))
            if public is None:
                continue
            new = ".".join([public, *parts[cut:]])
            if new != target:
                found = domain.resolve_xref(
                    env, node["refdoc"], app.builder, node["reftype"], new, node, contnode
                )
                if found is not None:
                    return found
            break
    if "." not in target and not node.get("refspecific"):
        # a bare name (``:data:`SCALE_RANGE```) written in a module that does not import
        # it: the documented object of that name, if there is exactly one, and only in the
        # docstring's own subpackage (so a typo cannot link to a namesake elsewhere)
        node["refspecific"] = True
        found = domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], target, node, contnode
        )
        if found is not None and _subpackage(found.get("reftitle", "")) in scope:
            return found
    return None


def _subpackage(path: str) -> str:
    """Return ``pyrocompress.sub`` of a dotted path (the top two parts)."""
    return ".".join(path.split(".")[:2])


def _skip(app, what, name, obj, skip, options):
    """Skip scikit-learn's generated ``set_*_request`` methods (metadata routing)."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    """Register the reference fallback (see above) and the member filter."""
    app.connect("missing-reference", _resolve_elsewhere)
    app.connect("autodoc-skip-member", _skip)
