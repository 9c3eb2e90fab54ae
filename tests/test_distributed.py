"""Data-parallel SVI: two processes under torchrun take the steps of one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyrocompress.distributed import World, example_noise, sharded_examples, world

WORKER = Path(__file__).with_name("ddp_worker.py")
PRIORS = ["group-nj", "group-horseshoe", "spike-slab", "gaussian"]


def _launch(out: Path, nproc: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, str(WORKER), str(out), ",".join(PRIORS)]
    if nproc > 1:
        cmd[1:1] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_reach_the_parameters_of_one(tmp_path):
    """Same seed, same global batch (16 = 2 x 8): same parameters within float error."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _launch(one, 1)
    _launch(two, 2)
    for prior in PRIORS:
        a, b = torch.load(one / f"{prior}.pt"), torch.load(two / f"{prior}.pt")
        assert a["state"].keys() == b["state"].keys()
        for key, value in a["state"].items():
            # float32 sums in another order, through 18 Adam steps
            torch.testing.assert_close(b["state"][key], value, atol=1e-4, rtol=1e-4, msg=key)
        torch.testing.assert_close(
            torch.tensor(b["loss"]), torch.tensor(a["loss"]), rtol=1e-4, atol=1e-5
        )
        # and training moved them: the comparison is not between two initialisations
        moved = [(b["state"][k] - v).abs().max() for k, v in a["init"].items()]
        assert max(moved) > 1e-2


def test_example_noise_gives_each_rank_its_rows_of_the_global_draw():
    torch.manual_seed(3)
    full = torch.randn(8, 5)
    rows = []
    for rank in range(2):
        torch.manual_seed(3)
        with sharded_examples(World(rank=rank, size=2)):
            rows.append(example_noise((4, 5), full))
    assert torch.equal(rows[0], full[0::2]) and torch.equal(rows[1], full[1::2])
    torch.manual_seed(3)
    assert torch.equal(example_noise((8, 5), full), full)  # no shard: plain randn


def test_world_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    w = world()
    assert (w.rank, w.size, w.local_rank, w.active, w.is_main) == (1, 4, 1, True, False)
    monkeypatch.setenv("WORLD_SIZE", "four")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        world()


def test_compress_under_torchrun_writes_once_from_rank_0(tmp_path):
    """The CLI trains data-parallel on 2 CPU processes; only rank 0 reports and writes."""
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "pyrocompress", "compress", "--model", "mlp:64-8-10", "--prior", "group-nj"]
    cmd += ["--dataset", "digits", "--epochs", "2", "--out", str(out), "--quiet"]
    cmd += ["--checkpoint-dir", str(tmp_path / "ckpt")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote report.json") == 1
    assert (out / "report.json").is_file() and (tmp_path / "ckpt" / "checkpoint.pt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "out"]
