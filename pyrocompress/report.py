"""The compression report: a text table, and writing the outputs of a run atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["format_report", "write_outputs"]


def _fmt_error(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f} %"


def format_report(report: dict) -> str:
    """A plain-text table of a compression report (the CLI prints it)."""
    arch_b = "-".join(map(str, report["architecture_before"]))
    arch_a = "-".join(map(str, report["architecture_after"]))
    metric = report.get("metric", "error")
    is_err = metric == "error"
    rows = [
        ("model", report.get("model")),
        ("prior", report.get("prior")),
        ("dataset", report.get("dataset")),
        ("epochs", report.get("epochs")),
        (
            "training + pruning time",
            None if report.get("seconds") is None else f"{report['seconds']:.1f} s",
        ),
        ("architecture", f"{arch_b}  ->  {arch_a}"),
        ("parameters", f"{report['params_before']:,}  ->  {report['params_after']:,}"),
        ("|w != 0| / |w|", f"{100 * report['weight_fraction']:.2f} %"),
        ("bits per layer", ", ".join(map(str, report["bits_per_layer"]))),
        ("compression (params)", f"{report['compression_rate_params']:.1f}x"),
        ("compression (bits)", f"{report['compression_rate_bits']:.1f}x"),
        ("FLOPs", f"{report['flops_before']:,}  ->  {report['flops_after']:,}"),
        (
            f"test {metric} (posterior mean)",
            _fmt_error(report["test_error_bayes"]) if is_err else report["test_error_bayes"],
        ),
        (
            f"test {metric} (compact)",
            _fmt_error(report["test_error_compact"]) if is_err else report["test_error_compact"],
        ),
        ("pruning rule", f"{report.get('rule')} (score: {report.get('score')})"),
    ]
    rows = [(k, v) for k, v in rows if v is not None]  # metadata a notebook did not give
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def write_outputs(out_dir: str | os.PathLike, writers: dict[str, Callable[[Path], None]]) -> None:
    """Write every file of a run, or none of them.

    Each writer gets a temporary path; only when all succeeded are the files moved into
    ``out_dir`` (created if needed). ``out_dir`` must not be an existing file.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a directory (it is created if missing)")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pyrocompress-", dir=out))
    try:
        for name, write in writers.items():
            write(staging / name)
        for name in writers:
            os.replace(staging / name, out / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def json_writer(obj) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_text(json.dumps(obj, indent=2) + "\n")

    return write
