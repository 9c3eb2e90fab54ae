"""The command lines the documentation shows are the command line the parser accepts.

The synopsis of docs/guide/cli.md lists every option of every subcommand, no more and no
less; and every complete ``pyrocompress`` command written in the README or a guide (in a
code block or inline) parses.
"""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from pyrocompress.cli.app import _attach_negative_values, _parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the parser has no subcommands")


def _synopsis() -> dict[str, str]:
    text = (ROOT / "docs" / "guide" / "cli.md").read_text(encoding="utf-8")
    block = re.search(r"## Synopsis\s+```text\n(.*?)```", text, flags=re.S)
    assert block, "docs/guide/cli.md has no ```text block under '## Synopsis'"
    commands: dict[str, str] = {}
    for line in block.group(1).replace("\\\n", " ").splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "pyrocompress" and not words[1].startswith("-"):
            commands[words[1]] = line
    return commands


def test_the_synopsis_lists_every_subcommand_and_each_of_its_options():
    parsers, synopsis = _subparsers(), _synopsis()
    assert set(synopsis) == set(parsers)
    for name, parser in parsers.items():
        options = {s for a in parser._actions for s in a.option_strings if s.startswith("--")} - {
            "--help"
        }
        shown = set(re.findall(r"--[a-z][a-z-]*", synopsis[name]))
        assert shown == options, (name, "missing", options - shown, "unknown", shown - options)


def _alternatives(line: str, option: str) -> set[str] | None:
    """The values the synopsis ``line`` offers for ``option`` (``{a, b}`` or ``a|b``)."""
    match = re.search(rf"{option} (\{{[^}}]*\}}|[^\s\]]+)", line)
    if match is None:
        return None
    text = match.group(1)
    if text.startswith("{"):
        return {v.strip() for v in text.strip("{}").split(",")}
    return set(text.split("|")) if "|" in text else None


def test_the_synopsis_offers_each_choice_option_its_choices():
    checked = 0
    for name, parser in _subparsers().items():
        line = _synopsis()[name]
        for action in parser._actions:
            if action.choices is None or not action.option_strings:
                continue
            shown = _alternatives(line, action.option_strings[0])
            if shown is not None:  # a metavar (SCORE, R) makes no claim
                assert shown == {str(c) for c in action.choices}, (name, action.option_strings)
                checked += 1
    assert checked >= 8  # prior, dataset, guide, objective, rule, lr-schedule, device, ...


def _commands(text: str) -> list[str]:
    """Complete ``pyrocompress`` command lines in code spans and code blocks of ``text``."""
    found = re.findall(r"`(pyrocompress [^`\n]+)`", text)
    for block in re.findall(r"```(?:bash|console|sh)\n(.*?)```", text, flags=re.S):
        lines = [line.split("#")[0] for line in block.replace("\\\n", " ").splitlines()]
        found += re.findall(r"(?:^|\s)(pyrocompress .+)", "\n".join(lines), flags=re.M)
    commands = []
    for command in found:
        words = command.split()
        if re.search(r"[\[\]{}|]|\.\.\.|…", command):  # a pattern, not a command
            continue
        if len(words) == 2 and _has_required_options(words[1]):
            continue  # naming a subcommand, not running it
        if words[-1].startswith("--") and _takes_value(words[1], words[-1]):
            continue  # naming one of its options
        commands.append(" ".join(words))
    return commands


def _has_required_options(command: str) -> bool:
    parser = _subparsers().get(command)
    return parser is not None and any(a.required for a in parser._actions if a.option_strings)


def _takes_value(command: str, option: str) -> bool:
    parser = _subparsers().get(command)
    actions = {s: a for a in parser._actions for s in a.option_strings} if parser else {}
    return option in actions and actions[option].nargs != 0


def _documented_commands() -> list[tuple[str, str]]:
    return [(p.name, c) for p in PAGES for c in _commands(p.read_text(encoding="utf-8"))]


def test_the_documentation_shows_commands():
    commands = {c.split()[1] for _, c in _documented_commands() if len(c.split()) > 1}
    assert {"select", "compress", "prune", "demo"} <= commands, commands


@pytest.mark.parametrize(("page", "command"), _documented_commands())
def test_a_documented_command_parses(page, command):
    argv = shlex.split(command)[1:]
    try:
        args = _parser().parse_args(_attach_negative_values(argv))
    except SystemExit as e:  # pragma: no cover - the failure message is the point
        raise AssertionError(f"{page}: `{command}` does not parse") from e
    if argv and not argv[0].startswith("-"):
        assert args.command == argv[0]


def test_the_command_finder_skips_patterns_and_keeps_commands():
    text = (
        "Run `pyrocompress select --csv FILE --target COLUMN` or `pyrocompress demo [--out DIR]`\n"
        "```bash\ntorchrun --nproc_per_node 2 -m pyrocompress compress --model lenet-300-100 \\\n"
        "    --prior group-nj --dataset mnist  # comment\n```\n"
    )
    assert _commands(text) == [
        "pyrocompress select --csv FILE --target COLUMN",
        "pyrocompress compress --model lenet-300-100 --prior group-nj --dataset mnist",
    ]
