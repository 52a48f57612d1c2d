"""The nightly queue and budget: pending runs, the order nights take them, their GPU cost and backlog.

Pure bookkeeping on the nightly state (`<state_dir>/state.json`, see docs/nightly.md): which runs are
pending, processed or given up, how many runs fit a night's budget (`nightly.cap` runs, `nightly.gpu_hours`
at the measured GPU time per run), how a failed run waits before its next try, and how long the backlog
takes at the current rate. `night_cfg` is the `nightly:` section with the schema's defaults filled in
(`tomoseg.batch.settings.night_settings`).
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.core.io import InputError, read_json
from tomoseg.core.layout import run_targets
from tomoseg.core.methods import METHOD_NAMES, method

COST_SAMPLES = 200
"""Measured runs kept in the state for the GPU-time estimate (the most recent)."""

RATE_NIGHTS = 7
"""Nights averaged for the backlog's rate (the most recent ones that ran a batch)."""


@dataclass(frozen=True)
class RunCost:
    """The GPU time one run is expected to take: hours, and where the number comes from."""

    hours: float
    source: str  # "measured" (median of recent runs) or "assumed" (nightly.gpu_hours_per_run)
    samples: int


def run_key(dataset_id: int, name: str) -> str:
    """Identity of a run across nights: dataset id and run name (portal numeric ids may change)."""
    return f"{dataset_id}/{name}"


def tomo_key(run: dict[str, Any]) -> str:
    """The runs-sheet key of a nightly run."""
    return f"cdp-{run['dataset_id']}-{run['run_id']}"


def per_run_targets(tomo: str, truth: bool, methods: list[str], metrics: bool) -> list[str]:
    """Files that make a run 'fully processed': normalized tomogram, truth, each method's mask (+ metrics)."""
    for name in methods:
        if name not in METHOD_NAMES:
            raise InputError(f"nightly: unknown method {name!r} (known: {sorted(METHOD_NAMES)})")
    return run_targets(tomo, truth, methods, metrics)


def load_state(path: Path) -> dict[str, Any]:
    """The nightly state (empty on the first night)."""
    if not path.exists():
        return {"since": None, "processed": {}, "pending": {}, "failed": {}, "nights": []}
    return read_json(path)


def parse_date(value: str) -> _dt.datetime:
    """An ISO date or date-time (UTC when no zone is given)."""
    try:
        parsed = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"nightly: {value!r} is not an ISO date (e.g. 2025-01-01)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)


def utc_now() -> _dt.datetime:
    """The current UTC time to the second, as recorded in the state and night ids."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def queue_runs(state: dict[str, Any], listed: list[dict[str, Any]], seen: str) -> int:
    """Add listed runs that are neither processed nor given up to the pending queue; returns how many are new."""
    new = 0
    for run in listed:
        key = run_key(run["dataset_id"], run["name"])
        if key in state["processed"] or key in state["failed"]:
            continue
        if key not in state["pending"]:
            new += 1
            state["pending"][key] = {**run, "attempts": 0, "first_seen": seen}
        else:
            state["pending"][key].update(run)
    return new


def night_methods(config: dict[str, Any], night_cfg: dict[str, Any]) -> list[str]:
    """The methods a nightly run needs: `nightly.methods`, else the config's `methods`."""
    methods = night_cfg.get("methods")
    return list(config.get("methods") or []) if methods is None else list(methods)


def queue_order(pending: dict[str, dict[str, Any]], now: _dt.datetime) -> list[tuple[str, dict[str, Any]]]:
    """Pending runs in the order nights take them: new runs by dataset and run id, then failed runs whose
    retry time has come, longest waiting first (a failing run never holds up new work)."""
    fresh = [(k, r) for k, r in pending.items() if not r.get("attempts")]
    fresh.sort(key=lambda kv: (kv[1]["dataset_id"], kv[1]["run_id"]))
    due = [
        (k, r)
        for k, r in pending.items()
        if r.get("attempts") and parse_date(r.get("retry_after") or "1970-01-01") <= now
    ]
    due.sort(key=lambda kv: (kv[1].get("retry_after") or "", kv[1]["dataset_id"], kv[1]["run_id"]))
    return fresh + due


def gpu_rules(methods: list[str]) -> list[str]:
    """The GPU rules whose jobs make the methods' files (from the registry), each once."""
    return list(dict.fromkeys(rule for name in methods for rule in method(name).gpu_rules))


def run_cost(state: dict[str, Any], night_cfg: dict[str, Any], methods: list[str]) -> RunCost:
    """GPU hours of one run: the median measured over recent runs, else `nightly.gpu_hours_per_run`.

    Zero when the methods need no GPU rule (e.g. `methods: []`): the GPU budget then limits nothing.
    """
    if not gpu_rules(methods):
        return RunCost(0.0, "no GPU rules", 0)
    rules = sorted(gpu_rules(methods))
    samples = [c["hours"] for c in state.get("costs", []) if sorted(c.get("rules", [])) == rules]
    if samples:
        return RunCost(float(np.median(samples)), "measured", len(samples))
    return RunCost(float(night_cfg["gpu_hours_per_run"]), "assumed", 0)


def batch_size(night_cfg: dict[str, Any], waiting: int, cost: RunCost) -> int:
    """How many runs fit tonight: `cap` runs, and `gpu_hours` at `cost` per run (at least one run)."""
    size = waiting
    cap = night_cfg["cap"]
    if cap is not None:
        size = min(size, int(cap))
    budget = night_cfg["gpu_hours"]
    if budget is not None and cost.hours > 0:
        size = min(size, max(1, math.floor(float(budget) / cost.hours)))
    return size


def gpu_hours(workdir: Path, tomo: str, rules: list[str]) -> float | None:
    """GPU time of one run: the wall time of its GPU rules' jobs (Snakemake benchmark records), in hours.

    None when a rule has no record (e.g. its outputs were made elsewhere): such runs are not measured.
    """
    if not rules:
        return None
    total = 0.0
    for rule in rules:
        record = workdir / "results" / "benchmarks" / rule / f"{tomo}.tsv"
        try:
            with open(record) as handle:
                rows = list(csv.DictReader(handle, delimiter="\t"))
            total += float(rows[-1]["s"])
        except (OSError, KeyError, IndexError, ValueError):
            return None
    return total / 3600


def count_attempt(
    state: dict[str, Any], key: str, reason: str, night_cfg: dict[str, Any], now: _dt.datetime
) -> dict[str, Any]:
    """Record a failed attempt of a pending run: it waits `retry_after_nights` x 2^(attempts-1) nights, or is
    given up after `max_attempts`; returns its entry."""
    entry = state["pending"][key]
    entry["attempts"] = entry.get("attempts", 0) + 1
    entry["last_error"] = reason
    wait = float(night_cfg["retry_after_nights"]) * 2 ** (entry["attempts"] - 1)
    entry["retry_after"] = (now + _dt.timedelta(days=wait)).isoformat()
    if entry["attempts"] >= int(night_cfg["max_attempts"]):
        state["failed"][key] = state["pending"].pop(key)
        entry.pop("retry_after")
    return entry


def backlog_estimate(state: dict[str, Any], now: _dt.datetime, cost: RunCost) -> dict[str, Any]:
    """What is still pending and how long it takes at the current rate (runs processed a night, recently)."""
    pending = state["pending"]
    retrying = sum(1 for r in pending.values() if r.get("attempts"))
    recent = [n for n in state["nights"] if n.get("batch")][-RATE_NIGHTS:]
    rate = sum(n.get("processed", 0) for n in recent) / len(recent) if recent else 0.0
    nights = math.ceil(len(pending) / rate) if rate > 0 else None
    return {
        "pending": len(pending),
        "new": len(pending) - retrying,
        "retrying": retrying,
        "rate": round(rate, 2),
        "rate_nights": len(recent),
        "nights": nights,
        "gpu_hours_per_run": round(cost.hours, 4),
        "cost_source": cost.source,
        "gpu_hours": round(len(pending) * cost.hours, 2),
    }
