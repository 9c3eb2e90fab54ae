"""The compression report: a text table, and writing the outputs of a run atomically."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyrocompress.infer.checkpoint import TAG_PATTERN, is_dead_tag, process_tag

__all__ = ["format_report", "write_outputs"]


def _fmt_error(v: float | None) -> str:
    """Return an error rate as a percentage, ``"n/a"`` when there is none."""
    return "n/a" if v is None else f"{100 * v:.2f} %"


def format_report(report: dict) -> str:
    """Return a plain-text table of a compression report (the CLI prints it).

    Parameters
    ----------
    report
        The report of :func:`~pyrocompress.prune` (:data:`~pyrocompress.REPORT_KEYS`);
        metadata a caller did not give (``model``, ``prior``, ...) is left out.

    Returns
    -------
    str
        One ``name  value`` line per entry.
    """
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
        *_file_rows(report, _fmt_error if is_err else (lambda v: v)),
    ]
    rows = [(k, v) for k, v in rows if v is not None]  # metadata a notebook did not give
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _file_rows(report: dict, fmt) -> list[tuple[str, object]]:
    """Rows of the deployable files a run wrote (:func:`~pyrocompress.deployable_files`)."""
    rows: list[tuple[str, object]] = []
    dense = report.get("file_bytes_dense")
    for name, key, rate in (
        ("model.packed", "file_bytes_packed", "compression_rate_file"),
        ("model.shared", "file_bytes_shared", "compression_rate_file_shared"),
        ("model.onnx", "file_bytes_onnx", None),
        ("model.pt2", "file_bytes_pt2", None),
    ):
        if report.get(key) is None:
            continue
        if not rows and dense is not None:
            rows.append(("dense float32 weights", f"{dense:,} bytes"))
        ratio = f"  ({report[rate]:.1f}x)" if rate is not None else ""
        rows.append((name, f"{report[key]:,} bytes{ratio}"))
    if report.get("codebook_sizes") is not None:
        rows.append(("shared values per layer", ", ".join(map(str, report["codebook_sizes"]))))
    if report.get("test_error_packed") is not None:
        metric = report.get("metric", "error")
        rows.append((f"test {metric} (packed)", fmt(report["test_error_packed"])))
    if report.get("test_error_shared") is not None:
        metric = report.get("metric", "error")
        rows.append((f"test {metric} (shared)", fmt(report["test_error_shared"])))
    return rows


def write_outputs(out_dir: str | os.PathLike, writers: dict[str, Callable[[Path], None]]) -> None:
    """Write every file of a run, or none of them.

    Each writer gets a path in a staging folder; only when all of them succeeded are the
    files published in ``out_dir``:

    * ``out_dir`` does not exist (its missing parents are created): the staging folder,
      made next to it, becomes ``out_dir`` by one :func:`os.replace`;
    * ``out_dir`` is an empty folder: likewise, the staging folder replaces it;
    * ``out_dir`` holds files: they stay; the new files are moved in one by one (a file of
      the same name is replaced), and if a move fails the files moved so far are taken
      out again and the replaced ones put back.

    On any failure ``out_dir`` is left as it was (and missing parents created for it are
    removed again), the staging folder is removed, and the exception propagates. A run
    killed while writing (where no cleanup can run) leaves its staging folder, named with
    its process id; the next call for the same ``out_dir`` finds it, and — the process
    being gone — removes it, first undoing the moves it journalled: files it had moved in
    are taken out and the ones they replaced put back, so that ``out_dir`` is never left
    mixed (:func:`_recover_interrupted`).

    Parameters
    ----------
    out_dir : str or os.PathLike
        The output folder.
    writers : dict
        File name -> function that writes that file to the path it is given.

    Raises
    ------
    ValueError
        If ``out_dir`` is an existing file.
    OSError
        If the folder cannot be created or written; nothing is left behind.
    """
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"out_dir {Path(out_dir)} is a file; give a directory (it is created if missing)"
        )
    for name in writers:
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"writers: {name!r} is not a plain file name; give names like 'a.png'")
    _recover_interrupted(out)
    made_parents = _make_parents(out.parent)
    try:
        if not out.exists():
            _publish_folder(out, writers, replace_empty=False)
        elif (
            not any(out.iterdir())
            and not out.is_symlink()  # a link to a folder: the files go into that folder
            and _same_device(out, out.parent)
            and os.access(out.parent, os.W_OK)
        ):
            _publish_folder(out, writers, replace_empty=True)
        else:
            _publish_files(out, writers)
    except BaseException:
        for folder in reversed(made_parents):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _make_parents(folder: Path) -> list[Path]:
    """Run ``folder.mkdir(parents=True)``, returning the folders it created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    made = []
    try:
        for f in reversed(missing):
            f.mkdir()
            made.append(f)
    except BaseException:
        for f in reversed(made):
            with contextlib.suppress(OSError):
                f.rmdir()
        raise
    return made


def _same_device(a: Path, b: Path) -> bool:
    """Return whether ``a`` and ``b`` are on the same file system."""
    return a.stat().st_dev == b.stat().st_dev


_STAGING = re.compile(rf"^\.(?P<name>.+)\.staging-{TAG_PATTERN}-[0-9a-f]{{8}}$")
_JOURNAL = ".journal"


def _recover_interrupted(out: Path) -> None:
    """Remove the staging folders of killed runs for ``out``, undoing their moves.

    Next to ``out``: folders ``.<out name>.staging-<pid>-<hex>`` (a new ``out`` that was
    never renamed into place): removed. Inside ``out``: ``.pyrocompress.staging-<pid>-...``
    of a run that moved files in one by one: its journal names the files it was moving;
    each one no longer in staging was moved in and is removed, and the file it replaced
    (kept in ``.replaced``) is put back. Only folders of processes that no longer exist
    are touched.
    """
    places = [(out.parent, out.name)] + ([(out, "pyrocompress")] if out.is_dir() else [])
    for parent, name in places:
        if not parent.is_dir():
            continue
        try:
            entries = list(parent.iterdir())
        except OSError:  # a folder that can be written but not listed: nothing to find
            continue
        for folder in entries:
            match = _STAGING.match(folder.name)
            if not match or match["name"] != name or not is_dead_tag(match["host"], match["pid"]):
                continue
            if parent == out:
                _undo_moves(out, folder)
            shutil.rmtree(folder, ignore_errors=True)


def _undo_moves(out: Path, staging: Path) -> None:
    """Undo the journalled moves of an interrupted :func:`_publish_files`."""
    journal = staging / _JOURNAL
    if not journal.is_file():
        return  # killed before any move: nothing in ``out`` changed
    backup = staging / ".replaced"
    for name in journal.read_text().split("\n"):
        if not name or Path(name).name != name:
            continue
        if not (staging / name).exists():  # moved in: take it out
            with contextlib.suppress(OSError):
                _remove(out / name)
        if (backup / name).exists() or (backup / name).is_symlink():
            with contextlib.suppress(OSError):
                os.replace(backup / name, out / name)


def _staging_folder(parent: Path, name: str) -> Path:
    """Create a new empty folder in ``parent``, with the permissions of a plain ``mkdir``.

    Its name holds this process's id, so that a later run can tell a killed run's leftover
    from a live run's folder (:func:`_recover_interrupted`).
    """
    for _ in range(100):
        folder = parent / f".{name}.staging-{process_tag()}-{secrets.token_hex(4)}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"could not create a staging folder in {parent}")


def _publish_folder(
    out: Path, writers: dict[str, Callable[[Path], None]], *, replace_empty: bool
) -> None:
    """Write into a staging folder next to ``out``, then rename it to ``out``."""
    staging = _staging_folder(out.parent, out.name)
    try:
        for name, write in writers.items():
            write(staging / name)
        if replace_empty:
            shutil.copymode(out, staging)
            try:
                os.replace(staging, out)  # POSIX renames a folder over an empty one
            except OSError:
                if any(out.iterdir()):  # files appeared meanwhile: leave them alone
                    raise
                out.rmdir()
                try:
                    os.replace(staging, out)
                except BaseException:
                    out.mkdir(exist_ok=True)
                    raise
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish_files(out: Path, writers: dict[str, Callable[[Path], None]]) -> None:
    """Write into a staging folder inside ``out`` (same file system), then move the files in.

    On failure undo the moves and restore the files they replaced.
    """
    staging = _staging_folder(out, "pyrocompress")
    backup = staging / ".replaced"
    moved: list[str] = []
    try:
        for name, write in writers.items():
            write(staging / name)
        backup.mkdir()
        # what a recovery must undo, written whole or not at all
        (staging / ".journal.tmp").write_text("\n".join(writers))
        os.replace(staging / ".journal.tmp", staging / _JOURNAL)
        for name in writers:
            if (out / name).exists() or (out / name).is_symlink():
                os.replace(out / name, backup / name)
            moved.append(name)
            os.replace(staging / name, out / name)
        os.unlink(staging / _JOURNAL)  # the commit point: from here nothing is undone
    except BaseException:
        for name in reversed(moved):
            if not (staging / name).exists():  # the new file was moved in: take it out
                with contextlib.suppress(OSError):
                    _remove(out / name)
            if (backup / name).exists() or (backup / name).is_symlink():
                with contextlib.suppress(OSError):
                    os.replace(backup / name, out / name)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove(path: Path) -> None:
    """Remove a file, a link or a folder tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def json_writer(obj: Any) -> Callable[[Path], None]:
    """Return a writer (for :func:`write_outputs`) of ``obj`` as indented JSON.

    Parameters
    ----------
    obj
        A JSON-serialisable object.

    Returns
    -------
    Callable
        ``write(path)``.
    """

    def write(path: Path) -> None:
        path.write_text(json.dumps(obj, indent=2) + "\n")

    return write
