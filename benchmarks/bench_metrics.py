"""Benchmark: streamed `tomoseg.evaluation.metrics.evaluate_volumes` on a 500 x 1000 x 1000 volume vs scikit-learn.

Writes pred (uint8), truth (uint8) and float32 ETSAM-like logits (float16-rounded, ~30 % at -1024) to a
scratch folder, evaluates them in one streamed pass (voxels/s, peak Python/numpy heap via tracemalloc and
peak RSS via psutil sampling), then times scikit-learn's average_precision_score on a random subsample
and compares both AUPRCs on that subsample. One run; result in benchmarks/results/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import psutil
import sklearn
from sklearn.metrics import average_precision_score

from tomoseg.core.io import create_volume
from tomoseg.evaluation.metrics import ScoreHistogram, _accumulate, average_precision, evaluate_volumes


class PeakRSS:
    """Sample this process's RSS every 50 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def __enter__(self):
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def make_volumes(folder: Path, shape: tuple[int, int, int], seed: int = 0) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(seed)
    paths = folder / "pred.mrc", folder / "truth.mrc", folder / "logits.mrc"
    with (
        create_volume(paths[0], shape, np.uint8, (10.0,) * 3) as pred,
        create_volume(paths[1], shape, np.uint8, (10.0,) * 3) as truth,
        create_volume(paths[2], shape, np.float32, (10.0,) * 3) as logits,
    ):
        for z in range(shape[0]):
            t = rng.random(shape[1:]) < 0.03
            x = np.where(t, rng.normal(1.5, 2.0, shape[1:]), rng.normal(-2.5, 2.0, shape[1:]))
            x[rng.random(shape[1:]) < 0.3] = -1024
            x = x.astype(np.float16).astype(np.float32)
            truth[z], logits[z], pred[z] = t, x, x > -0.25
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", type=int, nargs=3, default=[500, 1000, 1000])
    parser.add_argument("--subsample", type=int, default=10_000_000)
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "metrics.json")
    args = parser.parse_args()
    shape = tuple(args.shape)
    folder = Path(tempfile.mkdtemp(dir=args.scratch, prefix="bench_metrics_"))
    try:
        t0 = time.perf_counter()
        pred, truth, logits = make_volumes(folder, shape)
        print(f"wrote volumes {shape} in {time.perf_counter() - t0:.1f} s")
        n = int(np.prod(shape))
        tracemalloc.start()
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            result = evaluate_volumes(pred, truth, logits, "etsam-logits")
            ours_s = time.perf_counter() - t0
        heap_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"tomoseg: {ours_s:.1f} s, {n / ours_s / 1e6:.1f} Mvoxel/s, heap peak {heap_peak / 2**20:.0f} MiB, "
            f"RSS peak {rss.peak / 2**20:.0f} MiB, AUPRC {result.record['auprc']:.6f}"
        )

        # scikit-learn on a random subsample (the full volume would need ~10x the scores in float64)
        rng = np.random.default_rng(1)
        from tomoseg.core.io import open_volume

        with open_volume(logits) as (x, _), open_volume(truth) as (t, _):
            idx = np.sort(rng.choice(n, size=min(args.subsample, n), replace=False))
            xs = np.asarray(x.reshape(-1)[idx], dtype=np.float64)
            ts = np.asarray(t.reshape(-1)[idx]) != 0
            floor = -float(np.max([np.max(x[z : z + 8]) for z in range(0, shape[0], 8)]))
        xs = np.maximum(xs, floor)
        probs = 1 / (1 + np.exp(-xs))
        tracemalloc.start()
        t0 = time.perf_counter()
        sk_ap = average_precision_score(ts, probs)
        sk_s = time.perf_counter() - t0
        sk_heap = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        sub = ScoreHistogram()
        _accumulate(sub, xs, ts, floor)
        sub_ap = average_precision(sub)
        print(
            f"sklearn on {len(idx)} voxels: {sk_s:.1f} s, {len(idx) / sk_s / 1e6:.2f} Mvoxel/s, heap peak "
            f"{sk_heap / 2**20:.0f} MiB; AUPRC sklearn {sk_ap:.8f} vs histogram {sub_ap:.8f}"
        )
        record = {
            "benchmark": "metrics",
            "shape": list(shape),
            "voxels": n,
            "tomoseg": {
                "seconds": round(ours_s, 2),
                "voxels_per_second": round(n / ours_s),
                "peak_heap_mib": round(heap_peak / 2**20, 1),
                "peak_rss_mib": round(rss.peak / 2**20, 1),
                "auprc": result.record["auprc"],
                "note": "one streamed pass for the max logit plus one pass for counts and histogram; "
                "RSS includes memory-mapped file pages the kernel may drop",
            },
            "sklearn": {
                "subsample_voxels": len(idx),
                "seconds": round(sk_s, 2),
                "voxels_per_second": round(len(idx) / sk_s),
                "peak_heap_mib": round(sk_heap / 2**20, 1),
                "auprc_subsample": sk_ap,
                "histogram_auprc_subsample": sub_ap,
                "abs_difference": abs(sk_ap - sub_ap),
            },
            "runs": 1,
            "machine": {
                "node": platform.node(),
                "cpu": platform.processor() or platform.machine(),
                "logical_cpus": os.cpu_count(),
                "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                "numpy": np.__version__,
                "sklearn": sklearn.__version__,
            },
            "note": "single run on a shared machine (other jobs running)",
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
