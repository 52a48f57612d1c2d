"""Runtime of the two baselines on a small volume, CPU, tiny random checkpoints (not a test).

Runs Membrain-Seg and TARDIS through tomoseg.baselines (run_membrain, run_tardis) with the demo's cheap
settings and with each tool's defaults, and records wall time (including the tool's start-up) and the
tool's own runtime.

    PYTHONPATH=src python benchmarks/baselines_tiny.py --out benchmarks/results/baselines_tiny.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from tomoseg.baselines.checkpoints import make_baseline_checkpoints
from tomoseg.baselines.membrain import run_membrain
from tomoseg.baselines.tardis import run_tardis
from tomoseg.core.io import write_volume

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=64, help="edge of the cubic test volume")
    parser.add_argument("--venvs", type=Path, default=ROOT / "venvs")
    args = parser.parse_args()
    pythons = {tool: args.venvs / tool / "bin" / "python" for tool in ("membrain", "tardis")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.monotonic()
        ckpts = make_baseline_checkpoints(tmp / "ckpt", pythons["membrain"], pythons["tardis"])
        rows.append(
            {"step": "make-baseline-checkpoints (both)", "wall_s": round(time.monotonic() - start, 2)}
        )
        rng = np.random.default_rng(0)
        volume = rng.normal(size=(args.size,) * 3).astype(np.float32)
        write_volume(tmp / "tomogram.mrc", volume, 13.48)
        cases = [
            (
                "membrain",
                "demo: window 64, no TTA",
                {"sliding_window_size": 64, "test_time_augmentation": False},
            ),
            ("membrain", "tool defaults: window 160, 8-fold TTA", {}),
            ("tardis", "demo: patch 64, no rotations", {"patch_size": 64, "rotate": False}),
            ("tardis", "tool defaults: patch 128, 4 rotations", {}),
        ]
        for i, (tool, label, options) in enumerate(cases):
            run = run_membrain if tool == "membrain" else run_tardis
            start = time.monotonic()
            record = run(
                tmp / "tomogram.mrc", tmp / f"out{i}", ckpts[tool], pythons[tool], settings=label, **options
            )
            rows.append(
                {
                    "step": f"{tool} ({label})",
                    "wall_s": round(time.monotonic() - start, 2),
                    "tool_process_s": record["runtime_s"],
                    "device": record["device"],
                }
            )
            print(rows[-1])
    result = {
        "what": f"baselines on a {args.size}^3 float32 volume, tiny random checkpoints, CPU",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "note": "wall_s includes each tool environment's Python start-up and imports; the machine is shared, so timings vary",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
