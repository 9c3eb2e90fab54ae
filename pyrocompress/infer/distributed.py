"""Data-parallel SVI on ``torch.distributed``.

The process group, the sharded data order and per-example noise that matches a single
process. Launched by ``torchrun --nproc_per_node K ...``, every process runs the same
:func:`pyrocompress.fit`. :func:`setup` joins the process group that ``torchrun``
describes in the environment (``gloo`` on the CPU, ``nccl`` on GPUs, one GPU per local
rank). Each step every rank takes ``batch_size / K`` examples of the global minibatch
(:class:`torch.utils.data.DistributedSampler`, reshuffled by ``set_epoch``), computes the
ELBO of its share scaled to the data set, and
:class:`~torch.nn.parallel.DistributedDataParallel` around the ELBO module averages the
gradients, so the update is that of the global minibatch.

The per-example noise of the local reparametrisation (pre-activations, per-example group
gates) is drawn for the whole global minibatch from the random stream every rank shares
(same seed), and each rank keeps the rows of its own examples
(:class:`~pyrocompress.effects.ShardExamples`, a Pyro effect handler).
The distributed run therefore follows the single-process run with the same seed and
global batch step by step, up to the order of floating-point sums.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["World", "setup", "world"]


@dataclass(frozen=True)
class World:
    """The place of this process in a data-parallel run.

    Parameters
    ----------
    rank, size
        Global rank and number of processes (0 and 1 without ``torchrun``).
    local_rank
        Rank on this machine: the GPU this process uses.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """More than one process."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints and writes outputs."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    """Return the integer environment variable ``name``, or ``default`` when unset."""
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def world() -> World:
    """Return the :class:`World` of this process.

    From the process group when one is initialised, else from ``torchrun``'s environment
    (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    Returns
    -------
    World
        Rank, size and local rank.

    Raises
    ------
    ValueError
        If one of the environment variables is not an integer.
    """
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return World(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))


def setup(device: str | torch.device) -> tuple[World, torch.device]:
    """Join the process group of a ``torchrun`` launch, if there is one.

    A process group the caller has initialised already is used as it is.

    Parameters
    ----------
    device
        The device asked for (``"cpu"``, ``"cuda"``).

    Returns
    -------
    world : World
        This process's place in the run.
    device : torch.device
        The device this process computes on: under ``torchrun`` with ``device="cuda"``,
        the GPU of its local rank.

    Raises
    ------
    RuntimeError
        If several processes are launched but torch has no ``torch.distributed``.
    ValueError
        If a local rank has no GPU.
    """
    device = torch.device(device)
    w = world()
    if not w.active:
        return w, device
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if device.type == "cuda":
        if w.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"local rank {w.local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        device = torch.device("cuda", w.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)  # a process group left open aborts the process at exit
    return world(), device


def _leave() -> None:
    """Leave the process group at exit, all ranks together.

    A rank that tears its connections down while another still works (rank 0 pruning and
    writing the outputs) can abort in gloo's teardown, and torchrun then kills the working
    rank.
    """
    if not dist.is_initialized():
        return
    try:
        dist.barrier()
    except Exception:  # a peer that died already: nothing to wait for
        pass
    dist.destroy_process_group()
