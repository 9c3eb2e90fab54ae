"""Pruning rules on the trained MNIST posteriors: how far the rule, not the training, moves
the compact network along the accuracy–compression trade-off (issue 6).

``benchmarks/compression/mnist_compression.py --checkpoint-root DIR`` keeps each run's final
checkpoint (the trained posterior); this script rebuilds each network from it and prunes it
again with

* the automatic rule (``prune(rule="auto")``: the largest pruning whose validation error
  stays within ``tolerance`` of the unpruned posterior mean) for a sweep of tolerances,
  ranking groups by SNR and by log α;
* fixed log α thresholds, as Louizos et al. (2017, §5) prune: keep a group when its
  :math:`\\log\\alpha` is below the threshold (0: dropout rate below one half; −3), and
  for LeNet-300-100 the per-layer thresholds of the authors' code (−2.8, −3, −5).

Every row is a compact network built and tested as ``pyrocompress compress`` builds it.
Thresholds are chosen on the validation split only; the test error is reported, never used.

Usage (from the project root; MNIST at ../shared/data/mnist)::

    .venv/bin/python benchmarks/compression/mnist_compression.py --checkpoint-root runs/ckpt
    .venv/bin/python benchmarks/compression/pruning_rules.py --checkpoint-root runs/ckpt
    .venv/bin/python benchmarks/compression/pruning_rules.py --checkpoint-root runs/ckpt --quick
    .venv/bin/python benchmarks/compression/pruning_rules.py --checkpoint-root runs/ckpt \\
        --only lenet-5-caffe-group-nj      # redo one run; the file keeps the others

Writes ``docs/results/pruning-rules.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

import pyrocompress as pc
from pyrocompress import data as datasets
from pyrocompress.cli.app import _parse_range, build_model
from pyrocompress.infer.checkpoint import CHECKPOINT_NAME, safe_load
from pyrocompress.priors import get_prior

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import RESULTS, TARGETS, provenance, write_results
from mnist_compression import MNIST, RUNS

#: (label, prune() keyword arguments)
RULES = [
    *(
        (f"auto, SNR, tolerance {t:g}", {"rule": "auto", "score": "snr", "tolerance": t})
        for t in (0.0, 0.001, 0.003, 0.01)
    ),
    *(
        (f"auto, log α, tolerance {t:g}", {"rule": "auto", "score": "log_alpha", "tolerance": t})
        for t in (0.0, 0.003)
    ),
    *((f"log α < {t:g}", {"rule": "log_alpha", "threshold": t}) for t in (0.0, -3.0)),
]
#: per-layer log alpha thresholds of the authors' code, by model (one per Bayesian layer)
PER_LAYER = {"lenet-300-100": (-2.8, -3.0, -5.0)}
#: the issue's targets: max test error, min compression with bits


def load_run(name: str, root: Path, splits) -> pc.BayesianNetwork:
    model, prior, _, _ = RUNS[name]
    net = build_model(model, tuple(splits.train.X.shape[1:]), splits.num_classes)
    bnn = pc.bayesianize(net, get_prior(prior), seed=0)
    bnn.load_state_dict(safe_load(root / name / CHECKPOINT_NAME, "checkpoint")["network"])
    return bnn.eval()


def pixel_range(name: str) -> tuple[float, float]:
    """The pixel interval the run trained on (its ``--pixel-range``, else [0, 1])."""
    extra = list(RUNS[name][3])
    if "--pixel-range" in extra:
        return _parse_range(extra[extra.index("--pixel-range") + 1])
    return 0.0, 1.0


def _previous() -> dict:
    path = RESULTS / "pruning-rules.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint-root", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, default=MNIST)
    ap.add_argument("--quick", action="store_true", help="two rules per run, nothing written")
    ap.add_argument(
        "--only", choices=list(RUNS), action="append", help="these runs (the file keeps others)"
    )
    args = ap.parse_args()
    names = [
        n for n in (args.only or RUNS) if (args.checkpoint_root / n / CHECKPOINT_NAME).exists()
    ]
    if not names:
        ap.error(f"no run checkpoints under {args.checkpoint_root} (see --checkpoint-root)")
    rules = RULES[:1] + RULES[-1:] if args.quick else RULES
    rows = []
    for name in names:
        splits = datasets.load_dataset(
            "mnist", data_dir=args.data_dir, seed=0, flatten=False, pixel_range=pixel_range(name)
        )
        val, test = (splits.val.X, splits.val.y), (splits.test.X, splits.test.y)
        bnn = load_run(name, args.checkpoint_root, splits)
        epochs = int(safe_load(args.checkpoint_root / name / CHECKPOINT_NAME)["epoch"])
        extra = []
        if RUNS[name][0] in PER_LAYER and not args.quick:
            values = PER_LAYER[RUNS[name][0]]
            th = dict(zip(pc.Posterior(bnn).layer_names, values, strict=True))
            label = "log α < " + ", ".join(f"{v:g}" for v in values) + " (authors' code)"
            extra.append((label, {"rule": "log_alpha", "threshold": th}))
        for label, kwargs in [*rules, *extra]:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a rule that would empty a layer
                result = pc.prune(bnn, validation=val, test=test, **kwargs)
            r = result.report
            rows.append(
                {
                    "run": name,
                    "model": RUNS[name][0],
                    "epochs": epochs,
                    "rule": label,
                    "architecture": r["architecture_after"],
                    "val_error": bnn.point_error(*val, result.plan.masks),
                    "test_error_bayes": r["test_error_bayes"],
                    "test_error_compact": r["test_error_compact"],
                    "compression_params": r["compression_rate_params"],
                    "compression_bits": r["compression_rate_bits"],
                    "seconds": time.perf_counter() - start,
                }
            )
            row = rows[-1]
            print(
                f"{name:32s} {label:28s} {row['architecture']} test "
                f"{100 * row['test_error_compact']:.2f} % {row['compression_params']:.1f}x "
                f"{row['compression_bits']:.1f}x bits",
                flush=True,
            )
    if args.quick:
        return 0
    old = _previous()
    runs = {**old.get("runs", {}), **dict.fromkeys(names, provenance())}
    rows = [r for r in old.get("rows", []) if r["run"] not in names] + rows
    order = list(RUNS)
    rows.sort(key=lambda r: order.index(r["run"]))
    result = {"targets": TARGETS, "runs": runs, "rows": rows}
    lines = [
        "# Pruning rules on the trained MNIST posteriors",
        "",
        "Each network is the final checkpoint of its "
        "`benchmarks/compression/mnist_compression.py` run, pruned again by "
        "`benchmarks/compression/pruning_rules.py`; thresholds are chosen on the validation "
        "split, errors are on the 10,000 test images.",
    ]
    for name in sorted(runs, key=order.index):
        prov = runs[name]
        model = RUNS[name][0]
        max_err, min_bits = TARGETS[model]
        mine = [r for r in rows if r["run"] == name]
        lines += [
            "",
            f"## {name} ({mine[0]['epochs']} epochs; posterior mean "
            f"{100 * mine[0]['test_error_bayes']:.2f} %)",
            "",
            f"`{prov['command']}` · {prov['date']} · {prov['machine']}",
            "",
            "| rule | architecture | val error | test error | compression (params) "
            "| compression (bits) | within target |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in mine:
            arch = r["architecture"][1:-1] if model == "lenet-5-caffe" else r["architecture"][:-1]
            ok = r["test_error_compact"] <= max_err and r["compression_bits"] >= min_bits
            lines.append(
                f"| {r['rule']} | {'-'.join(map(str, arch))} | {100 * r['val_error']:.2f} % "
                f"| {100 * r['test_error_compact']:.2f} % | {r['compression_params']:.1f}× "
                f"| {r['compression_bits']:.1f}× | {'yes' if ok else 'no'} |"
            )
    write_results("pruning-rules", result, lines)
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    raise SystemExit(main())
