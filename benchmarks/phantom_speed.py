"""Time make_phantom (and write_phantom) for the CI and demo sizes; prints a Markdown table.

Run: OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/phantom_speed.py
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from tomoseg.acquisition.phantoms import make_phantom, write_phantom

SIZES = [(32, 128, 128), (64, 256, 256)]
REPEATS = 3


def main() -> None:
    """Median wall time of REPEATS runs per size, seeds 1..REPEATS."""
    print(  # noqa: T201
        f"machine: {platform.machine()}, {psutil.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, python {platform.python_version()}"
    )
    print("| shape (Z Y X) | make_phantom median s | write_phantom median s | peak RSS so far MiB |")  # noqa: T201
    print("|---|---|---|---|")  # noqa: T201
    for shape in SIZES:
        make_times, write_times = [], []
        for seed in range(1, REPEATS + 1):
            t0 = time.perf_counter()
            make_phantom(seed, shape, 13.48, 0.5)
            make_times.append(time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                write_phantom(Path(tmp), seed, shape, 13.48, 0.5)
                write_times.append(time.perf_counter() - t0)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(
            f"| {' '.join(map(str, shape))} | {statistics.median(make_times):.2f} | "  # noqa: T201
            f"{statistics.median(write_times):.2f} | {rss:.0f} |"
        )


if __name__ == "__main__":
    main()
