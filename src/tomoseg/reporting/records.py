"""The metrics records of a run, read once for the summary tables and the ablation tables: per-method frames,
untrained and trained-on flags, and the failures (a missing record says why)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tomoseg.core.io import read_json
from tomoseg.core.runlog import last_error_line
from tomoseg.evaluation.stats import METRICS

FAILURE_COLUMNS = ["tomo", "method", "status", "reason"]


def load_records(
    expected: Sequence[tuple[str, str]],
    results: Path,
    method_inputs: dict[str, list[str]],
) -> tuple[dict[str, pd.DataFrame], dict[str, Any], pd.DataFrame]:
    """Per-method frames of the metrics that exist, untrained flags, and a failures table for the rest."""
    rows: dict[str, list[dict[str, Any]]] = {}
    untrained: dict[str, set[bool | None]] = {}
    trained_on: dict[str, str] = {}
    failures = []
    for method, tomo in expected:
        path = results / "metrics" / method / f"{tomo}.json"
        if not path.exists():
            reason = _missing_reason(results, method, tomo, method_inputs.get(method, []))
            failures.append({"tomo": tomo, "method": method, "status": "missing", "reason": reason})
            continue
        rec = read_json(path)
        if rec.get("status") not in (None, "ok"):
            failures.append(
                {"tomo": tomo, "method": method, "status": rec["status"], "reason": rec.get("reason", "")}
            )
            continue
        for metric, why in (rec.get("undefined") or {}).items():
            failures.append({"tomo": tomo, "method": method, "status": f"{metric} undefined", "reason": why})
        untrained.setdefault(method, set()).add(rec.get("untrained"))
        if rec.get("trained_on"):
            trained_on.setdefault(method, str(rec["trained_on"]))
        rows.setdefault(method, []).append(_record_row(tomo, rec, path))
    frames = {m: pd.DataFrame(r).set_index("tomo", drop=False) for m, r in rows.items()}
    flags = {m: (True in v) for m, v in untrained.items()}
    unknown = {m for m, v in untrained.items() if None in v}
    flags_out = {"untrained": flags, "unknown": unknown, "trained_on": trained_on}
    return frames, flags_out, pd.DataFrame(failures, columns=FAILURE_COLUMNS)


def _missing_reason(results: Path, method: str, tomo: str, inputs: list[str]) -> str:
    """Why a metrics record is absent: the method's output is missing, else the evaluation job's error."""
    missing = [p.format(tomo=tomo) for p in inputs]
    missing = [p for p in missing if not (results.parent / p).exists()]
    if missing:
        return "method output missing (the method failed or was not run): " + ", ".join(missing)
    err = last_error_line(results / "logs" / "evaluate" / method / f"{tomo}.log", fallback=True)
    return f"evaluation failed: {err}" if err else "metrics not computed (no record, no log)"


def _record_row(tomo: str, rec: dict[str, Any], path: Path) -> dict[str, Any]:
    """One tomogram's row of a method frame: the metrics, the best threshold and where the record lives."""
    best = rec.get("best_threshold") or {}
    return {
        "tomo": tomo,
        **{m: rec.get(m, math.nan) for m in (*METRICS, "auprc")},
        "best_threshold": best.get("threshold", math.nan),
        "best_threshold_dice": best.get("dice", math.nan),
        "untrained": rec.get("untrained"),
        "_json": str(path),
    }


def mean_sd(values: pd.Series) -> tuple[float, float]:
    """Mean and sd (ddof=1) of the non-NaN values, NaN where there are too few, as every table reports them."""
    v = values.dropna()
    return (float(v.mean()) if len(v) else math.nan, float(v.std(ddof=1)) if len(v) > 1 else math.nan)
