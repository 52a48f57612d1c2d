"""Nightly batch: find new portal runs, segment them with the workflow, record and report (see docs/nightly.md).

One night = `tomoseg nightly --configfile CONFIG`:
  1. take an exclusive lock (flock) on `<state_dir>/nightly.lock`; a second invocation exits 75 and changes nothing;
  2. list runs whose membrane annotations (curated GO ids, SegmentationMask, mrc) or tomograms were released
     or modified since the last completed listing (`nightly.start_date` the first time), paging every query;
  3. add them to the pending queue in `<state_dir>/state.json` (the listing date advances only then);
  4. take tonight's batch within the night's budget (`nightly.cap` runs, `nightly.gpu_hours` at the measured
     GPU time per run): new runs first, then failed runs whose backoff has expired; write the batch's runs
     sheet and a night config (`targets: {scope: runs}`), and run Snakemake on them: the targets come from
     the sheet, never from the command line, so a night has no size limit (`--keep-going
     --rerun-incomplete`: one failed run does not stop the others; a killed night resumes);
  5. move fully processed runs to `processed` (keyed by dataset id / run name), count failures (each waits
     `retry_after_nights`, doubling, before its next try), write the night report with how long the backlog
     will take at the current rate, and call `nightly.on_failure` when anything failed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tomoseg.acquisition.listing import list_new_runs
from tomoseg.batch.lock import acquire_lock, write_holder
from tomoseg.batch.queue import (
    COST_SAMPLES,
    RunCost,
    backlog_estimate,
    batch_size,
    count_attempt,
    gpu_hours,
    gpu_rules,
    load_state,
    night_methods,
    parse_date,
    per_run_targets,
    queue_order,
    queue_runs,
    run_cost,
    tomo_key,
    utc_now,
)
from tomoseg.batch.settings import load_night_config
from tomoseg.core import runsheet
from tomoseg.core.children import start_child, stop_group
from tomoseg.core.errors import TomosegError
from tomoseg.core.io import InputError, atomic_path, write_json
from tomoseg.core.layout import log_path
from tomoseg.core.planning import method_benchmark_rules
from tomoseg.core.runlog import last_error_line
from tomoseg.reporting.night import publish_night, run_page, run_statistics

log = logging.getLogger(__name__)


def run_night(
    config_path: Path,
    repo: Path,
    workdir: Path,
    snakemake: str | None = None,
    lister: Callable[..., list[dict[str, Any]]] = list_new_runs,
) -> int:
    """One night (see the module docstring); returns 0 (all good) or 1 (something failed).

    Raises NightBusy, and changes nothing, when another night holds the lock; raises the TomosegError (a
    setting it cannot use, an unreachable portal) that stopped a night before it changed its state.
    """
    config, night_cfg = load_night_config(config_path)
    state_dir = (workdir / night_cfg["state_dir"]).resolve()
    lock_fd = acquire_lock(state_dir / "nightly.lock")
    report: Path | None = None
    bad_input: TomosegError | None = None
    try:
        status, report = _night(
            config, night_cfg, config_path, repo, workdir, state_dir, lock_fd, snakemake, lister
        )
    except TomosegError as err:  # a setting the night cannot use, an unreachable portal: one line
        bad_input, status = err, f"error: {err}"
    except Exception as err:  # a night that cannot even list or launch is a failed night
        log.exception("nightly run failed")
        status = f"error: {err}"
    finally:
        os.close(lock_fd)
    if status != "ok":
        _on_failure(night_cfg["on_failure"] or "", status, report, workdir)
        if bad_input is not None:
            raise bad_input
        return 1
    return 0


def _on_failure(command: str, status: str, report: Path | None, workdir: Path) -> None:
    """Run the configured failure hook with the night's status and report in its environment."""
    if not command:
        return
    env = dict(os.environ, TOMOSEG_NIGHT_STATUS=status, TOMOSEG_NIGHT_REPORT=str(report or ""))
    result = subprocess.run(command, shell=True, cwd=workdir, env=env, timeout=600)
    if result.returncode:
        log.error("on_failure command exited with %d: %s", result.returncode, command)


@dataclass
class _Batch:
    """The runs one night processes (by key), the methods it runs, the files each run must yield, where it writes."""

    night_id: str
    night_dir: Path
    runs: list[tuple[str, dict[str, Any]]]
    methods: list[str]
    targets: dict[str, list[str]]
    metrics: bool = True
    cost: RunCost = RunCost(0.0, "no GPU rules", 0)
    benchmark_rules: dict[str, list[str]] = dataclasses.field(default_factory=dict)


def _night(
    config: dict[str, Any],
    night_cfg: dict[str, Any],
    config_path: Path,
    repo: Path,
    workdir: Path,
    state_dir: Path,
    lock_fd: int,
    snakemake: str | None,
    lister: Callable[..., list[dict[str, Any]]],
) -> tuple[str, Path | None]:
    """List and queue new runs, then segment a batch of pending ones and record them: (status, report or None)."""
    state_path = state_dir / "state.json"
    state = load_state(state_path)
    since = state.get("since") or night_cfg.get("start_date")
    if not since:
        raise InputError(
            f"{config_path}: nightly.start_date is required for the first night (ISO date, e.g. 2025-01-01)"
        )
    started = utc_now()
    listed, new = _list_and_queue(config, night_cfg, state, str(since), started, lister)
    write_json(state_path, state)
    log.info("listing since %s: %d runs, %d new, %d pending", since, listed, new, len(state["pending"]))
    if not state["pending"]:
        log.info("nothing new; nothing to do")
        return "ok", None
    batch = _take_batch(
        config, night_cfg, state, state_dir / "nights" / started.strftime("%Y%m%dT%H%M%SZ"), started
    )
    if not batch.runs:
        log.info(
            "%d runs pending, none due tonight (failed runs wait for their retry time)", len(state["pending"])
        )
        return "ok", None
    night = {
        "night": batch.night_id,
        "since": str(since),
        "listed": listed,
        "new": new,
        "batch": len(batch.runs),
    }
    sheet = write_runs_sheet(batch.night_dir / "runs.tsv", batch.runs)
    night_config = write_night_config(batch.night_dir / "config.yaml", sheet, batch)
    try:
        code = _run_snakemake(night_cfg, config_path, night_config, repo, workdir, batch, lock_fd, snakemake)
    except RuntimeError as err:  # outside any job: the runs stay pending, the night is recorded as failed
        state["nights"].append(
            {
                **night,
                "processed": 0,
                "failed": 0,
                "status": f"error: {err}",
                "finished": utc_now().isoformat(),
            }
        )
        write_json(state_path, state)
        raise
    return _close_night(state, state_path, night, batch, workdir, code, night_cfg, started)


def _close_night(
    state: dict[str, Any],
    state_path: Path,
    night: dict[str, Any],
    batch: _Batch,
    workdir: Path,
    code: int,
    night_cfg: dict[str, Any],
    started: _dt.datetime,
) -> tuple[str, Path]:
    """Record the batch's results and the night in the state, and publish the night's report."""
    rows = _record_results(state, batch, workdir, code, night_cfg, started)
    failed = sum(row["status"] == "failed" for row in rows)
    status = "ok" if failed == 0 else f"{failed} of {len(rows)} runs failed"
    night.update(processed=len(rows) - failed, failed=failed, status=status, finished=utc_now().isoformat())
    state["nights"].append(night)
    night["backlog"] = backlog = backlog_estimate(state, started, batch.cost)
    report = publish_night(
        batch.night_dir,
        batch.night_id,
        status,
        night["since"],
        rows,
        len(state["pending"]),
        batch.methods,
        backlog,
    )
    write_json(state_path, state)
    log.info("night %s: %s; report %s", batch.night_id, status, report)
    return status, report


def _list_and_queue(
    config: dict[str, Any],
    night_cfg: dict[str, Any],
    state: dict[str, Any],
    since: str,
    started: _dt.datetime,
    lister: Callable[..., list[dict[str, Any]]],
) -> tuple[int, int]:
    """List the portal's runs new since `since` into the pending queue; (runs listed, runs new to the queue)."""
    from tomoseg.acquisition.portal import load_membrane_terms, portal_client
    from tomoseg.core.fetch import DownloadOptions

    download = config.get("download") or {}
    client = portal_client(download.get("portal_url"), DownloadOptions.from_config(download).query_timeout_s)
    # Look back a little further than the last listing: portal dates are often whole days and can be
    # set before an entry becomes visible. Processed and pending runs are not listed twice.
    lookback = _dt.timedelta(days=float(night_cfg["lookback_days"]))
    query_since = (parse_date(since) - lookback).isoformat()
    listed = lister(client, query_since, sorted(load_membrane_terms()), int(night_cfg["page_size"]))
    new = queue_runs(state, listed, started.isoformat())
    state["since"] = started.isoformat()
    return len(listed), new


def _take_batch(
    config: dict[str, Any],
    night_cfg: dict[str, Any],
    state: dict[str, Any],
    night_dir: Path,
    now: _dt.datetime,
) -> _Batch:
    """Tonight's batch: pending runs in queue order (new first, then due retries), as many as the budget allows."""
    methods = night_methods(config, night_cfg)
    cost = run_cost(state, night_cfg, methods)
    order = queue_order(state["pending"], now)
    runs = order[: batch_size(night_cfg, len(order), cost)]
    metrics = bool(night_cfg["metrics"])
    targets = {
        key: per_run_targets(tomo_key(run), run["has_membrane"], methods, metrics) for key, run in runs
    }
    log.info(
        "batch: %d of %d pending runs (%d due); %.2f GPU-hours per run (%s)",
        len(runs),
        len(state["pending"]),
        len(order),
        cost.hours,
        cost.source,
    )
    benchmark_rules = method_benchmark_rules((config.get("evaluate") or {}).get("benchmark_rules"))
    return _Batch(night_dir.name, night_dir, runs, methods, targets, metrics, cost, benchmark_rules)


def sheet_row(run: dict[str, Any]) -> dict[str, Any]:
    """The runs-sheet row of a portal run: a cdp row of the test split, with portal truth when it has a mask."""
    return {
        "tomo": tomo_key(run),
        "source": "cdp",
        "dataset_id": run["dataset_id"],
        "run_id": run["run_id"],
        "split": "test",
        "truth": "cdp" if run["has_membrane"] else "none",
    }


def write_runs_sheet(sheet: Path, runs: list[tuple[str, dict[str, Any]]]) -> Path:
    """The runs sheet of a batch (one test-split row per portal run), the workflow's input for the night."""
    return runsheet.write_runs_sheet(sheet, (sheet_row(run) for _, run in runs))


SNAKEMAKE_GRACE_S = 60.0
"""How long an interrupted night lets Snakemake end its jobs before killing its process group."""


def write_night_config(path: Path, sheet: Path, batch: _Batch) -> Path:
    """The config laid over the user's for one night: its runs sheet, its methods, and only per-run targets.

    Snakemake's `rule all` then asks for exactly `per_run_targets` of every row of the sheet, so the
    command line stays the same size however many runs the night has.
    """
    night = {
        "runs": str(sheet.resolve()),
        "splits": ["test"],
        "methods": batch.methods,
        "targets": {"scope": "runs", "metrics": batch.metrics},
    }
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(night, sort_keys=False))
    return path


def _run_snakemake(
    night_cfg: dict[str, Any],
    config_path: Path,
    night_config: Path,
    repo: Path,
    workdir: Path,
    batch: _Batch,
    lock_fd: int,
    snakemake: str | None,
) -> int:
    """Run the workflow on the night's config and return its exit code; raise when it failed outside any job."""
    snakemake = snakemake or shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    base = [
        snakemake,
        "--snakefile",
        str(repo / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config_path.resolve()),
        str(night_config.resolve()),
    ]
    if any((workdir / ".snakemake" / "locks").glob("*")):
        # A killed night left Snakemake's directory lock; our flock guarantees no other night runs here.
        subprocess.run([*base, "--unlock"], cwd=workdir, check=False, pass_fds=(lock_fd,))
    cmd = [
        *base,
        "--keep-going",
        "--rerun-incomplete",
        "--cores",
        str(night_cfg["cores"]),
        *[str(a) for a in night_cfg["snakemake_args"] or []],
    ]
    log.info("running: %s", " ".join(cmd))
    snake_log = batch.night_dir / "snakemake.log"
    with open(snake_log, "w") as out:
        # Its own process group, stopped (SIGTERM: it ends its jobs) when this night dies, even by kill -9;
        # it holds the lock too, and the lock file names its group for a later night's clean-up.
        proc = start_child(
            cmd, signal.SIGTERM, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, pass_fds=(lock_fd,)
        )
        holder = os.pread(lock_fd, 200, 0).decode(errors="replace").strip()
        write_holder(lock_fd, f"{holder.splitlines()[0] if holder else ''}; snakemake pgid {proc.pid}")
        try:
            code = proc.wait()
        except BaseException:
            stop_group(proc, grace_s=SNAKEMAKE_GRACE_S)
            raise
    log.info("snakemake exited with %d", code)
    if code != 0 and not _log_has(snake_log, "Error in rule"):
        # Snakemake stopped before or outside any job (bad config, missing rule, ...): that is the night's
        # failure, not the runs'; they stay pending without using up an attempt.
        tail = " | ".join(_log_tail(snake_log, 4))
        raise RuntimeError(f"snakemake failed outside any job (exit {code}): {tail} (log: {snake_log})")
    return code


def _log_has(path: Path, text: str) -> bool:
    """Whether a (possibly large) log file contains `text`, read line by line."""
    with open(path, errors="replace") as handle:
        return any(text in line for line in handle)


def _log_tail(path: Path, lines: int) -> list[str]:
    """The last non-empty lines of a log file (only its end is read)."""
    with open(path, "rb") as handle:
        handle.seek(max(0, handle.seek(0, os.SEEK_END) - 16384))
        tail = handle.read().decode(errors="replace")
    return [ln.strip() for ln in tail.splitlines() if ln.strip()][-lines:]


def _record_results(
    state: dict[str, Any],
    batch: _Batch,
    workdir: Path,
    code: int,
    night_cfg: dict[str, Any],
    started: _dt.datetime,
) -> list[dict[str, Any]]:
    """Move each finished run to `processed` (with statistics, its GPU time, a figure and a page), count an
    attempt for the others."""
    unfinished = incomplete_outputs(workdir)
    figures = int(night_cfg["report_figures"])
    rules = gpu_rules(batch.methods)
    rows = []
    for key, run in batch.runs:
        tomo = tomo_key(run)
        missing = [t for t in batch.targets[key] if not (workdir / t).exists() or t in unfinished]
        row = {
            "key": key,
            "tomo": tomo,
            **{k: run[k] for k in ("dataset_id", "run_id", "name", "has_membrane")},
        }
        if not missing:
            state["processed"][key] = {"tomo": tomo, "run_id": run["run_id"], "night": batch.night_id}
            state["pending"].pop(key)
            row.update(
                status="processed", **run_statistics(workdir, tomo, batch.methods, run["has_membrane"])
            )
            hours = gpu_hours(workdir, tomo, rules)
            if hours is not None:
                row["gpu_hours"] = hours
                state.setdefault("costs", []).append({"hours": hours, "rules": rules})
            if figures > 0:
                figures -= 1
                row.update(
                    run_page(workdir, tomo, batch.methods, batch.night_dir, run, batch.benchmark_rules)
                )
        else:
            reason = failure_reason(workdir, tomo, missing, code)
            retry = count_attempt(state, key, reason, night_cfg, started)
            row.update(
                status="failed",
                reason=reason,
                attempts=retry["attempts"],
                retry_after=retry.get("retry_after"),
            )
        rows.append(row)
    state["costs"] = state.get("costs", [])[-COST_SAMPLES:]
    return rows


def incomplete_outputs(workdir: Path) -> set[str]:
    """Outputs Snakemake still marks incomplete (a killed job's files are not finished work)."""
    from base64 import urlsafe_b64decode

    base = workdir / ".snakemake" / "incomplete"
    found: set[str] = set()
    for marker in base.rglob("*") if base.exists() else []:
        if marker.is_file() and marker.name != "migration_underway":
            encoded = "".join(part.lstrip("@") for part in marker.relative_to(base).parts)
            try:
                path = urlsafe_b64decode(encoded).decode()
            except ValueError:
                continue
            found.add(os.path.relpath(path, workdir) if os.path.isabs(path) else path)
    return found


def failure_reason(workdir: Path, tomo: str, missing: list[str], code: int) -> str:
    """The last error line in the run's newest rule log that has one, else which outputs are missing."""
    logs = sorted(workdir.glob(log_path("*", tomo)), key=lambda p: p.stat().st_mtime, reverse=True)
    for log_file in logs:
        error = last_error_line(log_file)
        if error:
            return f"{log_file.parent.name}: {error}"
    return f"snakemake exit {code}; missing {', '.join(missing)}"
