"""The docstrings cite ``docs/references.bib`` (sphinxcontrib-bibtex) instead of writing it out.

Two checks (issue 26): every key a ``:cite:`` role uses, in the package or in the Markdown
pages, is an entry of the bibliography (a missing key is a build warning, and ``make docs``
fails on warnings); and no docstring writes out a citation of a paper the bibliography
holds — its first author's surname followed, within a few words, by its year — outside a
``:cite:`` role. The helpers are tried on fixture strings first, so that the checks are
known to fail on what they are meant to catch.
"""

from __future__ import annotations

import ast
import inspect
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pyrocompress"
DOCS = ROOT / "docs"
BIB = DOCS / "references.bib"

#: The characters allowed between a surname and the year of a written-out citation
#: ("Louizos, Ullrich & Welling (2017", "Piironen & Vehtari 2017", "Louizos et al. 2017").
WINDOW = 40

#: An RST role (``:cite:p:`key{eq. 9}```) or a MyST one (``{cite:t}`key```).
_RST_ROLE = re.compile(r":cite:(?:[a-z]+:)?`([^`]*)`")
_MYST_ROLE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]*)`")
#: The LaTeX accents of the bibliography's names, as they print.
_LATEX = {
    r"{\o}": "ø",
    r"{\'a}": "á",
    r"{\'e}": "é",
    r"{\"u}": "ü",
    r"{\"o}": "ö",
    r"{\'o}": "ó",
    r"{\'i}": "í",
}


@dataclass(frozen=True)
class Entry:
    """One bibliography entry: its key, first author's surname and year."""

    key: str
    surname: str
    year: str


def _field(body: str, name: str) -> str:
    """Return the braced value of field ``name`` of an entry's ``body`` (nested braces kept)."""
    match = re.search(rf"\b{name}\s*=\s*\{{", body)
    if match is None:
        raise ValueError(f"no {name} field in {body[:60]!r}")
    depth, start = 1, match.end()
    for i in range(start, len(body)):
        depth += {"{": 1, "}": -1}.get(body[i], 0)
        if depth == 0:
            return body[start:i]
    raise ValueError(f"unbalanced braces in the {name} field of {body[:60]!r}")


def _plain(latex: str) -> str:
    """Return a name as it prints: LaTeX accents decoded, protective braces dropped."""
    for code, char in _LATEX.items():
        latex = latex.replace(code, char)
    text = latex.replace("{", "").replace("}", "")
    if "\\" in text:
        raise ValueError(f"undecoded LaTeX in {latex!r}: add it to _LATEX")
    return text


def parse_bib(text: str) -> list[Entry]:
    """Return the entries of a BibTeX file written in ``Surname, First and ...`` form."""
    entries = []
    for match in re.finditer(r"@\w+\{([^,\s]+),", text):
        body = text[match.end() : text.find("\n}", match.end())]
        first = _field(body, "author").split(" and ")[0]
        if "," not in first:
            raise ValueError(f"{match.group(1)}: write authors as 'Surname, First'")
        surname = _plain(first.split(",")[0].strip())
        entries.append(Entry(match.group(1), surname, _field(body, "year")))
    return entries


def cite_keys(text: str) -> list[str]:
    """Return the keys of every ``:cite:`` role (RST or MyST) in ``text``."""
    keys = []
    for match in [*_RST_ROLE.finditer(text), *_MYST_ROLE.finditer(text)]:
        content = re.sub(r"\{[^}]*\}", "", match.group(1))  # pre- and post-text
        keys += [key.strip() for key in content.split(",")]
    return keys


def written_out(text: str, entries: list[Entry]) -> list[str]:
    """Return the citations of ``entries`` that ``text`` writes out instead of citing."""
    prose = " ".join(_RST_ROLE.sub(" ", text).split())
    found = []
    for entry in entries:
        pattern = rf"\b{re.escape(entry.surname)}\b.{{0,{WINDOW}}}?\b{entry.year}\b"
        found += [m.group(0) for m in re.finditer(pattern, prose)]
    return found


def autosummary_sentence(doc: str) -> str:
    """Return the summary autosummary's tables show: the first paragraph up to its first ". ".

    Sphinx cuts there even inside a role (``:cite:p:`key{eq. 9}``` would be cut after
    ``eq.``, a broken role and a build warning), so a summary must not have ". " in a role.
    """
    paragraph = inspect.cleandoc(doc).split("\n\n")[0]
    return re.split(r"\.( |$)", " ".join(paragraph.split()))[0]


def docstrings(path: Path) -> Iterator[tuple[str, str]]:
    """Yield ``(object, text)`` for every docstring of ``path`` and its ``#:`` doc-comments.

    Sphinx renders both: the docstrings of the module, its classes and functions (nested
    ones included), and the ``#:`` comments above a module constant or class attribute.
    """
    source = path.read_text()
    tree = ast.parse(source)
    nodes: list[tuple[str, ast.AST]] = [("<module>", tree)]
    while nodes:
        name, node = nodes.pop()
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield name, doc
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                prefix = "" if name == "<module>" else f"{name}."
                nodes.append((prefix + child.name, child))
    block: list[str] = []
    for number, line in enumerate([*source.splitlines(), ""], start=1):
        if line.lstrip().startswith("#:"):
            block.append(line.lstrip()[2:])
        elif block:
            yield f"#: comment ending on line {number - 1}", "\n".join(block)
            block = []


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    return parse_bib(BIB.read_text())


# ----------------------------------------------------------------------- the helpers


def test_the_helpers_catch_written_out_citations_and_unknown_keys(entries):
    unconverted = """Group horseshoe prior, Louizos, Ullrich & Welling (2017), §3.2.

    The variance (Wu et al. 2019, eq. 9) and the median model of Barbieri &
    Berger (2004); the regularised horseshoe of Piironen & Vehtari (2017, eq. 2.8).
    """
    found = written_out(unconverted, entries)
    assert len(found) == 4, found
    converted = """Group horseshoe prior of :cite:t:`louizos2017bayesian{§3.2}`.

    The variance :cite:p:`wu2019deterministic{eq. 9}` and the median model of
    :cite:t:`barbieri2004optimal`; the regularised horseshoe of
    :cite:t:`piironen2017sparsity{eq. 2.8}`.
    """
    assert written_out(converted, entries) == []
    assert autosummary_sentence("Build (:cite:t:`he2016deep{sec. 4.2}`).\n\nMore.").count("`") == 1
    assert autosummary_sentence(converted).count("`") == 2
    keys = cite_keys(converted + "{cite:t}`saha2024efficient` :cite:p:`{see}a2000x,b2001y{§4}`")
    assert keys == [
        "louizos2017bayesian",
        "wu2019deterministic",
        "barbieri2004optimal",
        "piironen2017sparsity",
        "a2000x",
        "b2001y",
        "saha2024efficient",
    ]
    known = {entry.key for entry in entries}
    assert {"a2000x", "b2001y"} - known == {"a2000x", "b2001y"}


def test_the_walk_finds_every_kind_of_docstring(tmp_path, entries):
    module = tmp_path / "module.py"
    module.write_text(
        '''"""Module (Blundell et al. 2015)."""

#: A constant of Molchanov et al. (2017),
#: eq. 14.
K = 1


class Prior:
    """Class, Louizos, Ullrich & Welling (2017), §3.2."""

    def method(self):
        r"""Method (Carvalho, Polson &
        Scott 2010, eq. 2)."""

        def inner():
            """Inner :cite:p:`saha2024efficient`, Saha et al. 2024."""
'''
    )
    found = {
        (name, citation)
        for name, text in docstrings(module)
        for citation in written_out(text, entries)
    }
    assert found == {
        ("<module>", "Blundell et al. 2015"),
        ("#: comment ending on line 4", "Molchanov et al. (2017"),
        ("Prior", "Louizos, Ullrich & Welling (2017"),
        ("Prior.method", "Carvalho, Polson & Scott 2010"),
        ("Prior.method", "Scott 2010"),  # scott2010bayes too: a third author can match
        ("Prior.method.inner", "Saha et al. 2024"),
    }


def test_the_bibliography_parses_with_one_entry_per_key(entries):
    keys = [entry.key for entry in entries]
    assert len(keys) == len(set(keys)), "duplicate keys"
    assert len(keys) == BIB.read_text().count("\n@") + BIB.read_text().startswith("@")
    by_key = {entry.key: entry for entry in entries}
    assert by_key["sonderby2016ladder"] == Entry("sonderby2016ladder", "Sønderby", "2016")
    for entry in entries:
        # the key scheme: first author's surname, year, first word of the title (lower case)
        ascii_surname = unicodedata.normalize("NFKD", entry.surname.replace("ø", "o"))
        surname = re.sub(r"[^a-z]", "", ascii_surname.lower())
        assert re.fullmatch(rf"{surname}{entry.year}[a-z]+", entry.key), entry


# ----------------------------------------------------------------------- the sources


def test_every_cited_key_is_in_the_bibliography(entries):
    known = {entry.key for entry in entries}
    missing = []
    sources = [*sorted(PACKAGE.rglob("*.py")), *sorted(DOCS.rglob("*.md"))]
    for path in sources:
        if "_build" in path.parts:
            continue
        for key in cite_keys(path.read_text()):
            if key not in known:
                missing.append(f"{path.relative_to(ROOT)}: {key}")
    assert not missing, "keys missing from docs/references.bib:\n" + "\n".join(missing)


def test_no_docstring_writes_out_a_citation_of_the_bibliography(entries):
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for name, text in docstrings(path):
            for citation in written_out(text, entries):
                offences.append(f"{path.relative_to(ROOT)}: {name}: {citation!r}")
    assert not offences, (
        "cite these with :cite:p:`key` / :cite:t:`key` (docs/references.bib):\n"
        + "\n".join(offences)
    )


def test_no_summary_is_cut_inside_a_role():
    cut = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for name, text in docstrings(path):
            summary = autosummary_sentence(text)
            if summary.count("`") % 2:
                cut.append(f"{path.relative_to(ROOT)}: {name}: {summary!r}")
    assert not cut, "write the locator without '. ' (§4.2, not sec. 4.2):\n" + "\n".join(cut)
