"""Prune, then fine-tune the pruned posterior: how far it moves the MNIST compression
trade-off (issue 6).

Louizos et al. (2017) prune the trained posterior once and stop. Pruning then retraining
the kept weights is the other half of classic compression (Han et al. 2015, "Learning
both weights and connections"); here the retraining is SVI on the kept groups only
(:meth:`pyrocompress.BayesianNetwork.restrict`, then :func:`pyrocompress.fit`), so the
result is again a posterior, with bit precisions from its variances.

For each trained MNIST posterior kept by ``mnist_compression.py --checkpoint-root DIR``,
the script runs ``--rounds`` rounds of

1. pruning with the automatic rule at ``--tolerance`` of validation error, relative to the
   network of that round (the groups pruned in earlier rounds stay pruned);
2. restricting the network to the kept groups and running ``--epochs`` more epochs of the
   run's own recipe (Adam, learning rate 1e-3 with a cosine decay, batch 128, the run's
   first-layer variance cap), after which the compact network, which equals the
   restricted posterior mean, is tested.

Each round is a point on the accuracy–compression trade-off (Han et al.'s iterative
pruning, with SVI in place of retraining).

Thresholds are chosen on the validation split; test errors are reported, never used.
Each row also records the compact network's validation error, so that a round can be
chosen the way a user without the test split would choose it.

Usage (from the project root; MNIST at ../shared/data/mnist)::

    .venv/bin/python benchmarks/compression/fine_tune.py --checkpoint-root runs/gpu-ckpt
    .venv/bin/python benchmarks/compression/fine_tune.py --checkpoint-root runs/gpu-ckpt --quick
    .venv/bin/python benchmarks/compression/fine_tune.py --checkpoint-root runs/gpu-ckpt \\
        --only lenet-300-100-group-horseshoe   # one run
    .venv/bin/python benchmarks/compression/fine_tune.py --checkpoint-root runs/gpu-ckpt \\
        --tolerance 0.005 --epochs 20 --rounds 8   # a gentler schedule
    .venv/bin/python benchmarks/compression/fine_tune.py --checkpoint-root runs/gpu-ckpt \\
        --only lenet-5-caffe-group-horseshoe --tolerance 0.005 --epochs 25 --rounds 2 \\
        --seed 1   # the same schedule with other fine-tuning noise

The file keeps the rows of every (run, schedule) pair that a command did not rerun, so
schedules and runs measured by separate commands sit side by side; commands run in
parallel merge their rows one at a time (a lock file next to the results).

Writes ``docs/results/fine-tune.json`` and ``.md``, and the report.json (the CLI's format)
of every fine-tuned round under ``docs/results/fine-tune/``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
import time
import warnings
from pathlib import Path

import torch

import pyrocompress as pc
from pyrocompress import data as datasets
from pyrocompress.infer.checkpoint import CHECKPOINT_NAME

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import RESULTS, TARGETS, provenance, run_key, schedule, write_atomic, write_results
from mnist_compression import MNIST, RUNS
from pruning_rules import load_run, pixel_range

#: runs fine-tuned by default; LeNet-5-Caffe (about 30 s an epoch on one CPU thread) with
#: ``--only lenet-5-caffe-group-nj`` and the like
DEFAULT_RUNS = ("lenet-300-100-group-nj", "lenet-300-100-group-horseshoe")


def clip_var(name: str) -> float | None:
    extra = list(RUNS[name][3])
    return float(extra[extra.index("--clip-var") + 1]) if "--clip-var" in extra else None


def row(stage: str, result: pc.PruneResult, validation_error: float) -> dict:
    r = result.report
    return {
        "stage": stage,
        "validation_error": validation_error,
        "architecture": r["architecture_after"],
        "test_error_bayes": r["test_error_bayes"],
        "test_error_compact": r["test_error_compact"],
        "compression_params": r["compression_rate_params"],
        "compression_bits": r["compression_rate_bits"],
        "bits_per_layer": r["bits_per_layer"],
    }


def study(
    name: str,
    root: Path,
    data_dir: Path,
    tolerance: float,
    epochs: int,
    rounds: int = 1,
    seed: int = 0,
) -> list[dict]:
    splits = datasets.load_dataset(
        "mnist", data_dir=data_dir, seed=0, flatten=False, pixel_range=pixel_range(name)
    )
    val, test = (splits.val.X, splits.val.y), (splits.test.X, splits.test.y)
    bnn = load_run(name, root, splits)
    cap = clip_var(name)
    layer0 = next(iter(bnn.bayesian_layers()))
    rows, seconds = [], 0.0
    for k in range(1, rounds + 1):
        pruned = pc.prune(bnn, "auto", validation=val, test=test, tolerance=tolerance)
        rows.append(row(f"round {k}: pruned", pruned, pruned.report["validation_error_pruned"]))
        bnn.restrict(pruned.plan.masks)
        start = time.perf_counter()
        pc.fit(
            bnn,
            splits.train,
            epochs=epochs,
            batch_size=128,
            lr=1e-3,
            seed=1000 * seed + k,  # seed 0: the seeds 1, 2, ... of the first runs
            max_weight_variance={layer0: cap} if cap is not None else None,
            progress=False,
            tol=None,
        )
        seconds += time.perf_counter() - start
        tuned = pc.prune(bnn, "sparsity", sparsity=0.0, test=test)
        # the compact network equals the restricted posterior mean: its validation error
        # (no random numbers drawn, so later rounds are unchanged)
        val_error = bnn.point_error(*(t.to(bnn.device) for t in val))
        # with the CLI's report.json of the fine-tuned compact network (write_reports)
        rows.append({**row(f"round {k}: fine-tuned", tuned, val_error), "report": tuned.report})
    for r in rows:
        r.update(
            run=name,
            tolerance=tolerance,
            epochs=epochs,
            rounds=rounds,
            seed=seed,
            fit_seconds=seconds,
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint-root", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, default=MNIST)
    ap.add_argument("--tolerance", type=float, default=0.01, help="of each pruning round")
    ap.add_argument("--epochs", type=int, default=15, help="fine-tuning epochs per round")
    ap.add_argument("--rounds", type=int, default=4, help="prune / fine-tune rounds")
    ap.add_argument("--only", choices=list(RUNS), action="append")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument(
        "--seed", type=int, default=0, help="of the fine-tuning noise (the trained run is fixed)"
    )
    ap.add_argument("--quick", action="store_true", help="1 round of 1 epoch, no files")
    args = ap.parse_args()
    if args.epochs < 1 or args.rounds < 1 or not 0 <= args.tolerance < 1:
        ap.error("--epochs and --rounds must be >= 1 and --tolerance in [0, 1)")
    names = [
        n
        for n in (args.only or DEFAULT_RUNS)
        if (args.checkpoint_root / n / CHECKPOINT_NAME).exists()
    ]
    if not names:
        ap.error(f"no run checkpoints under {args.checkpoint_root} (see --checkpoint-root)")
    torch.set_num_threads(args.threads)
    epochs, rounds = (1, 1) if args.quick else (args.epochs, args.rounds)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            for r in study(
                name, args.checkpoint_root, args.data_dir, args.tolerance, epochs, rounds, args.seed
            ):
                rows.append(r)
                print(
                    f"{name} {r['stage']:22s} {r['architecture']} "
                    f"{100 * r['test_error_compact']:.2f} % "
                    f"{r['compression_bits']:.1f}x bits",
                    flush=True,
                )
    for r in rows:
        r.update(provenance(), threads=torch.get_num_threads())
    if args.quick:
        print("\n".join(markdown({"rows": rows})))
        return 0
    write_reports(rows)
    # commands running side by side merge their rows one at a time
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / ".fine-tune.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = merge_previous(rows)
        md = markdown(result)
        print("\n".join(md))
        write_results("fine-tune", result, md)
    return 0


def merge_previous(rows: list[dict]) -> dict:
    """``rows`` plus the rows of fine-tune.json of every (run, schedule) not rerun."""
    previous = RESULTS / "fine-tune.json"
    if previous.exists():
        done = {run_key(r) for r in rows}
        old = json.loads(previous.read_text())
        for x in old["rows"]:
            x.setdefault("command", old.get("command"))  # files written before per-row
            x.setdefault("date", old.get("date"))  # provenance carry it once
            x.setdefault("machine", old.get("machine"))
            x.setdefault("threads", old.get("threads"))
        rows = [x for x in old["rows"] if run_key(x) not in done] + rows
    return {"rows": rows}


def report_path(row: dict) -> Path:
    """Where a fine-tuned round's report.json goes: one file per run, schedule and round."""
    k = row["stage"].split(":")[0].replace(" ", "-")
    name = (
        f"{row['run']}-{row['rounds']}x-tol{row['tolerance']:g}-{row['epochs']}ep"
        f"-seed{row.get('seed', 0)}-{k}.json"
    )
    return RESULTS / "fine-tune" / name


def write_reports(rows: list[dict]) -> None:
    """Move each fine-tuned round's report out of its row into its own report.json
    (CLI format), written atomically; the row keeps the file's name."""
    for r in rows:
        report = r.pop("report", None)
        if report is None:
            continue
        path = report_path(r)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(report, indent=2) + "\n")
        r["report_file"] = str(path.relative_to(RESULTS))


def percent(error: float | None) -> str:
    return "—" if error is None else f"{100 * error:.2f} %"


def markdown(r: dict) -> list[str]:
    lines = [
        "# Prune, then fine-tune the pruned posterior",
        "",
        "Each round prunes with the automatic rule (a tolerance of validation error, "
        "relative to the network of that round), then runs some epochs of SVI on the kept "
        "groups only (the run's recipe); the schedule column says rounds × (tolerance, "
        "epochs). Errors on the test split; the test error of a fine-tuned network is that "
        "of its compact network, which equals its posterior mean. Targets: LeNet-300-100 "
        "≤ 1.8 % at ≥ 60× with bits, LeNet-5-Caffe ≤ 1.0 % at ≥ 420×.",
        "",
        "The CLI-format report.json of a fine-tuned round is in `docs/results/fine-tune/` "
        "where the row names one (`report_file` in fine-tune.json; rows measured before "
        "the script wrote them have none). Validation errors (the 5,000-image split the pruning "
        "thresholds are chosen on) are recorded from 2026-11-23; earlier rows show —.",
        "",
        "Commands (each row's command, date and machine are in fine-tune.json):",
        "",
    ]
    seen: dict[tuple, dict] = {}
    for x in r["rows"]:
        seen.setdefault((x["command"], x["date"]), x)
    for (command, date), x in seen.items():
        lines.append(f"- `{command}` · {date} · {x['machine']}, {x['threads']} thread(s)")
    lines += [
        "",
        "| run | schedule | stage | architecture | validation error | test error "
        "| compression (params) | compression (bits) | bits per layer | target met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        model = "lenet-5-caffe" if x["run"].startswith("lenet-5") else "lenet-300-100"
        max_err, min_bits = TARGETS[model]
        met = x["test_error_compact"] <= max_err and x["compression_bits"] >= min_bits
        arch = x["architecture"][1 if model == "lenet-5-caffe" else 0 : -1]
        lines.append(
            f"| {x['run']} | {schedule(x)} | "
            f"{x['stage']} | {'-'.join(map(str, arch))} | {percent(x.get('validation_error'))} | "
            f"{100 * x['test_error_compact']:.2f} % | {x['compression_params']:.1f}× | "
            f"{x['compression_bits']:.1f}× | {'-'.join(map(str, x['bits_per_layer']))} | "
            f"{'yes' if met else 'no'} |"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
