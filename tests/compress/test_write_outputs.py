"""Issue 25: a run killed while publishing ``--out`` leaves nothing half-written behind.

A kill cannot be caught, so the fault is injected deterministically in a child process:
its ``os.replace`` (or a writer) ends the process with ``os._exit`` at a chosen call,
exactly where a SIGKILL could land. The next ``write_outputs`` for the same folder must
find the leftovers and undo them.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyrocompress.compress.report import write_outputs

CHILD = """
import os, sys
from pathlib import Path
from pyrocompress.compress.report import write_outputs

out, kill_at = Path(sys.argv[1]), int(sys.argv[2])
calls = {"n": 0}
real = os.replace

def dying_replace(a, b):
    calls["n"] += 1
    if calls["n"] == kill_at:
        os._exit(9)  # no except, no finally: as a SIGKILL
    return real(a, b)

os.replace = dying_replace
names = ("a.txt", "b.txt", "c.txt")
write_outputs(out, {n: (lambda p, n=n: p.write_text("new " + n)) for n in names})
"""


def _run_child(out: Path, kill_at: int) -> int:
    code = textwrap.dedent(CHILD)
    return subprocess.run([sys.executable, "-c", code, str(out), str(kill_at)]).returncode


def _files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.is_file()}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# the five renames: old a -> backup, new a in, old b -> backup, new b in, new c in
@pytest.mark.parametrize("kill_at", [1, 2, 3, 5])
def test_a_kill_between_the_moves_into_a_full_folder_is_undone_by_the_next_run(tmp_path, kill_at):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old a")
    (out / "b.txt").write_text("old b")
    (out / "keep.txt").write_text("mine")
    assert _run_child(out, kill_at) == 9
    assert _hidden(out), "the killed run should have left its staging folder"
    write_outputs(out, {"report.json": lambda p: p.write_text("{}")})
    assert _files(out) == {
        "a.txt": "old a",
        "b.txt": "old b",
        "keep.txt": "mine",
        "report.json": "{}",
    }
    assert _hidden(out) == []  # nothing mixed, nothing left


def test_a_kill_before_a_new_folder_is_renamed_leaves_nothing_after_the_next_run(tmp_path):
    out = tmp_path / "out"
    assert _run_child(out, 1) == 9  # the staging folder next to out is never renamed
    assert not out.exists() and _hidden(tmp_path)
    write_outputs(out, {"report.json": lambda p: p.write_text("{}")})
    assert _files(out) == {"report.json": "{}"}
    assert _hidden(tmp_path) == [] and _hidden(out) == []


def test_a_live_runs_staging_folder_is_left_alone(tmp_path):
    from pyrocompress.infer.checkpoint import process_tag

    out = tmp_path / "out"
    out.mkdir()
    live = out / f".pyrocompress.staging-{process_tag()}-0123abcd"
    live.mkdir()
    write_outputs(out, {"report.json": lambda p: p.write_text("{}")})
    assert live.is_dir()  # this process is alive: perhaps another write in progress


def test_another_machines_staging_folder_is_left_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    foreign = out / ".pyrocompress.staging-otherhost-p1-0123abcd"  # pid 1 there may live
    foreign.mkdir()
    write_outputs(out, {"report.json": lambda p: p.write_text("{}")})
    assert foreign.is_dir()


CHILD_AFTER_COMMIT = """
import os, shutil, sys
from pathlib import Path
from pyrocompress.compress.report import write_outputs

def dying_rmtree(path, *args, **kwargs):
    for p in sorted(Path(path).rglob("*"), reverse=True):  # remove some, then die
        if p.name == ".replaced":
            break
    os._exit(9)

shutil.rmtree = dying_rmtree
names = ("a.txt", "b.txt")
write_outputs(Path(sys.argv[1]), {n: (lambda p, n=n: p.write_text("new " + n)) for n in names})
"""


def test_a_kill_after_the_moves_keeps_the_new_files(tmp_path):
    """The review's case: killed while removing the staging folder of a run whose moves all
    succeeded, the next run must not take the new files for half-moved ones."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old a")
    (out / "keep.txt").write_text("mine")
    code = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD_AFTER_COMMIT), str(out)]
    ).returncode
    assert code == 9 and _hidden(out)
    write_outputs(out, {"report.json": lambda p: p.write_text("{}")})
    assert _files(out) == {
        "a.txt": "new a.txt",
        "b.txt": "new b.txt",
        "keep.txt": "mine",
        "report.json": "{}",
    }
    assert _hidden(out) == []
