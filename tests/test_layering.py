"""Imports run one way along the data flow (docs/design.md): no module imports a later
stage, at the top or inside a function (type-only imports under ``TYPE_CHECKING`` are
annotations, not imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pyrocompress"

#: The stages in data-flow order; a module may import its own stage and earlier ones.
STAGES = [
    ("effects", "rng", "constraints"),
    ("data",),
    ("distributions",),
    ("priors",),
    ("nn",),
    ("infer",),
    ("analysis",),
    ("compress",),
    ("plots",),  # figures of posterior summaries and reports: used by selection and cli
    ("selection",),
    ("cli",),
]
RANK = {name: i for i, names in enumerate(STAGES) for name in names}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "pyrocompress" else None


def _runtime_imports(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, module) of every import not guarded by ``if TYPE_CHECKING:``."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names = [f"{module}.{a.name}" for a in node.names] if module == "pyrocompress" else []
            found.extend((node.lineno, m) for m in names or [module])
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path: Path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    module = ".".join(rel.parts)
    own = _stage(module)
    if own not in RANK:  # pyrocompress/__init__.py re-exports every stage
        return
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    for line, imported in _runtime_imports(tree, package):
        stage = _stage(imported)
        if stage is None or stage not in RANK:
            continue
        assert RANK[stage] <= RANK[own], (
            f"{path.relative_to(PACKAGE)}:{line} imports {imported} ({stage}), a later "
            f"stage than {own}"
        )


def test_every_subpackage_has_a_stage():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert subpackages | modules <= set(RANK), sorted((subpackages | modules) - set(RANK))
