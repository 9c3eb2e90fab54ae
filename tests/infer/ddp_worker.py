"""Run by tests/test_distributed.py, alone or under ``torchrun --nproc_per_node 2``.

Fits a small network on fixed data for each prior and (rank 0) saves the fitted
``state_dict`` and loss history to ``OUT/<prior>.pt``.
"""

import sys
from pathlib import Path

import torch

import pyrocompress as pc
from pyrocompress.infer.distributed import world


def data(n: int = 96, p: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    X = torch.randn(n, p, generator=g)
    y = (X[:, 0] - X[:, 1] > 0).long() + (X[:, 2] > 1).long()
    return X, y


def main(out: Path, priors: list[str]) -> None:
    torch.set_num_threads(1)
    X, y = data()
    for prior in priors:
        bnn = pc.bayesianize(pc.mlp([X.shape[1], 8, 3]), prior, seed=0)
        init = {k: v.detach().clone() for k, v in bnn.state_dict().items()}
        history = pc.fit(bnn, (X, y), epochs=3, batch_size=16, lr=1e-2, seed=0, progress=False)
        if world().is_main:
            state = {k: v.detach().clone() for k, v in bnn.state_dict().items()}
            torch.save({"init": init, "state": state, "loss": history.loss}, out / f"{prior}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2].split(","))
