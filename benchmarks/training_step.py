"""Seconds per optimizer step and peak GPU memory of training (`tomoseg.training`), paper setting by default:
SAM2.1 Hiera-B+ at 1024 px, 22-slice samples, bf16 autocast on CUDA, batch 1, random weights (the step's
cost does not depend on them). A phantom of 256 x 256 px slices is the sample.

    PYTHONPATH=src .venv/bin/python benchmarks/training_step.py --device cuda            # the paper's step
    PYTHONPATH=src .venv/bin/python benchmarks/training_step.py --preset demo --device cpu

Prints one JSON line (and appends it to benchmarks/results/training_step.jsonl with --record).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from tomoseg.acquisition.phantoms import write_phantom
from tomoseg.training.data import Item, SliceDataset
from tomoseg.training.loop import StageTrainer
from tomoseg.training.run import training_spec
from tomoseg.training.settings import preset

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="paper")
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    p.add_argument("--record", action="store_true")
    a = p.parse_args()
    from tomoseg.etsam.model import build_model

    settings = preset(a.preset, checkpoint_every=10**6)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "phantom"
        write_phantom(folder, 7, (max(8, settings.frames), 256, 256), 13.48, 0.5)
        data = SliceDataset([Item("p", folder / "tomogram.mrc", folder / "groundtruth.mrc")], settings.frames)
        torch.manual_seed(0)
        model = build_model(training_spec(settings))
        trainer = StageTrainer(
            model, data, settings, 1, Path(tmp) / "state.pt", device=a.device, progress=False
        )
        trainer.train_step()  # warm-up
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            trainer.train_step()
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - t0) / a.steps
        data.close()
    cuda = a.device.startswith("cuda")
    result = {
        "preset": a.preset,
        "model": settings.model_config,
        "image_size": settings.image_size,
        "frames": settings.frames,
        "device": torch.cuda.get_device_name()
        if cuda
        else f"{platform.processor() or platform.machine()} x{os.cpu_count()}",
        "bf16": settings.bf16 and cuda,
        "seconds_per_step": round(seconds, 3),
        "samples_per_second": round(settings.batch_size / seconds, 4),
        "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
        "torch": torch.__version__,
    }
    line = json.dumps(result)
    print(line)
    if a.record:
        with open(HERE / "results" / "training_step.jsonl", "a") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()
