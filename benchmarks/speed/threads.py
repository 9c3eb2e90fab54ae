"""Two ``pyrocompress select`` runs side by side against one after the other (issue 27).

The thread policy (:func:`pyrocompress.rng.intra_op_threads`): one torch intra-op thread
per process unless ``--threads`` says otherwise. This script checks what the policy is
for: on a machine whose cores are shared, two runs at once should take no longer than the
same two runs one after the other. It runs the issue's case, ``pyrocompress select`` on
scikit-learn's diabetes data (442 rows, 10 features) with 50 N(0, 1) noise columns, as a
user would (the CLI in subprocesses), and times

* ``sequential``: run A, then run B (two seeds, so the runs are different work);
* ``side by side``: A and B started together, until both have finished;

for ``--threads 1`` (the default) and ``--threads torch`` (torch's own default, one
thread per core). The selector's data budget trains these 442 rows in full batches with
one thread whatever the command's setting (``training_budget``), so the second setting
differs from the first only outside that loop; ``--also-compress`` times the demo's
network on digits (``compress --model mlp:64-100-100-10``, 1,222 rows in minibatches,
where ``--threads`` applies to the training) the same way.

Writes ``docs/results/threads.json`` and ``.md``.

Usage (from the project root; nothing else should run on the machine)::

    .venv/bin/python benchmarks/speed/threads.py
    .venv/bin/python benchmarks/speed/threads.py --also-compress --epochs 60
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import provenance, write_results


def _diabetes_csv(folder: Path) -> Path:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame
    rng = np.random.default_rng(0)
    for j in range(50):
        data[f"noise{j}"] = rng.standard_normal(len(data))
    path = folder / "diabetes-noise.csv"
    data.to_csv(path, index=False)
    return path


def _commands(kind: str, folder: Path, threads: str, epochs: int) -> list[list[str]]:
    exe = str(Path(sys.executable).with_name("pyrocompress"))
    if kind == "select":
        csv = _diabetes_csv(folder)
        base = [exe, "select", "--csv", str(csv), "--target", "target", "--quiet"]
    else:
        base = [exe, "compress", "--model", "mlp:64-100-100-10", "--prior", "group-horseshoe"]
        base += ["--dataset", "digits", "--epochs", str(epochs), "--tol", "off", "--quiet"]
    return [
        [
            *base,
            "--seed",
            str(seed),
            "--threads",
            threads,
            "--out",
            str(folder / f"{threads}-{seed}"),
        ]
        for seed in (0, 1)
    ]


def _sequential(commands: list[list[str]]) -> float:
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def _side_by_side(commands: list[list[str]]) -> float:
    start = time.perf_counter()
    procs = [
        subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(err.decode()[-2000:])
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--also-compress", action="store_true")
    p.add_argument("--epochs", type=int, default=60, help="epochs of the compress runs")
    args = p.parse_args()
    kinds = ["select", *(["compress"] if args.also_compress else [])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # one untimed run first: the first start of Python, torch and the package reads
        # them from disk, later ones from the page cache (without it the first timing
        # carries several seconds the others do not)
        warm = Path(tmp) / "warm-up"
        warm.mkdir()
        subprocess.run(
            _commands("select", warm, "1", args.epochs)[0], check=True, capture_output=True
        )
        for kind in kinds:
            for threads in ("1", "torch"):
                folder = Path(tmp) / kind
                folder.mkdir(exist_ok=True)
                commands = _commands(kind, folder, threads, args.epochs)
                if threads == "1":  # alternate which goes first, in case order matters
                    seq, par = _sequential(commands), _side_by_side(commands)
                else:
                    par, seq = _side_by_side(commands), _sequential(commands)
                rows.append(
                    {
                        "command": kind,
                        "threads": threads,
                        "sequential_s": seq,
                        "side_by_side_s": par,
                    }
                )
                print(f"{kind} --threads {threads}: sequential {seq:.1f} s, together {par:.1f} s")
    meta = provenance()
    md = [
        "# Two runs side by side against one after the other (issue 27, thread policy)",
        "",
        f"`{meta['command']}` on {meta['date']}, commit {meta['commit']}; {meta['machine']}.",
        "",
        "Each row: two runs of the command (seeds 0 and 1), first one after the other, then "
        "both started together (wall time until both finish; the order alternates between "
        "the settings, after one untimed warm-up run). `select`: diabetes with 50 "
        "noise columns, the selector's default budget; `compress`: the demo's network on "
        f"digits, {args.epochs} epochs without the convergence stop.",
        "",
        "| command | --threads | one after the other | side by side | side by side / sequential |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['command']} | {r['threads']} | {r['sequential_s']:.1f} s "
            f"| {r['side_by_side_s']:.1f} s | {r['side_by_side_s'] / r['sequential_s']:.2f} |"
        )
    write_results("threads", {**meta, "rows": rows}, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
