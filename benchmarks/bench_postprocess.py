"""Benchmark: tomoseg.evaluation.postprocess.filter_components vs the straightforward label + find_objects version.

Run once on a realistic sparse membrane-like mask (default 500 x 1000 x 1000 uint8), checks that both
give the same mask, and writes the timings and the machine to benchmarks/results/postprocess.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import psutil
import scipy

from tomoseg.evaluation.postprocess import filter_components
from tomoseg.testing.synthetic import filter_components_reference, membrane_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", type=int, nargs=3, default=[500, 1000, 1000])
    parser.add_argument("--min-slices", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "postprocess.json")
    args = parser.parse_args()
    shape = tuple(args.shape)
    t0 = time.perf_counter()
    mask = membrane_mask(shape, seed=0, n_shells=30, n_specks=20000)
    gen_s = time.perf_counter() - t0
    print(f"mask {shape}: {mask.mean() * 100:.3f}% foreground, generated in {gen_s:.1f} s")

    t0 = time.perf_counter()
    ref = filter_components_reference(mask, args.min_slices)
    ref_s = time.perf_counter() - t0
    print(f"reference (label int32 + find_objects loop + isin): {ref_s:.2f} s")
    t0 = time.perf_counter()
    ours = filter_components(mask, args.min_slices)
    ours_s = time.perf_counter() - t0
    print(f"tomoseg.evaluation.postprocess.filter_components: {ours_s:.2f} s")
    identical = bool(np.array_equal(ref, ours))
    print(f"identical outputs: {identical}")
    record = {
        "benchmark": "postprocess",
        "shape": list(shape),
        "dtype": "uint8",
        "foreground_fraction": float(mask.mean()),
        "foreground_kept_fraction": float(ours.mean()),
        "min_slices": args.min_slices,
        "reference_seconds": round(ref_s, 3),
        "tomoseg_seconds": round(ours_s, 3),
        "speedup": round(ref_s / ours_s, 3),
        "identical_outputs": identical,
        "runs": 1,
        "machine": {
            "node": platform.node(),
            "cpu": platform.processor() or platform.machine(),
            "logical_cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "note": "single run, shared machine (other jobs running); timings are wall-clock",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
