"""The documentation site's sources: the API reference covers the public API."""

import sys
from pathlib import Path

import pyrocompress

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _api():
    sys.path.insert(0, str(DOCS))
    try:
        import _api  # docs/_api.py, which conf.py runs

        return _api
    finally:
        sys.path.remove(str(DOCS))


def test_the_api_reference_lists_every_public_name_once():
    listed = [name for names in _api().api_names().values() for name in names]
    public = [name for name in pyrocompress.__all__ if name != "__version__"]
    assert sorted(listed) == sorted(public)
    assert len(listed) == len(set(listed))


def test_the_api_page_has_an_autosummary_entry_for_every_name(tmp_path):
    _api().write_api_pages(tmp_path)
    text = (tmp_path / "index.rst").read_text()
    entries = {line.strip() for line in text.splitlines() if line.startswith("   ")}
    for name in pyrocompress.__all__:
        if name in ("__version__", "REPORT_KEYS"):
            continue
        assert f"pyrocompress.{name}" in entries, name
    assert ".. autodata:: pyrocompress.REPORT_KEYS" in text


def test_every_page_of_the_toctree_exists():
    index = (DOCS / "index.md").read_text()
    pages = [
        line.strip()
        for line in index.splitlines()
        if line.strip() and "/" in line and not line.startswith((":", "`", "#", "[", "-"))
    ]
    assert pages
    for page in pages:
        if page.startswith(("notebooks/", "api/")) or "*" in page:
            continue  # copied and written by conf.py at build time; a glob
        assert any((DOCS / f"{page}{ext}").exists() for ext in (".md", ".rst")), page


README = DOCS.parent / "README.md"


def test_readme_is_a_front_door_of_at_most_150_lines():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 150


def test_every_relative_link_of_the_readme_and_the_guides_exists():
    import re

    for page in [README, *sorted((DOCS / "guide").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path = (page.parent / target).resolve()
            if path.parent == DOCS / "notebooks":  # the build copies notebooks/ there
                path = DOCS.parent / "notebooks" / path.name
            assert path.exists(), f"{page.name}: {target}"


def test_the_getting_started_quickstart_is_the_readme_one():
    """tests/test_api.py runs the README's block; the guide's copy must be the same code."""
    import re

    def first_block(path: Path) -> str:
        section = path.read_text(encoding="utf-8").split("## Quickstart", 1)[1]
        match = re.search(r"```python\n(.*?)```", section, flags=re.S)
        assert match, path
        return re.sub(r"\s+", " ", match.group(1)).strip()

    assert first_block(DOCS / "guide" / "getting-started.md") == first_block(README)
