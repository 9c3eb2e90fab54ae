"""SVI step time of two versions of pyrocompress against the same hand-written baseline.

The redesign issue's speed check: is the group normal-Jeffreys step of the current code
no slower, against the hand-written BC-GNJ of ``bcgnj_baseline.py``, than that of an
earlier commit? Each repetition runs one process per version, alternating which goes
first; a process times one pyrocompress step (the second of two ``fit`` epochs, as
``speed.py``) and the hand-written step back to back, so its ratio cancels the slow drifts
of a shared machine. The table gives the median and range of the ratio over repetitions.

Usage (from the project root)::

    git worktree add /tmp/before <commit>
    .venv/bin/python benchmarks/speed/before_after.py --before /tmp/before --repeats 9

Writes ``docs/results/before-after.json`` and ``.md`` (nothing with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import ROOT, provenance, write_results  # noqa: E402

#: One repetition in a fresh process: pyrocompress's group-NJ step, then the baseline's.
_CHILD = r"""
import json, sys, time
import torch
sys.path.insert(0, {baseline_dir!r})
from bcgnj_baseline import LeNet300100GroupNJ
import pyrocompress as pc

BATCH, STEPS = 128, {steps}
torch.set_num_threads({threads})
torch.manual_seed(0)
X = torch.rand(BATCH * STEPS, 1, 28, 28)
y = torch.randint(0, 10, (BATCH * STEPS,))
bnn = pc.bayesianize(pc.lenet_300_100(), prior="group-nj", seed=0)
h = pc.fit(bnn, (X, y), epochs=2, batch_size=BATCH, lr=1e-3, seed=0, progress=False, tol=None)
ours = h.seconds[1] / STEPS  # the second epoch: the first warms up, as speed.py
model = LeNet300100GroupNJ()
opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # as pyrocompress.fit
for _warm_up_then_timed in range(2):
    perm = torch.randperm(len(X))
    start = time.perf_counter()
    for i in range(STEPS):
        idx = perm[i * BATCH : (i + 1) * BATCH]
        loss = model.loss(X[idx], y[idx], len(X))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    loss.item()
base = (time.perf_counter() - start) / STEPS
print(json.dumps({{"ours_ms": 1e3 * ours, "baseline_ms": 1e3 * base}}))
"""


def measure(checkout: Path, steps: int, threads: int) -> dict[str, float]:
    """One repetition with the pyrocompress of ``checkout`` (its root on ``PYTHONPATH``)."""
    code = _CHILD.format(baseline_dir=str(HERE), steps=steps, threads=threads)
    env = {"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["ratio"] = row["ours_ms"] / row["baseline_ms"]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="root of a checkout of the earlier commit")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--steps", type=int, default=60, help="minibatches per measurement")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="2 repetitions, nothing written")
    args = ap.parse_args()
    before = Path(args.before).resolve()
    if not (before / "pyrocompress" / "__init__.py").exists():
        ap.error(f"--before {before} is not the root of a pyrocompress checkout")
    repeats = 2 if args.quick else args.repeats
    versions = {"before": before, "after": ROOT}
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in versions}
    for r in range(repeats):
        order = list(versions) if r % 2 == 0 else list(reversed(versions))
        for name in order:
            rows[name].append(measure(versions[name], args.steps, args.threads))
            print(name, rows[name][-1], flush=True)
    summary = {}
    for name, rs in rows.items():
        ratios = [x["ratio"] for x in rs]
        summary[name] = {
            "ms": statistics.median(x["ours_ms"] for x in rs),
            "baseline_ms": statistics.median(x["baseline_ms"] for x in rs),
            "vs_baseline": statistics.median(ratios),
            "vs_baseline_min": min(ratios),
            "vs_baseline_max": max(ratios),
        }
    change = statistics.median(
        a["ratio"] / b["ratio"] for a, b in zip(rows["after"], rows["before"], strict=True)
    )
    print(json.dumps(summary, indent=1))
    print(f"after / before, per repetition (median): {change:.3f}")
    if args.quick:
        return 0
    before_commit = subprocess.run(
        ["git", "-C", str(before), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    result = {
        **provenance(),
        "before_commit": before_commit,
        "repeats": repeats,
        "steps": args.steps,
        "threads": args.threads,
        "summary": summary,
        "after_over_before": change,
        "rows": rows,
    }
    lines = [
        "# Group-NJ SVI step before and after the redesign",
        "",
        f"LeNet-300-100, batch 128, {args.steps} steps a measurement, {args.threads} "
        f"thread(s), {repeats} repetitions alternating the versions; ratio = pyrocompress "
        "step / hand-written BC-GNJ step measured in the same process.",
        "",
        "| version | step (ms) | hand-written (ms) | ratio (median) | ratio range |",
        "|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        lines.append(
            f"| {name} | {row['ms']:.2f} | {row['baseline_ms']:.2f} | "
            f"{row['vs_baseline']:.3f} | {row['vs_baseline_min']:.3f}-"
            f"{row['vs_baseline_max']:.3f} |"
        )
    lines += ["", f"Median over repetitions of (after ratio / before ratio): {change:.3f}."]
    write_results("before-after", result, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
