"""Latency of a compact network exported to ONNX, under ONNX Runtime and torch (issue 24).

Loads a compact network written by ``pc.save_compact`` (the CLI's ``model.pt``), exports it
with :func:`pyrocompress.compress.onnx.export_onnx` (checked against torch on a random
batch of the input shape), and times, side by side in one process at each batch size, the
ONNX graph under ONNX Runtime (CPU provider), the compact network under torch, and — with
``--model`` — the dense network of that architecture (fresh weights: only its cost matters)
under torch. Medians over ``--repeats`` calls after a warm-up, calls interleaved so that a
drift of the machine falls on all of them alike; one thread by default.

Usage (from the project root)::

    .venv/bin/python benchmarks/speed/onnx_latency.py --compact runs/out/model.pt \\
        --model lenet-300-100 --input-shape 1,28,28
    .venv/bin/python benchmarks/speed/onnx_latency.py --compact model.pt --quick

The input shape defaults to that of the dataset the file's metadata names (MNIST, MNIST-32,
CIFAR-10). Writes ``docs/results/onnx-latency.json`` and ``.md`` (nothing with ``--quick``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

import pyrocompress as pc
from pyrocompress.compress.onnx import export_onnx, onnx_latency
from pyrocompress.infer.checkpoint import safe_load
from pyrocompress.rng import seeded

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import provenance, write_results  # noqa: E402

#: The input shape of one example of the datasets whose name a compact file may store.
SHAPES = {"mnist": (1, 28, 28), "mnist32": (1, 32, 32), "cifar10": (3, 32, 32)}


def ints(text: str) -> tuple[int, ...]:
    """Parse ``"1,28,28"`` into ``(1, 28, 28)``."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas: {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers: {text!r}")
    return values


def input_shape(args: argparse.Namespace, metadata: dict) -> tuple[int, ...]:
    """Return the ``--input-shape``, else that of the dataset the file's metadata names."""
    if args.input_shape is not None:
        return args.input_shape
    dataset = metadata.get("dataset")
    if dataset in SHAPES:
        return SHAPES[dataset]
    raise SystemExit(
        f"--input-shape is needed: {args.compact} names dataset {dataset!r}, whose shape is "
        f"not one of {sorted(SHAPES)} (e.g. --input-shape 1,28,28)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--compact", required=True, type=Path, help="file from pc.save_compact")
    ap.add_argument("--factory", default=None, help="confirm the file's factory (load_compact)")
    ap.add_argument("--model", default=None, help="dense model to time beside it (CLI name)")
    ap.add_argument("--input-shape", type=ints, default=None, help="one example, e.g. 1,28,28")
    ap.add_argument("--batch-sizes", type=ints, default=(1, 1000))
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--onnx", type=Path, default=None, help="keep the ONNX file here")
    ap.add_argument("--quick", action="store_true", help="5 repeats, nothing written")
    args = ap.parse_args()
    if args.quick:
        args.repeats = 5
    payload = safe_load(args.compact, "compact model")
    metadata = payload.get("metadata", {}) if isinstance(payload, dict) else {}
    module = pc.load_compact(args.compact, factory=args.factory)
    shape = input_shape(args, metadata)
    example = torch.randn(8, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        num_classes = module(example).shape[-1]
    dense = None
    if args.model is not None:
        from pyrocompress.cli.app import build_model

        with seeded(0):
            dense = build_model(args.model, shape, num_classes).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.onnx if args.onnx is not None else Path(tmp) / "compact.onnx"
        export = export_onnx(module, path, example)
        print(f"exported {export}")
        rows = onnx_latency(
            module, path, args.batch_sizes, repeats=args.repeats, dense=dense, threads=args.threads
        )
    params = sum(p.numel() for p in module.parameters())
    dense_params = None if dense is None else sum(p.numel() for p in dense.parameters())
    lines = [
        "# Compact network latency: ONNX Runtime against torch",
        "",
        f"`{args.compact.name}` ({type(module).__name__}, {params:,} parameters"
        + (f"; dense {args.model}, {dense_params:,}" if dense is not None else "")
        + f"); input {tuple(shape)}; {args.threads} thread(s); median of {args.repeats} "
        f"calls after a warm-up. ONNX opset {export['opset']}, {export['bytes']:,} bytes, max "
        f"|ONNX - torch| = {export['max_abs_diff']:.2g} on the check batches.",
        "",
        "| batch | ONNX Runtime (ms) | torch compact (ms) | torch dense (ms) | "
        "compact torch / ONNX | dense torch / ONNX |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        dense_ms = "–" if r["dense_ms"] is None else f"{r['dense_ms']:.3f}"
        dense_x = "–" if r["dense_ms"] is None else f"{r['dense_ms'] / r['onnx_ms']:.2f}"
        lines.append(
            f"| {r['batch_size']} | {r['onnx_ms']:.3f} | {r['torch_ms']:.3f} | {dense_ms} | "
            f"{r['torch_ms'] / r['onnx_ms']:.2f} | {dense_x} |"
        )
    print("\n".join(lines))
    if args.quick:
        return 0
    result = {
        **provenance(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "metadata": {k: v for k, v in metadata.items() if isinstance(v, (str, int, float))},
        "input_shape": list(shape),
        "export": {k: v for k, v in export.items() if k != "path"},
        "params": params,
        "dense_params": dense_params,
        "rows": rows,
    }
    prov = f"Command: `{result['command']}` · date {result['date']} · machine: {result['machine']}"
    write_results("onnx-latency", result, [lines[0], "", prov, *lines[1:]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
