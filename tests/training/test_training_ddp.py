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


def _train_cli(sheet: Path, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """`tomoseg train` (demo preset, tiny: one step a stage with a batch of 2) in a subprocess."""
    settings = ["--preset", "demo", "--epochs-stage1", "1", "--epochs-stage2", "1", "--batch-size", "2"]
    cmd = [
        sys.executable,
        "-m",
        "tomoseg",
        "train",
        "--runs",
        str(sheet),
        "--data",
        str(data),
        "--out",
        str(out),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    return subprocess.run(
        [*cmd, *settings, "--device", "cpu", "--no-progress", *extra], env=env, capture_output=True, text=True
    )


@pytest.mark.slow  # trains SAM2 (tiny) twice, once in two processes; ~2 min on an idle 2-core machine
def test_train_processes_two_equals_one_process_on_the_whole_batch(tmp_path):
    """`tomoseg train --processes 2` (torch's elastic launcher, as torchrun, gloo on CPU) writes the checkpoints
    and record one process writes with the same batch."""
    import json

    data = tmp_path / "data"
    lines = ["tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit"]
    for seed in (41, 42):
        write_phantom(data / f"phantom-{seed}", seed, (8, 64, 64), 13.48, 0.5)
        lines.append(f"phantom-{seed}\tphantom\t\t{seed}\t\t\t\tphantom\ttrain")
    sheet = tmp_path / "runs.tsv"
    sheet.write_text("\n".join(lines) + "\n")
    for name, extra in (("one", ("--stage", "1")), ("two", ("--stage", "1", "--processes", "2"))):
        proc = _train_cli(sheet, data, tmp_path / name, *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads((tmp_path / n / "training.json").read_text()) for n in ("one", "two")]
    for stage in ("stage1",):  # Stage 2 trains with the same trainer
        one, two = (r["stages"][stage] for r in records)
        assert one["steps"] == two["steps"] == 8  # 2 rows x 8 repeats, 2 samples a step
        assert two["final_loss"]["total"] == pytest.approx(one["final_loss"]["total"], rel=1e-5)
        a, b = (torch.load(tmp_path / n / f"etsam_{stage}.pt", weights_only=False) for n in ("one", "two"))
        weights_a, weights_b = (x.get("model", x) for x in (a, b))
        for key, value in weights_a.items():
            torch.testing.assert_close(weights_b[key], value, rtol=1e-5, atol=1e-6)


def test_train_processes_refuses_a_batch_it_cannot_split(tmp_path):
    """--processes W with a batch that is not a multiple of W: one line, rc 2, before anything starts."""
    proc = _train_cli(
        tmp_path / "missing.tsv", tmp_path, tmp_path / "out", "--processes", "2", "--batch-size", "3"
    )
    assert proc.returncode == 2 and "not a multiple of the 2 training processes" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
