"""Data-parallel SVI: two processes under torchrun take the steps of one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyrocompress.effects import ShardExamples, example_noise
from pyrocompress.infer.distributed import World, world

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
        a = torch.load(one / f"{prior}.pt", weights_only=True)
        b = torch.load(two / f"{prior}.pt", weights_only=True)
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
        with ShardExamples(rank, 2):
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


PRETRAIN_WORKER = """
import sys

import torch

import pyrocompress as pc
from pyrocompress.infer.distributed import world

torch.set_num_threads(1)
g = torch.Generator().manual_seed(1)
X = torch.randn(96, 6, generator=g)
y = (X[:, 0] - X[:, 1] ** 2 > 0).long()
bnn = pc.bayesianize(pc.mlp([6, 8, 2]), "group-nj", seed=0)
init = {k: v.detach().clone() for k, v in bnn.state_dict().items()}
seen = []
bnn.net.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
h = pc.pretrain(bnn, (X, y), group_penalty=0.01, epochs=3, batch_size=16, lr=1e-2, seed=0)
state = {k: v.detach().clone() for k, v in bnn.state_dict().items()}
result = {"init": init, "state": state, "loss": h.loss, "seen": seen}
torch.save(result, sys.argv[1] + f".rank{world().rank}")
"""


def test_pretrain_in_two_processes_takes_the_steps_of_one(tmp_path):
    """pretrain joins the process group as fit does: each process takes its half of every
    global minibatch and the gradients are averaged, so 2 processes x 8 examples reach the
    means of 1 process x 16 (same seed), losses included."""
    worker = tmp_path / "pretrain_worker.py"
    worker.write_text(PRETRAIN_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    results = {}
    for nproc in (1, 2):
        cmd = [sys.executable, str(worker), str(tmp_path / f"{nproc}.pt")]
        if nproc > 1:
            cmd[1:1] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        results[nproc] = [
            torch.load(tmp_path / f"{nproc}.pt.rank{r}", weights_only=True) for r in range(nproc)
        ]
    (a,), (b, b1) = results[1], results[2]
    # a shape check on one example, then 3 epochs of 96 examples: one process sees them
    # all, each of two processes its half
    assert a["seen"] == [1] + [16] * 18 and b["seen"] == b1["seen"] == [1] + [8] * 18
    # (the Fisher information, recorded by fit only, is NaN: unknown, in every process)
    for key, value in b["state"].items():  # and the two processes hold the same means
        torch.testing.assert_close(b1["state"][key], value, atol=0, rtol=0, equal_nan=True,
                                   msg=key)  # fmt: skip
    for key, value in a["state"].items():
        torch.testing.assert_close(b["state"][key], value, atol=1e-5, rtol=1e-5, equal_nan=True,
                                   msg=key)  # fmt: skip
    torch.testing.assert_close(torch.tensor(b["loss"]), torch.tensor(a["loss"]), rtol=1e-5, atol=0)
    moved = [(a["state"][k] - v).abs().max() for k, v in a["init"].items() if k.endswith("_loc")]
    assert max(moved) > 1e-2  # the means did move: not a comparison of two initialisations


def test_select_prints_and_writes_only_on_rank_0(tmp_path, capsys, monkeypatch):
    """Under torchrun every rank runs ``pyrocompress select``; ranks other than 0 train
    their share and then neither print nor write --out."""
    from pyrocompress.cli import app as cli

    csv = tmp_path / "t.csv"
    rows = [f"{i % 7},{(i * 3) % 5},{(i % 7) * 0.5 + 0.1 * (i % 3)}" for i in range(40)]
    csv.write_text("a,b,y\n" + "\n".join(rows) + "\n")
    out = tmp_path / "out"
    argv = ["select", "--csv", str(csv), "--target", "y", "--hidden", "3", "--epochs", "2"]
    monkeypatch.setattr(cli, "world", lambda: World(rank=1, size=2))
    assert cli.main([*argv, "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert not out.exists()
    monkeypatch.setattr(cli, "world", lambda: World(rank=0, size=2))
    assert cli.main([*argv, "--out", str(out), "--quiet"]) == 0
    assert "task: regression" in capsys.readouterr().out
    assert (out / "selection.json").is_file()
