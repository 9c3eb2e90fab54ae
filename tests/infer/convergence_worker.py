"""Run by tests/infer/test_convergence.py under ``torchrun --nproc_per_node 2``.

Each process fits the same small regression with ``fit``'s convergence stop and writes its
history's length, ``converged_at`` and losses to ``OUT/rank<r>.json``.
"""

import json
import sys
from pathlib import Path

import torch

import pyrocompress as pc
from pyrocompress.infer.distributed import world


def main(out: Path) -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 4, generator=g)
    y = X[:, 0] - 0.5 * X[:, 1] + 0.3 * torch.randn(256, generator=g)
    bnn = pc.bayesianize(
        pc.mlp([4, 1]), "gaussian", likelihood=pc.distributions.GaussianLikelihood(), seed=0
    )
    h = pc.fit(
        bnn, (X, y), epochs=300, batch_size=256, lr=0.05, tol=0.05, window=10, progress=False
    )
    record = {"epochs": len(h), "converged_at": h.converged_at, "loss": h.loss}
    (out / f"rank{world().rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
