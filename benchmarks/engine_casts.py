"""Dtype casts per slice of the ETSAM engine under bf16 autocast: `inference_mode` (the engine before) vs
`no_grad` (now), counted by the torch profiler, with the logits compared bit for bit.

Counts, not seconds: they do not depend on what else the machine is doing. Tiny Hiera at 128 px on the CPU
(CPU autocast follows the same weight-cast-cache rule as CUDA autocast). Writes benchmarks/results/engine_casts.json.

    PYTHONPATH=src .venv/bin/python benchmarks/engine_casts.py
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from tomoseg.etsam.engine import propagate
from tomoseg.etsam.model import random_model, tiny_spec
from tomoseg.etsam.prompts import build_prompts

SLICES = 24


def to_copy_count(fn) -> tuple[int, np.ndarray]:
    """aten::_to_copy calls of fn() (casts and device copies) and fn's result."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = fn()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy"), out


def main() -> None:
    torch.set_num_threads(2)
    net = random_model(tiny_spec(128), seed=0)
    vol = np.random.default_rng(0).random((SLICES, 100, 150), dtype=np.float32)
    prompts = build_prompts("grid_first", vol.shape, 128, grid_spacing=10)

    def run() -> np.ndarray:
        return propagate(net, vol, prompts, dtype="bfloat16", progress=False)[0]

    def run_inference_mode() -> np.ndarray:
        with torch.inference_mode():
            return run()

    run()  # warm-up
    before, ref = to_copy_count(run_inference_mode)
    after, ours = to_copy_count(run)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    result = {
        "what": "aten::_to_copy per slice, ETSAM engine, tiny Hiera 128 px, bf16 autocast, CPU",
        "slices": SLICES,
        "inference_mode_per_slice": round(before / SLICES, 1),
        "no_grad_per_slice": round(after / SLICES, 1),
        "logits_bit_identical": bool(np.array_equal(ref, ours)),
        "torch": torch.__version__,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "python": sys.version.split()[0],
        "commit": commit.strip(),
    }
    out = Path(__file__).parent / "results" / "engine_casts.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
