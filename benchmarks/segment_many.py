"""`tomoseg segment` over 8 small tomograms: 8 calls (one process each, as before) vs one call with all 8
(models built and checkpoints read once). Tiny untrained Hiera at 128 px, CPU, one torch thread per call.

Reports wall seconds and CPU seconds (user + system of the child processes: less sensitive than wall time
to other work on the machine) and writes benchmarks/results/segment_many.{json,md}.

    PYTHONPATH=src .venv/bin/python benchmarks/segment_many.py
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tomoseg.core.io import write_volume
from tomoseg.etsam.model import make_test_checkpoints

COUNT, SHAPE = 8, (16, 96, 96)


def children_cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(commands: list[list[str]]) -> dict[str, float]:
    """Run the commands one after the other; wall and child CPU seconds of all of them."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    for cmd in commands:
        subprocess.run(cmd, check=True, capture_output=True)
    return {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(children_cpu() - cpu0, 2)}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="segment-many-"))
    s1, s2 = make_test_checkpoints(work / "ckpt", 128)[:2]
    tomos = []
    for i in range(COUNT):
        v = np.random.default_rng(i).normal(size=SHAPE).astype(np.float32)
        tomos.append(work / "tomos" / f"t{i}.mrc")
        tomos[-1].parent.mkdir(exist_ok=True)
        write_volume(tomos[-1], v, (10.0, 10.0, 10.0))
    base = [sys.executable, "-m", "tomoseg", "segment", "--stage1-checkpoint", str(s1)]
    base += ["--stage2-checkpoint", str(s2), "--no-progress", "--threads", "1"]
    separate = timed([base[:4] + [str(t), "--out", str(work / "sep" / t.stem)] + base[4:] for t in tomos])
    together = timed([base[:4] + [str(t) for t in tomos] + ["--out", str(work / "one")] + base[4:]])
    single = timed([base[:4] + [str(tomos[0]), "--out", str(work / "single")] + base[4:]])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    result = {
        "what": f"tomoseg segment, {COUNT} tomograms of {SHAPE}, tiny untrained model at 128 px, CPU, 1 thread",
        "eight_calls": separate,
        "one_call_eight_tomograms": together,
        "one_call_one_tomogram": single,
        "per_call_fixed_cpu_s": round((separate["cpu_s"] - together["cpu_s"]) / (COUNT - 1), 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "commit": commit.strip(),
    }
    out = Path(__file__).parent / "results"
    (out / "segment_many.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# `tomoseg segment`: 8 calls vs one call with 8 tomograms",
        "",
        f"{result['what']}; machine {result['machine']}; commit {result['commit']}.",
        "",
        "| run | wall s | CPU s |",
        "|---|---|---|",
        f"| 8 calls, one tomogram each | {separate['wall_s']} | {separate['cpu_s']} |",
        f"| 1 call, 8 tomograms | {together['wall_s']} | {together['cpu_s']} |",
        f"| 1 call, 1 tomogram | {single['wall_s']} | {single['cpu_s']} |",
        "",
        f"Fixed CPU cost per call that one call for many saves: {result['per_call_fixed_cpu_s']} s.",
    ]
    (out / "segment_many.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
