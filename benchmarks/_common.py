"""Helpers shared by the benchmark scripts.

The scripts live in folders by role (``benchmarks/<role>/<script>.py``) and find this module
by putting ``benchmarks/`` at the front of ``sys.path`` before they import it, so that they
run from any directory (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    from pyrocompress.rng import DEFAULT_THREADS

    # results depend on the thread count (issue 27): fit and the CLI use DEFAULT_THREADS
    # unless a script says otherwise; the versions are pinned in constraints.txt
    return (
        f"{cpu}, {os.cpu_count()} cores{gpu}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {platform.system()} {platform.release()}, "
        f"{DEFAULT_THREADS} torch thread per process"
    )


#: the repository root, the folder the measured results go to, and the MNIST IDX files
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
MNIST = ROOT.parent / "shared" / "data" / "mnist"


def commit() -> str:
    """The git commit of the code that ran, ``+changes`` when the package or the benchmarks
    differ from it (``unknown`` outside a git checkout)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "pyrocompress", "benchmarks")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if changed else "")


def provenance() -> dict:
    """The command that ran this script (its path from the repository root), today's date,
    the machine and the commit."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT).as_posix() if script.is_relative_to(ROOT) else str(script)
    command = f"python {shown} {shlex.join(sys.argv[1:])}".strip()
    return {
        "command": command,
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "commit": commit(),
    }


#: issue 6 targets per MNIST model: (largest test error, smallest compression with bits)
TARGETS = {"lenet-300-100": (0.018, 60.0), "lenet-5-caffe": (0.010, 420.0)}


def schedule(row: dict) -> str:
    """A fine-tuning row's schedule: rounds × (tolerance, epochs), and its seed if not 0."""
    seed = f", seed {row['seed']}" if row.get("seed", 0) else ""
    return f"{row['rounds']} × ({row['tolerance']:g}, {row['epochs']} ep{seed})"


def run_key(row: dict) -> tuple:
    """A fine-tuning row's run under one schedule and seed: the rows one command writes
    together."""
    return row["run"], row["tolerance"], row["epochs"], row["rounds"], row.get("seed", 0)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``, so that an
    interrupted run leaves the previous file whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(stem: str, result: dict, markdown: list[str]) -> None:
    """Write ``docs/results/<stem>.json`` and ``<stem>.md``, each through a temporary file
    and ``os.replace`` so that an interrupted run leaves the previous results whole."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(result, indent=2)), (".md", "\n".join(markdown))):
        write_atomic(RESULTS / f"{stem}{suffix}", text + "\n")
    print(f"wrote {RESULTS / stem}.json and .md")
