"""Benchmark: peak memory and time of the plane-wise and theta-wise metrics on a large volume.

Writes a synthetic ground truth of membrane-like vesicles (spherical shells, 3 voxels thick, radii 8-60
voxels) filling about `--fraction` of a volume of `--shape` (default the paper's ~500 x 928 x 960), and a
prediction that misses the shells' caps facing the beam (θ < 25°, as the missing wedge does) and a few
random voxels; then measures, each in its own fresh process:

* `plane_wise` (one streamed pass, per-slice counts of the three planes);
* `theta_wise` (normals of the truth and of the prediction by local PCA over the k = 30 nearest voxels,
  Z-slabs with a halo).

Memory is sampled every 50 ms from /proc/self/smaps_rollup: `Anonymous` (the process's own memory: numpy
arrays, KD-trees) and `Rss` (also the pages of the memory-mapped input files that happen to be
resident; the kernel can drop those at any time); time as wall-clock and as the process's CPU time (the
machine may be shared). Result: benchmarks/results/planes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tomoseg.core.io import create_volume


def _rollup() -> dict[str, int]:
    """Rss and Anonymous of this process in bytes (Linux)."""
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Anonymous"):
            out[key] = int(rest.split()[0]) * 1024
    return out


class PeakMemory:
    """Sample Rss and Anonymous every 50 ms; keep the peaks."""

    def __init__(self) -> None:
        self.peak = {"Rss": 0, "Anonymous": 0}
        self._stop = threading.Event()

    def _sample(self) -> None:
        for k, v in _rollup().items():
            self.peak[k] = max(self.peak[k], v)

    def __enter__(self) -> PeakMemory:
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def make_volumes(folder: Path, shape: tuple[int, int, int], fraction: float, seed: int = 0) -> dict:
    """Truth: random shells until `fraction` of the voxels; prediction: the same without their caps (θ < 25°)."""
    rng = np.random.default_rng(seed)
    truth_path, pred_path = folder / "truth.mrc", folder / "pred.mrc"
    target = fraction * np.prod(shape)
    count = shells = 0
    with (
        create_volume(truth_path, shape, np.uint8, (10.0,) * 3) as truth,
        create_volume(pred_path, shape, np.uint8, (10.0,) * 3) as pred,
    ):
        while count < target:
            r = rng.uniform(8, 60)
            c = [rng.uniform(0, s) for s in shape]
            lo = [max(0, int(ci - r - 3)) for ci in c]
            hi = [min(s, int(ci + r + 3)) for ci, s in zip(c, shape, strict=True)]
            if any(h - low < 2 for low, h in zip(lo, hi, strict=True)):
                continue
            z, y, x = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            dz, dy, dx = z - c[0], y - c[1], x - c[2]
            d = np.sqrt(dz**2 + dy**2 + dx**2)
            shell = (d >= r) & (d < r + 3)
            cap = np.abs(dz) > np.cos(np.radians(25)) * d
            box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            before = int(np.count_nonzero(truth[box]))
            truth[box] |= shell.astype(np.uint8)
            pred[box] |= (shell & ~cap & (rng.random(shell.shape) > 0.02)).astype(np.uint8)
            count += int(np.count_nonzero(truth[box])) - before
            shells += 1
    return {"truth": str(truth_path), "pred": str(pred_path), "shells": shells, "truth_voxels": int(count)}


CHILD = """
import json, sys, time
sys.path.insert(0, {bench!r})
from bench_planes import PeakMemory
from tomoseg.evaluation.orientation import theta_wise
from tomoseg.evaluation.planewise import plane_wise
pred, truth, what = sys.argv[1:4]
with PeakMemory() as mem:
    t0, c0 = time.perf_counter(), time.process_time()
    result = plane_wise(pred, truth) if what == "plane_wise" else theta_wise(pred, truth)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({{"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mb": mem.peak["Rss"] / 2**20,
                  "peak_anonymous_mb": mem.peak["Anonymous"] / 2**20, "result": result}}))
"""


def measure(what: str, volumes: dict) -> dict:
    """Run one metric in a fresh process and return its time, peak memory and result."""
    code = CHILD.format(bench=str(Path(__file__).parent))
    proc = subprocess.run(
        [sys.executable, "-c", code, volumes["pred"], volumes["truth"], what],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", type=int, nargs=3, default=[500, 928, 960])
    parser.add_argument("--fraction", type=float, default=0.02, help="membrane fraction of the truth")
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "planes.json")
    args = parser.parse_args()
    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory(dir=args.scratch, prefix="bench_planes_") as tmp:
        t0 = time.perf_counter()
        volumes = make_volumes(Path(tmp), shape, args.fraction)
        made = time.perf_counter() - t0
        print(f"made {shape} with {volumes['truth_voxels']} membrane voxels in {made:.0f} s", flush=True)
        runs = {}
        for what in ("plane_wise", "theta_wise"):
            runs[what] = measure(what, volumes)
            print(what, {k: v for k, v in runs[what].items() if k != "result"}, flush=True)
    record = {
        "shape": list(shape),
        "voxels": int(np.prod(shape)),
        "volume_uint8_mb": float(np.prod(shape)) / 2**20,
        "truth_voxels": volumes["truth_voxels"],
        "shells": volumes["shells"],
        "runs": runs,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or "unknown",
            "cpus": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
