"""The files a user can ship: packed, weight-shared and ONNX, against the bits the report
counts (issue 24).

For each trained MNIST posterior under ``--checkpoint-root`` (kept by ``pyrocompress
compress --checkpoint-dir DIR/<run>`` or ``mnist_compression.py --checkpoint-root DIR``),
the script prunes with the automatic rule (``--tolerance`` of validation error) and
``quantize=True``, writes the deployable files (:func:`pyrocompress.deployable_files`:
``model.packed``, ``model.shared``, ``model.onnx``) and records

* the bits the report counts (``compression_rate_bits``: kept weights at 1 + e + t bits,
  biases at 32, no header) and the bytes of each file with its compression
  (``file_bytes_dense`` / file bytes); ``file / bits`` is the packed file's compression
  as a fraction of the counted one (the issue's floor: 0.8);
* the test error of the quantised compact network (every file but the shared one holds
  it, bit for bit) and of the weight-shared network;
* that each file loads back to the network it holds (packed and shared: outputs equal
  exactly; ONNX: largest absolute difference from torch under ONNX Runtime);
* the latency of the compact ONNX model under ONNX Runtime against the dense posterior-mean
  network under torch, at batch 1 and 1000, one thread, side by side in one process.

With ``--demo`` it also runs ``pyrocompress demo --export onnx,packed,shared`` and records
its row (the demo's own training; its report.json is the source).

Usage (from the project root; MNIST at ../shared/data/mnist)::

    .venv/bin/python benchmarks/compression/deployable_files.py \\
        --checkpoint-root runs/packed-ckpt --demo

Writes ``docs/results/deployable-files.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch

import pyrocompress as pc
from pyrocompress import data as datasets
from pyrocompress.cli.app import build_model
from pyrocompress.compress.onnx import onnx_latency
from pyrocompress.infer.checkpoint import CHECKPOINT_NAME
from pyrocompress.rng import seeded

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import MNIST, ROOT, provenance, write_results  # noqa: E402
from mnist_compression import RUNS  # noqa: E402
from pruning_rules import load_run, pixel_range  # noqa: E402

#: Louizos et al. (2017), BC-GHS on LeNet-5-Caffe: test error, compression with bits, and
#: "maximum compression" (with weight sharing), as ../shared/REFERENCES.md and the issue
#: quote them; LeNet-300-100's are not verified there, so none is shown
PAPER = {"lenet-5-caffe": {"error": 0.010, "bits": 419.0, "maximum": 771.0}}
FORMATS = ["onnx", "packed", "shared"]


def measure(name: str, root: Path, tolerance: float, repeats: int) -> dict:
    splits = datasets.load_dataset(
        "mnist", data_dir=MNIST, seed=0, flatten=False, pixel_range=pixel_range(name)
    )
    bnn = load_run(name, root, splits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pc.prune(
            bnn,
            validation=(splits.val.X, splits.val.y),
            test=(splits.test.X, splits.test.y),
            tolerance=tolerance,
        )
    X, y = torch.as_tensor(splits.test.X).float(), torch.as_tensor(splits.test.y)
    files = pc.deployable_files(
        result, FORMATS, example=X[:64], test=(X, y), error=bnn.likelihood.error
    )
    r = result.report
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for file, data in files.items():
            paths[file] = Path(tmp) / file
            paths[file].write_bytes(data)
        packed = pc.load_packed(paths["model.packed"])
        shared_net, _ = result.share()
        with torch.no_grad():
            exact_packed = torch.equal(packed(X[:2000]), result.quantized()(X[:2000]))
            exact_shared = torch.equal(
                pc.load_packed(paths["model.shared"])(X[:2000]), shared_net(X[:2000])
            )
        # the dense network a user starts from: the plain architecture with fresh weights
        # (the posterior-mean one holds shrunk weights down to denormal numbers, which
        # slow a CPU down by an order of magnitude and are not what a dense model costs)
        with seeded(0):
            dense = build_model(RUNS[name][0], tuple(X.shape[1:]), 10).eval()
        latency = onnx_latency(
            result.module, paths["model.onnx"], (1, 1000), dense=dense, repeats=repeats
        )
    model = RUNS[name][0]
    return {
        "run": name,
        "model": model,
        "tolerance": tolerance,
        "architecture": r["architecture_after"],
        "bits_per_layer": r["bits_per_layer"],
        "codebook_sizes": r["codebook_sizes"],
        "test_error_compact": r["test_error_compact"],
        "test_error_packed": r["test_error_packed"],
        "test_error_shared": r["test_error_shared"],
        "compression_rate_params": r["compression_rate_params"],
        "compression_rate_bits": r["compression_rate_bits"],
        "file_bytes_dense": r["file_bytes_dense"],
        "file_bytes_packed": r["file_bytes_packed"],
        "compression_rate_file": r["compression_rate_file"],
        "file_bytes_shared": r["file_bytes_shared"],
        "compression_rate_file_shared": r["compression_rate_file_shared"],
        "file_bytes_onnx": r["file_bytes_onnx"],
        "onnx_max_abs_diff": r["onnx_max_abs_diff"],
        "packed_exact": exact_packed,
        "shared_exact": exact_shared,
        "latency": latency,
        "paper": PAPER.get(model),
    }


def demo_row() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "pyrocompress", "demo", "--out", f"{tmp}/out"]
        cmd += ["--quiet", "--export", ",".join(FORMATS)]
        subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True)
        r = json.loads(Path(f"{tmp}/out/report.json").read_text())
    keys = (
        "architecture_after", "bits_per_layer", "codebook_sizes", "test_error_compact",
        "test_error_packed", "test_error_shared", "compression_rate_params",
        "compression_rate_bits", "file_bytes_dense", "file_bytes_packed",
        "compression_rate_file", "file_bytes_shared", "compression_rate_file_shared",
        "file_bytes_onnx", "onnx_max_abs_diff",
    )  # fmt: skip
    row = {k: r[k] for k in keys}
    row["architecture"] = row.pop("architecture_after")
    return {"run": "demo (digits, mlp 64-100-100-10, group horseshoe)", "model": "demo", **row}


def pct(v) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"


def markdown(rows: list[dict], prov: dict) -> list[str]:
    out = [
        "# Deployable files: packed, weight-shared and ONNX",
        "",
        "Each row prunes a trained posterior with the automatic rule and quantised weights, "
        "then writes the files `pyrocompress compress --export onnx,packed,shared` writes. "
        "*bits* is the report's `compression_rate_bits` (kept weights at 1 + e + t bits, "
        "biases at 32, no header); *packed* and *shared* are the whole files (safetensors "
        "header, spec, codes, biases), as `file_bytes_dense / file bytes`; *file / bits* is "
        "the packed file's share of the counted compression. *error* is the compact "
        "network's (`model.pt`, `model.onnx`); the packed file holds it with each layer's "
        "weights rounded to their fixed-point grid, bit for bit (*packed error*); the shared "
        "file the k-means weight-shared network (*shared error*). Louizos et al. (2017) "
        "report BC-GHS with bits and with weight sharing (*maximum*). The LeNets are CPU "
        "reruns with a budget (LeNet-300-100 100 epochs, LeNet-5-Caffe 40 epochs of the "
        "paper's 200, no fine-tuning): their compression is that of these posteriors, not "
        "of the best networks of `fine-tune.md`, whose checkpoints were not on this machine.",
        "",
        f"`{prov['command']}` · {prov['date']} · {prov['machine']} · commit {prov['commit']}",
        "",
        "| run | architecture | bits per layer | error | bits | packed error | packed | "
        "file / bits | shared values | shared error | shared | ONNX bytes | "
        "paper (error / bits / maximum) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper = r.get("paper")
        ref = (
            f"{pct(paper['error'])} / {paper['bits']:.0f}× / {paper['maximum']:.0f}×"
            if paper
            else "—"
        )
        out.append(
            f"| {r['run']} | {'-'.join(map(str, r['architecture']))} | "
            f"{'-'.join(map(str, r['bits_per_layer']))} | {pct(r['test_error_compact'])} | "
            f"{r['compression_rate_bits']:.1f}× | {pct(r['test_error_packed'])} | "
            f"{r['file_bytes_packed']:,} B = "
            f"{r['compression_rate_file']:.1f}× | "
            f"{r['compression_rate_file'] / r['compression_rate_bits']:.2f} | "
            f"{'-'.join(map(str, r['codebook_sizes']))} | {pct(r['test_error_shared'])} | "
            f"{r['file_bytes_shared']:,} B = {r['compression_rate_file_shared']:.1f}× | "
            f"{r['file_bytes_onnx']:,} | {ref} |"
        )
    timed = [r for r in rows if r.get("latency")]
    if timed:
        out += [
            "",
            "Latency (median ms per call, one thread, measured side by side in one process): "
            "the compact ONNX model under ONNX Runtime, the compact network and the dense "
            "architecture (fresh weights: the posterior mean's shrunk weights include "
            "denormal numbers, which slow a CPU by an order of magnitude) under torch.",
            "",
            "| run | batch | ONNX Runtime (compact) | torch (compact) | torch (dense) | "
            "dense / ONNX |",
            "|---|---|---|---|---|---|",
        ]
        for r in timed:
            for t in r["latency"]:
                out.append(
                    f"| {r['run']} | {t['batch_size']} | {t['onnx_ms']:.3f} | "
                    f"{t['torch_ms']:.3f} | {t['dense_ms']:.3f} | "
                    f"{t['dense_ms'] / t['onnx_ms']:.1f}× |"
                )
    out += [
        "",
        "Exactness: every packed and shared file loaded back to outputs equal to the network "
        "it holds (`torch.equal`) on 2,000 test images: "
        + ", ".join(
            f"{r['run']} {'yes' if r['packed_exact'] and r['shared_exact'] else 'NO'}"
            for r in rows
            if "packed_exact" in r
        )
        + "; ONNX against torch, largest absolute difference: "
        + ", ".join(f"{r['run']} {r['onnx_max_abs_diff']:.1e}" for r in rows)
        + ".",
    ]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint-root", type=Path, required=True)
    ap.add_argument("--tolerance", type=float, default=0.003)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--demo", action="store_true", help="also run and record the demo")
    ap.add_argument("--only", choices=list(RUNS), action="append")
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = [
        n for n in (args.only or RUNS) if (args.checkpoint_root / n / CHECKPOINT_NAME).exists()
    ]
    if not names and not args.demo:
        ap.error(f"no run checkpoints under {args.checkpoint_root}")
    rows = [measure(n, args.checkpoint_root, args.tolerance, args.repeats) for n in names]
    if args.demo:
        rows.insert(0, demo_row())
    prov = provenance()
    write_results("deployable-files", {**prov, "rows": rows}, markdown(rows, prov))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
