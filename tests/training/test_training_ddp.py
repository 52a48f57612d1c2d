"""DDP: two CPU processes (gloo), each on half of a batch, take the same optimizer step as one process on
the whole batch (parameters equal within float tolerance)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tomoseg.acquisition.phantoms import write_phantom
from tomoseg.etsam.model import random_model, tiny_spec

REPO = Path(__file__).resolve().parents[2]

RUNNER = """
import os, sys, torch
from pathlib import Path
torch.set_num_threads(1)
world, rank, port, volume, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5])
if world > 1:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
from tomoseg.etsam.model import random_model, tiny_spec
from tomoseg.training.data import Item, SliceDataset
from tomoseg.training.loop import StageTrainer
from tomoseg.training.settings import preset
settings = preset("demo", image_size=64, frames=3, batch_size=2, epochs_stage1=1, repeats=2, correction_clicks=1)
model = random_model(tiny_spec(64), seed=0)
data = SliceDataset([Item("p", volume / "tomogram.mrc", volume / "groundtruth.mrc")], 3, repeats=2)
trainer = StageTrainer(model, data, settings, 1, out / f"state{rank}.pt", progress=False)
terms = trainer.train_step()
if rank == 0:
    torch.save({"model": model.state_dict(), "terms": terms}, out / f"world{world}.pt")
if world > 1:
    torch.distributed.destroy_process_group()
"""


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.mark.slow  # three processes each build SAM2 and take a step; ~30 s on an idle 2-core machine
def test_two_gloo_processes_equal_one_process_on_the_whole_batch(tmp_path):
    volume = tmp_path / "phantom"
    write_phantom(volume, 31, (8, 64, 64), 13.48, 0.5)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(world), str(rank), port, str(volume), str(tmp_path)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for world, rank in ((2, 0), (2, 1), (1, 0))
    ]
    for proc in procs:
        assert proc.wait(timeout=900) == 0, proc.stderr.read() if proc.stderr else ""
    two, one = (torch.load(tmp_path / f"world{w}.pt", weights_only=False) for w in (2, 1))
    assert two["terms"] == pytest.approx(one["terms"], rel=1e-5)
    init = random_model(tiny_spec(64), seed=0).state_dict()
    moved = 0
    for key, value in one["model"].items():
        torch.testing.assert_close(two["model"][key], value, rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(value, init[key]))
    assert moved > 0
