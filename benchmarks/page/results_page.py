"""Assemble ``docs/results.md`` from the measured results in ``docs/results/``.

The page only stitches; it measures and concludes nothing. Its parts are

* tables generated from the JSON files the benchmark scripts wrote: numbers only, each with
  the command, date and machine of its run;
* the Markdown pages the scripts wrote next to their JSON (``docs/results/<study>.md``),
  included with their headings moved down;
* the interpretation of a study, hand-written and reviewed: ``docs/results/notes/<study>.md``
  (``<study>`` is the stem of the study's JSON file), included verbatim after the study's
  tables.

No sentence is chosen here by a condition on a measured number: when a rerun changes the
numbers, the tables follow and the notes are reviewed and edited by hand (every number a
note states is in the JSON behind the tables it sits with). A study whose file is missing is
listed as not yet measured.

Usage (from the project root, or with the path to this file from anywhere)::

    .venv/bin/python benchmarks/page/results_page.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import RESULTS, TARGETS, write_atomic

PAGE = RESULTS.parent / "results.md"
#: the hand-written interpretation of each study, ``<study>.md``
NOTES = RESULTS / "notes"

#: Louizos, Ullrich & Welling (2017), Table 1, and Molchanov et al. (2017), as the issue
#: quotes them: error %, architecture, compression by parameters and with bits.
ANCHORS = {
    "lenet-300-100": [
        ("BC-GNJ (Louizos et al. 2017)", "≈ 1.8", "278-98-13", None, None),
        ("BC-GHS (Louizos et al. 2017)", "≈ 1.8", "311-86-14", None, None),
        ("Sparse VD (Molchanov et al. 2017)", "1.92", "—", "68×", None),
    ],
    "lenet-5-caffe": [
        ("BC-GNJ (Louizos et al. 2017)", "1.0", "8-13-88-13", "108×", "361×"),
        ("BC-GHS (Louizos et al. 2017)", "1.0", "5-10-76-16", "156×", "419×"),
    ],
}
#: the priors of the MNIST runs, in the order of the rows
PRIORS = ("group-nj", "group-horseshoe", "spike-slab", "gaussian")
#: Ablations shown after the main rows: file suffix -> label.
VARIANTS = {
    "": "",
    "-pixels-pm1": ", pixels in [−1, 1]",
    "-clip-0.1": ", variance cap 0.1",
    "-clip-0.2": ", variance cap 0.2",
    "-no-clip": ", no variance cap",
    "-seed-1": ", seed 1",
    "-seed-2": ", seed 2",
}
#: the studies with a section of their own: file stem, title, the script that writes it
STUDIES = (
    ("self-compression", "Self-compression (Carannante et al. 2020)",
     "benchmarks/compression/self_compression.py"),
    ("svi-vs-nuts", "SVI against NUTS", "benchmarks/inference/svi_vs_nuts.py"),
    ("spike-slab-mnist", "Spike-and-slab on MNIST",
     "benchmarks/compression/spike_slab_mnist.py"),
    ("architectures-mnist32", "VGG-BN and ResNet-20 on MNIST-32",
     "benchmarks/compression/architectures_mnist32.py"),
    ("deployable-files", "Deployable files: packed, weight-shared, ONNX",
     "benchmarks/compression/deployable_files.py"),
)  # fmt: skip


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _note(stem: str) -> list[str]:
    """The reviewed interpretation of study ``stem``, verbatim, then a blank line; nothing
    when the study has no note."""
    path = NOTES / f"{stem}.md"
    if not path.exists():
        return []
    return [*path.read_text().rstrip("\n").splitlines(), ""]


def _arch(report: dict) -> str:
    after = report["architecture_after"]
    if report["model"] == "lenet-5-caffe":  # channels of the convolutions, then hidden units
        return "-".join(map(str, after[1:-1]))
    return "-".join(map(str, after[:-1]))


def _target_met(err: float, bits: float, max_err: float, min_bits: float) -> str:
    """The table cell: ``yes``, or ``no`` with the distance to each target missed."""
    gap = []
    if err > max_err:
        gap.append(f"error +{100 * (err - max_err):.2f} pts")
    if bits < min_bits:
        gap.append(f"bits {bits:.0f}× < {min_bits:.0f}×")
    return "no: " + ", ".join(gap) if gap else "yes"


def compression_table(model: str, max_err: float, min_bits: float) -> list[str]:
    """The paper's rows, then one row per ``docs/results/<model>-<prior><variant>.json``."""
    lines = [
        f"### {model}",
        "",
        "| method | epochs | test error (compact) | posterior mean | architecture "
        "| compression (params) | compression (bits) | target met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, err, arch, params, bits in ANCHORS[model]:
        lines.append(f"| {name} | paper | {err} % | | {arch} | {params or '—'} "
                     f"| {bits or '—'} | (anchor) |")  # fmt: skip
    for variant, label in VARIANTS.items():
        for prior in PRIORS:
            report = _load(f"{model}-{prior}{variant}.json")
            if report is None:
                continue
            err, bits = report["test_error_compact"], report["compression_rate_bits"]
            lines.append(
                f"| pyrocompress {prior}{label} | {report['epochs']} | {100 * err:.2f} % "
                f"| {100 * report['test_error_bayes']:.2f} % | {_arch(report)} "
                f"| {report['compression_rate_params']:.1f}× | {bits:.1f}× "
                f"| {_target_met(err, bits, max_err, min_bits)} |"
            )
    lines.append("")
    lines.append(f"Target: test error ≤ {100 * max_err:.1f} % at ≥ {min_bits:.0f}× with bits.")
    return lines


def runs_table(runs: dict) -> list[str]:
    """Command, date, machine and wall time of every run of ``mnist-compression.json``."""
    if not runs:
        return []
    lines = ["| run | command | date | machine | wall time |", "|---|---|---|---|---|"]
    for name, r in runs.items():
        note = f" ({r['note']})" if r.get("note") else ""
        lines.append(
            f"| {name} | `{r['command']}` | {r['date']} | {r['machine']}, "
            f"{r['threads']} thread(s){note} | {r['wall_seconds'] / 60:.1f} min |"
        )
    return lines + [""]


def compression_section() -> list[str]:
    lines = [
        "## MNIST compression (Louizos et al. 2017)",
        "",
        "Written by `benchmarks/compression/mnist_compression.py` (training recipe in its "
        "docstring); each row's full `report.json` is `docs/results/<model>-<prior>.json`. "
        "Architecture: kept inputs (or channels) and hidden units; errors on the 10,000 test "
        "images; compression = parameters before / after, and with the per-layer bit "
        "precision (32-bit floats before).",
    ]
    for model, (max_err, min_bits) in TARGETS.items():
        lines += ["", *compression_table(model, max_err, min_bits)]
    lines += ["", *_note("mnist-compression")]
    lines += ["", *runs_table(_load("mnist-compression.json") or {})]
    for stem in ("pruning-rules", "fine-tune"):
        path = RESULTS / f"{stem}.md"
        if path.exists():
            lines += ["", *_body(path, level=3), "", *_note(stem)]
    return lines


def speed_section() -> list[str]:
    lines = ["## Speed", ""]
    for stem in ("speed", "speed-cuda"):
        speed = _load(f"{stem}.json")
        if speed is None:
            lines += [f"`benchmarks/speed/speed.py` ({stem}) not yet measured.", ""]
            continue
        lines += [
            f"### {'GPU' if stem.endswith('cuda') else 'CPU'} ({speed['device']})",
            "",
            f"`{speed['command']}`, {speed['date']}, {speed['machine']}; "
            f"full table in [results/{stem}.md](results/{stem}.md).",
            "",
            "| network | prior | ms / step | × hand-written BC-GNJ | × deterministic |",
            "|---|---|---|---|---|",
        ]
        for model, rows in speed["step_ms"].items():
            for prior in PRIORS:
                r = rows[f"pyrocompress {prior}"]
                lines.append(
                    f"| {model} | {prior} | {r['ms']:.2f} | {r['vs_baseline']:.2f} "
                    f"| {r['vs_floor']:.2f} |"
                )
        lat = speed["latency"]["1000"]
        lines += [
            "",
            f"Compact 278-98-13 LeNet-300-100 at batch 1000: {lat['speedup']:.2f}× faster "
            f"than the dense network, {lat['speedup'] / speed['flops_ratio']:.2f} of its "
            f"{speed['flops_ratio']:.1f}× FLOPs ratio.",
            "",
            *_note(stem),
        ]
    ops = RESULTS / "step-ops.md"
    if ops.exists():
        lines += [*_body(ops, level=3), "", *_note("step-ops")]
    return lines


def selection_section() -> list[str]:
    bai = _load("selection-bai.json")
    lines = ["## Feature selection", ""]
    if bai is not None:
        lines += [
            f"Bai, Song & Cheng (2020) design, default `FeatureSelector`: exactly x1…x5 "
            f"selected in {bai['exact_in']} of {bai['seeds']} seeds, "
            f"{bai['exact_in_all_fits']} of {bai['fits']} fits over "
            f"{bai['fits'] // bai['seeds']} initialisations per seed "
            f"(`{bai['command']}`, {bai['date']}, {bai['machine']}; table in "
            "[results/selection-bai.md](results/selection-bai.md)).",
            "",
            *_note("selection-bai"),
        ]
    study = RESULTS / "selection-study.md"
    if study.exists():
        lines += [*_body(study, level=3), "", *_note("selection-study")]
    else:
        lines += [
            "The replicated study (`benchmarks/selection/selection_study.py`: Bai et al. and "
            "Sun et al. designs, 10 replications, three group priors against LassoCV and "
            "ARDRegression) is not yet measured.",
        ]
    speed = RESULTS / "select-speed.md"
    if speed.exists():
        lines += ["", *_body(speed, level=3), "", *_note("select-speed")]
    else:
        lines += [
            "",
            "`pyrocompress select` on a small table: not yet measured "
            "(`benchmarks/selection/select_speed.py`).",
            "",
        ]
    return lines


def _body(path: Path, level: int) -> list[str]:
    """A study's own Markdown page, its headings moved down to ``level``."""
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            depth = len(line) - len(line.lstrip("#"))
            line = "#" * (depth + level - 1) + line[depth:]
        out.append(line.replace("](self-compression.png)", "](results/self-compression.png)"))
    return out


def study_sections() -> list[str]:
    lines: list[str] = []
    for stem, title, script in STUDIES:
        path = RESULTS / f"{stem}.md"
        lines += [f"## {title}", ""]
        if path.exists():
            lines += _body(path, level=2)[1:] + [""] + _note(stem)
        else:
            lines += [f"Not yet measured (`{script}`).", ""]
    return lines


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    lines = [
        "# Measured results",
        "",
        "Assembled by `benchmarks/page/results_page.py` from the JSON files in "
        "`docs/results/`; every number below was measured by the script named with it, on the "
        "machine and date given (GPU rows name the GPU). The paragraphs that interpret the "
        "numbers are hand-written and reviewed (`docs/results/notes/`); the tables are "
        "generated.",
        "",
    ]
    for section in (compression_section, speed_section, selection_section, study_sections):
        lines += section() + [""]
    write_atomic(PAGE, "\n".join(lines).rstrip() + "\n")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
