"""MNIST compression of LeNet-300-100 and LeNet-5-Caffe against Louizos et al. (2017).

Each run is one ``pyrocompress compress`` command (the CLI, so the result is literally its
``report.json``), written to ``docs/results/<model>-<prior>.json``; the command, date,
machine and wall time of every run go to ``docs/results/mnist-compression.json``.
``benchmarks/page/results_page.py`` turns them into ``docs/results.md``.

Training recipe (all runs): MNIST as IDX files from ``--data-dir`` (55,000 train, 5,000
validation, 10,000 test; pixels in [0, 1]); Adam (fused), learning rate 1e-3 annealed by a
cosine to 1e-5, batch 128, no KL warm-up; guide initialisation as in the authors' code
(weight means N(0, 1/fan-in), log-variances -9, group scales at 1); the local
reparametrisation with per-example group noise; log-variances kept in [-30, 10], and the
weight variances of LeNet-300-100's first layer capped at 0.04 as in the authors' code
(``--clip-var 0.04``; without it the KL drives those variances towards the prior's and the
posterior-mean network errs 2.5 % after 200 epochs). Pruning:
the automatic rule (``--tolerance``: the largest pruning, layer thresholds on the group
SNR, whose validation error stays within the tolerance of the unpruned posterior mean);
bit precision per layer from the posterior variances (Louizos et al. 2017, §4). The
number of epochs is the budget given on the command line (the paper: 200).

Usage (from the project root; MNIST at ../shared/data/mnist)::

    .venv/bin/python benchmarks/compression/mnist_compression.py --jobs 2    # every run
    .venv/bin/python benchmarks/compression/mnist_compression.py --only lenet-5-caffe-group-nj
    .venv/bin/python benchmarks/compression/mnist_compression.py --quick     # 1 epoch, no files
    python benchmarks/compression/mnist_compression.py --device cuda --jobs 4 --checkpoint-root ckpt

``--checkpoint-root DIR`` keeps each run's last checkpoint (``DIR/<run>/checkpoint.pt``:
the trained posterior) for analyses after the fact, such as other pruning rules; with
``--resume`` an interrupted run continues from it (on this or another device).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pyrocompress.infer.checkpoint import CHECKPOINT_NAME, safe_load

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: _common

from _common import MNIST, RESULTS, ROOT, machine, write_atomic

#: the first-layer variance cap of the authors' LeNet-300-100 code
CLIP = ("--clip-var", "0.04")
#: run name -> (model, prior, epochs, extra options). Epochs are this CPU's budget where
#: below the paper's 200. Ablations: ``-no-clip``, ``-clip-0.1``, ``-clip-0.2``: without
#: the cap, and with caps of 2.5 and 5 times the authors'; ``-pixels-pm1``: pixels scaled
#: to [-1, 1] as in the authors' code; ``-seed-<k>``: the main recipe with another seed.
RUNS = {
    "lenet-300-100-group-nj": ("lenet-300-100", "group-nj", 200, CLIP),
    "lenet-300-100-group-horseshoe": ("lenet-300-100", "group-horseshoe", 200, CLIP),
    "lenet-5-caffe-group-nj": ("lenet-5-caffe", "group-nj", 200, ()),
    "lenet-5-caffe-group-horseshoe": ("lenet-5-caffe", "group-horseshoe", 200, ()),
    "lenet-300-100-spike-slab": ("lenet-300-100", "spike-slab", 80, ()),
    # the spike-and-slab prior with a slab at the weights' scale, c/sqrt(fan-in) in each
    # layer, and per-example Bernoulli gates shared by the units a group feeds
    # (straight-through gradients): docs/results/spike-slab-mnist.md
    **{
        f"lenet-300-100-spike-slab-st-fan-in-{c}": (
            "lenet-300-100",
            "spike-slab",
            80,
            (),
            {"slab_scale": float(c), "slab_scaling": "fan_in", "estimator": "straight-through"},
        )
        for c in (2, 3)
    },
    "lenet-300-100-gaussian": ("lenet-300-100", "gaussian", 80, ()),
    "lenet-300-100-group-nj-no-clip": ("lenet-300-100", "group-nj", 200, ()),
    "lenet-300-100-group-nj-clip-0.2": ("lenet-300-100", "group-nj", 200, ("--clip-var", "0.2")),
    "lenet-300-100-group-nj-clip-0.1": ("lenet-300-100", "group-nj", 200, ("--clip-var", "0.1")),
    "lenet-300-100-group-nj-pixels-pm1": (
        "lenet-300-100",
        "group-nj",
        200,
        (*CLIP, "--pixel-range", "-1,1"),
    ),
    **{
        f"lenet-300-100-group-nj-seed-{k}": (
            "lenet-300-100",
            "group-nj",
            200,
            (*CLIP, "--seed", str(k)),
        )
        for k in (1, 2)
    },
}
TOLERANCE = 0.003  # 0.3 points of validation error


def command(
    model: str, prior: str, epochs: int, data_dir: Path, extra=(), device: str = "cpu"
) -> list[str]:
    return [
        "compress", "--model", model, "--prior", prior, "--dataset", "mnist",
        "--data-dir", str(data_dir), "--epochs", str(epochs), "--batch-size", "128",
        "--lr", "1e-3", "--tolerance", str(TOLERANCE), "--tol", "off",
        *(() if "--seed" in extra else ("--seed", "0")), *extra,
        *(("--device", device) if device != "cpu" else ()),
    ]  # fmt: skip


def prior_options(name: str) -> dict:
    """The keyword arguments of the run's prior beyond the registry key's defaults."""
    entry = RUNS[name]
    return dict(entry[4]) if len(entry) > 4 else {}


def library_run(
    name: str, epochs: int, data_dir: Path, out: Path, checkpoint_dir, resume, overwrite=False
):
    """Train and prune run ``name`` as ``pyrocompress compress`` does, with its prior options.

    ``pyrocompress compress --prior KEY`` builds the key's default prior; a run whose prior
    has other hyper-parameters (:func:`prior_options`) runs the same steps through the
    library: the data, model, seeding, ``fit`` settings and automatic pruning of
    :func:`pyrocompress.cli.app.run` with its options from :func:`command`. Writes
    ``out/report.json``.
    """
    from pyrocompress import bayesianize, fit, prune
    from pyrocompress import data as datasets
    from pyrocompress.cli.app import build_model
    from pyrocompress.priors import get_prior
    from pyrocompress.rng import seeded

    model, key, _, extra = RUNS[name][:4]
    if extra:
        raise ValueError(f"{name}: a library run takes no command-line options, got {extra}")
    prior = type(get_prior(key))(**prior_options(name))
    seed = 0
    start = time.perf_counter()
    splits = datasets.load_dataset("mnist", data_dir=data_dir, seed=seed)
    with seeded(seed):
        net = build_model(model, tuple(splits.train.X.shape[1:]), splits.num_classes)
    bnn = bayesianize(net, prior, feature_names=splits.train.feature_names, seed=seed)
    history = fit(
        bnn, splits.train, epochs=epochs, batch_size=128, lr=1e-3, lr_schedule="cosine",
        validation=splits.val, seed=seed, checkpoint_dir=checkpoint_dir, resume=resume,
        overwrite_checkpoint=overwrite, progress=False, tol=None,
    )  # fmt: skip
    bnn.cpu()
    meta = {
        "model": model, "prior": key, "prior_config": repr(prior), "dataset": "mnist",
        "epochs": epochs, "seed": seed, "objective": "elbo", "score": "snr",
    }  # fmt: skip
    result = prune(
        bnn, "auto", validation=(splits.val.X, splits.val.y),
        test=(splits.test.X, splits.test.y), tolerance=TOLERANCE, score="snr", metadata=meta,
    )  # fmt: skip
    report = result.report
    report["seconds"] = time.perf_counter() - start
    report["history"] = history.to_dict()
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")


def run_one(
    name: str,
    epochs: int | None,
    data_dir: Path,
    threads: int,
    write: bool,
    device: str = "cpu",
    checkpoint_root: Path | None = None,
    resume: bool = False,
) -> dict:
    model, prior, default_epochs, extra = RUNS[name][:4]
    args = command(model, prior, epochs or default_epochs, data_dir, extra, device)
    shown = "pyrocompress " + " ".join(
        shlex.quote(a if a != str(data_dir) else "../shared/data/mnist") for a in args
    )
    options = prior_options(name)
    if options:  # the CLI builds the key's default prior: the same recipe via the library
        if device != "cpu":
            raise ValueError(f"{name}: a run with prior options trains on the CPU only")
        shown = (
            f"python benchmarks/compression/mnist_compression.py --only {name} "
            f"--epochs {epochs or default_epochs}  # = {shown} with the prior's "
            + ", ".join(f"{k}={v!r}" for k, v in options.items())
        )
    keep = ["--checkpoint-dir", str(checkpoint_root / name)] if checkpoint_root else []
    resumed_from = 0
    if resume and checkpoint_root is not None:  # (main refuses --resume without it)
        ckpt = checkpoint_root / name / CHECKPOINT_NAME
        resumed_from = int(safe_load(ckpt, "checkpoint")["epoch"]) if ckpt.exists() else 0
        keep.append("--resume")
    elif checkpoint_root is not None:  # a fresh run replaces the run's last checkpoint
        keep.append("--overwrite-checkpoint")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if options:
            child = [
                sys.executable, str(Path(__file__).resolve()), "--library-run", name,
                "--epochs", str(epochs or default_epochs), "--data-dir", str(data_dir),
                "--out", tmp, *keep,
            ]  # fmt: skip
        else:
            child = [sys.executable, "-m", "pyrocompress", *args, *keep, "--out", tmp, "--quiet"]
        subprocess.run(child, check=True, cwd=ROOT, env=env)
        wall = time.perf_counter() - start
        report = json.loads((Path(tmp) / "report.json").read_text())
    if write:
        write_atomic(RESULTS / f"{name}.json", json.dumps(report, indent=2) + "\n")
    err = report["test_error_compact"]
    print(
        f"{name}: {report['architecture_after']} test error {100 * err:.2f} % "
        f"(posterior mean {100 * report['test_error_bayes']:.2f} %), compression "
        f"{report['compression_rate_params']:.1f}x params, "
        f"{report['compression_rate_bits']:.1f}x bits, {wall:.0f} s",
        flush=True,
    )
    return {
        "command": shown,
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "threads": threads,
        "device": device,
        "wall_seconds": wall,
        **({"resumed_from_epoch": resumed_from} if resumed_from else {}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--only", choices=list(RUNS), action="append")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    ap.add_argument("--epochs", type=int, help="override every run's epochs")
    ap.add_argument("--data-dir", type=Path, default=MNIST)
    ap.add_argument("--quick", action="store_true", help="1 epoch each, nothing written")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="training device")
    ap.add_argument("--checkpoint-root", type=Path, help="keep DIR/<run>/checkpoint.pt")
    ap.add_argument("--resume", action="store_true", help="continue from --checkpoint-root")
    ap.add_argument("--threads", type=int, help="threads per run (default: cores / jobs)")
    ap.add_argument("--library-run", choices=list(RUNS), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--overwrite-checkpoint", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.library_run:  # the child process of a run with prior options (run_one)
        library_run(
            args.library_run, args.epochs, args.data_dir, args.out, args.checkpoint_dir,
            args.resume, args.overwrite_checkpoint,
        )  # fmt: skip
        return 0
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    if args.resume and args.checkpoint_root is None:
        ap.error("--resume needs --checkpoint-root, the folder of the runs' checkpoints")
    names = args.only or list(RUNS)
    epochs = 1 if args.quick else args.epochs
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {
            n: pool.submit(
                run_one,
                n,
                epochs,
                args.data_dir,
                threads,
                not args.quick,
                args.device,
                args.checkpoint_root,
                args.resume,
            )
            for n in names
        }
        done = {n: f.result() for n, f in futures.items()}
    if args.quick:
        return 0
    index = RESULTS / "mnist-compression.json"
    runs = json.loads(index.read_text()) if index.exists() else {}
    runs.update(done)
    write_atomic(index, json.dumps(runs, indent=2) + "\n")
    print(f"wrote {index} and docs/results/<run>.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
