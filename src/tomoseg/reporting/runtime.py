"""Runtime and memory of each method on each tomogram, from the workflow's own benchmark records.

A method's cost is the sum over its rules (`evaluate.benchmark_rules`) of the wall time in Snakemake's
benchmark record (`results/benchmarks/{rule}/{tomo}.tsv`), with the maximum CPU RSS and the peak GPU
memory its GPU rules recorded beside it (`{tomo}.gpu.json`). Read by the summary's Supplementary Table 3
and by every tomogram page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tomoseg.core.io import read_json

RUNTIME_COLUMNS = ["method", "tomo", "runtime_s", "cpu_mem_mb", "gpu_mem_mb", "device", "rules"]


def runtime_records(
    methods: Sequence[str], tomos: Sequence[str], results: Path, benchmark_rules: dict[str, list[str]]
) -> pd.DataFrame:
    """Per method and tomogram: summed runtime, max CPU RSS and max GPU memory over the method's rules."""
    rows = []
    for method in methods:
        rules = benchmark_rules.get(method, [])
        for tomo in tomos:
            row = _runtime_row(method, tomo, rules, results) if rules else None
            if row is not None:
                rows.append(row)
    return pd.DataFrame(rows, columns=RUNTIME_COLUMNS)


def _runtime_row(method: str, tomo: str, rules: list[str], results: Path) -> dict[str, Any] | None:
    """A method's runtime and memory on one tomogram, None unless every one of its rules has a record."""
    seconds, rss, gpu, devices = 0.0, math.nan, math.nan, set()
    for rule in rules:
        tsv = results / "benchmarks" / rule / f"{tomo}.tsv"
        if not tsv.exists():
            return None
        bench = pd.read_csv(tsv, sep="\t")
        seconds += float(bench["s"].iloc[-1])
        rss = np.nanmax([rss, float(bench["max_rss"].iloc[-1])]) if "max_rss" in bench else rss
        gpu_json = tsv.with_suffix(".gpu.json")
        if gpu_json.exists():
            g = read_json(gpu_json)
            devices.add(str(g.get("gpu_name") or g.get("device")))
            if g.get("peak_gpu_memory_mb") is not None:
                gpu = np.nanmax([gpu, float(g["peak_gpu_memory_mb"])])
    return {
        "method": method,
        "tomo": tomo,
        "runtime_s": seconds,
        "cpu_mem_mb": rss,
        "gpu_mem_mb": gpu,
        "device": ";".join(sorted(devices)) or "unknown",
        "rules": "+".join(rules),
    }
