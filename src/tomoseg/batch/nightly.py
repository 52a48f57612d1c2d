"""Nightly batch: find new portal runs, segment them with the workflow, record and report (see docs/portal.md).

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

import contextlib
import csv
import dataclasses
import datetime as _dt
import fcntl
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tomoseg.core.children import start_child, stop_group
from tomoseg.core.errors import BusyError
from tomoseg.core.io import InputError, atomic_path, read_json, write_json
from tomoseg.core.layout import RUNS_COLUMNS, data_path, log_path, metrics_path, run_targets
from tomoseg.core.methods import METHOD_NAMES, method
from tomoseg.core.provenance import untrained_methods
from tomoseg.core.runlog import last_error_line

log = logging.getLogger(__name__)


class NightBusy(BusyError):
    """Another night holds the lock."""


# ---------------------------------------------------------------- portal listing


def _gql_list(values: list[str]) -> str:
    """A GraphQL list literal of strings (JSON quoting is GraphQL's)."""
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def membrane_annotation_filter(go_ids: list[str]) -> str:
    """GraphQL where-fragment: an annotation with a curated GO id and a SegmentationMask mrc file."""
    return (
        f"objectId: {{_in: {_gql_list(sorted(go_ids))}}}, annotationShapes: {{shapeType: {{_eq: SegmentationMask}}, "
        'annotationFiles: {format: {_eq: "mrc"}}}'
    )


def paged_runs(client: Any, where: str, page_size: int) -> list[dict[str, Any]]:
    """All runs matching a GraphQL `where` clause, fetched page by page (limit/offset, ordered by id)."""
    from gql import gql

    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        query = gql(
            f"query {{ runs(where: {{{where}}}, orderBy: [{{id: asc}}], "
            f"limitOffset: {{limit: {page_size}, offset: {offset}}}) {{ id name datasetId }} }}"
        )
        page = client.get_client().execute(query)["runs"]
        rows.extend(page)
        if len(page) < page_size:
            return rows
        offset += page_size


def list_new_runs(client: Any, since: str, go_ids: list[str], page_size: int = 500) -> list[dict[str, Any]]:
    """Runs with membrane annotations or tomograms released or modified since `since` (ISO string)."""
    since_json = json.dumps(since)
    membrane = membrane_annotation_filter(go_ids)
    found: dict[tuple[int, str], dict[str, Any]] = {}
    for relation, extra in (("annotations", membrane + ", "), ("tomograms", "")):
        for field in ("releaseDate", "lastModifiedDate"):
            where = f"{relation}: {{{extra}{field}: {{_gte: {since_json}}}}}"
            for row in paged_runs(client, where, page_size):
                found[(int(row["datasetId"]), row["name"])] = row
    if not found:
        return []
    ids = sorted(int(r["id"]) for r in found.values())
    with_membrane = set()
    for start in range(0, len(ids), page_size):
        chunk = ids[start : start + page_size]
        where = f"id: {{_in: {chunk}}}, annotations: {{{membrane}}}"
        with_membrane.update(int(r["id"]) for r in paged_runs(client, where, page_size))
    runs = [
        {
            "dataset_id": int(r["datasetId"]),
            "run_id": int(r["id"]),
            "name": r["name"],
            "has_membrane": int(r["id"]) in with_membrane,
        }
        for r in found.values()
    ]
    return sorted(runs, key=lambda r: (r["dataset_id"], r["run_id"]))


# ---------------------------------------------------------------- state and targets


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


def _parse_date(value: str) -> _dt.datetime:
    """An ISO date or date-time (UTC when no zone is given)."""
    try:
        parsed = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"nightly: {value!r} is not an ISO date (e.g. 2025-01-01)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)


def _now() -> _dt.datetime:
    """The current UTC time to the second, as recorded in the state and night ids."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


# ---------------------------------------------------------------- the night


LOCK_CLEANUP_S = 120.0
"""How long a night waits for a dead night's Snakemake (told to stop) to release the lock."""


def acquire_lock(path: Path) -> int:
    """Take the nightly lock (non-blocking) and return its fd; NightBusy names the holder otherwise.

    A lock held although the night that took it is dead (its Snakemake outlived it, e.g. after `kill -9`
    of the night alone) is cleaned up: that Snakemake is told to stop (SIGTERM: it ends its jobs and
    exits) and the lock is awaited for up to LOCK_CLEANUP_S; only a live night makes this one busy.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if not _try_lock(fd):
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
        if not (_holder_dead(holder) and _clean_up_after(holder, fd, path)):
            os.close(fd)
            raise NightBusy(
                f"another nightly run is in progress ({holder}; lock {path}); nothing was changed"
            ) from None
    _write_holder(fd, f"pid {os.getpid()} since {_now().isoformat()}")
    return fd


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(fd: int, text: str) -> None:
    """Record who holds the lock (read by the next night when it finds the lock taken)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{text}\n".encode(), 0)


def _holder_dead(holder: str) -> bool:
    """Whether the night named in the lock file ('pid N ...') no longer runs."""
    match = re.match(r"pid (\d+)", holder)
    if not match:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _clean_up_after(holder: str, fd: int, path: Path) -> bool:
    """Stop a dead night's Snakemake (recorded as 'snakemake pgid N') and wait for its lock; True once ours."""
    match = re.search(r"snakemake pgid (\d+)", holder)
    log.warning("lock %s is held, but the night that took it is gone (%s); cleaning up", path, holder)
    if match and _is_snakemake(int(match.group(1))):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(match.group(1)), signal.SIGTERM)
    deadline = time.monotonic() + LOCK_CLEANUP_S
    while time.monotonic() < deadline:
        if _try_lock(fd):
            log.info("lock %s released by the dead night's processes", path)
            return True
        time.sleep(0.5)
    return False


def _is_snakemake(pid: int) -> bool:
    """The process `pid` runs Snakemake (guards the group signal against a reused process id)."""
    try:
        return b"snakemake" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def run_night(
    config_path: Path,
    repo: Path,
    workdir: Path,
    snakemake: str | None = None,
    lister: Callable[..., list[dict[str, Any]]] = list_new_runs,
) -> int:
    """One night (see the module docstring); returns 0 (all good) or 1 (something failed).

    Raises NightBusy, and changes nothing, when another night holds the lock.
    """
    config, night_cfg = load_night_config(config_path, repo)
    state_dir = (workdir / night_cfg.get("state_dir", "nightly")).resolve()
    lock_fd = acquire_lock(state_dir / "nightly.lock")
    report: Path | None = None
    bad_input: InputError | None = None
    try:
        status, report = _night(
            config, night_cfg, config_path, repo, workdir, state_dir, lock_fd, snakemake, lister
        )
    except InputError as err:  # a setting the night cannot use: one line, exit status 2
        bad_input, status = err, f"error: {err}"
    except Exception as err:  # a night that cannot even list or launch is a failed night
        log.exception("nightly run failed")
        status = f"error: {err}"
    finally:
        os.close(lock_fd)
    if status != "ok":
        _on_failure(night_cfg.get("on_failure") or "", status, report, workdir)
        if bad_input is not None:
            raise bad_input
        return 1
    return 0


def load_night_config(config_path: Path, repo: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The workflow config and its `nightly:` section, checked against the workflow's schema before any work.

    A missing or unreadable file, YAML that is not a mapping, a missing `nightly:` section or a value of
    the wrong type (e.g. a non-numeric `cap`) is an InputError naming the file and the key.
    """
    try:
        config = yaml.safe_load(config_path.read_text())
    except FileNotFoundError:
        raise InputError(f"{config_path}: config file not found (--configfile)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{config_path}: cannot read the config ({err})") from None
    except yaml.YAMLError as err:
        raise InputError(f"{config_path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(config, dict):
        raise InputError(f"{config_path}: expected a YAML mapping of settings, found {type(config).__name__}")
    night_cfg = config.get("nightly")
    if not isinstance(night_cfg, dict):
        raise InputError(
            f"{config_path}: no `nightly:` section (start_date, cap, ...); see docs/portal.md and config/config.yaml"
        )
    schema_file = repo / "workflow" / "schemas" / "config.schema.yaml"
    if schema_file.exists():
        import jsonschema

        schema = yaml.safe_load(schema_file.read_text())["properties"]["nightly"]
        error = next(iter(jsonschema.Draft202012Validator(schema).iter_errors(night_cfg)), None)
        if error is not None:
            where = ".".join(["nightly", *map(str, error.absolute_path)])
            raise InputError(f"{config_path}: {where}: {error.message}")
    return config, night_cfg


def _on_failure(command: str, status: str, report: Path | None, workdir: Path) -> None:
    """Run the configured failure hook with the night's status and report in its environment."""
    if not command:
        return
    env = dict(os.environ, TOMOSEG_NIGHT_STATUS=status, TOMOSEG_NIGHT_REPORT=str(report or ""))
    result = subprocess.run(command, shell=True, cwd=workdir, env=env, timeout=600)
    if result.returncode:
        log.error("on_failure command exited with %d: %s", result.returncode, command)


@dataclass(frozen=True)
class RunCost:
    """The GPU time one run is expected to take: hours, and where the number comes from."""

    hours: float
    source: str  # "measured" (median of recent runs) or "assumed" (nightly.gpu_hours_per_run)
    samples: int


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
    started = _now()
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
            {**night, "processed": 0, "failed": 0, "status": f"error: {err}", "finished": _now().isoformat()}
        )
        write_json(state_path, state)
        raise
    rows = _record_results(state, batch, workdir, code, night_cfg, started)
    failed = sum(row["status"] == "failed" for row in rows)
    status = "ok" if failed == 0 else f"{failed} of {len(rows)} runs failed"
    night.update(processed=len(rows) - failed, failed=failed, status=status, finished=_now().isoformat())
    state["nights"].append(night)
    backlog = backlog_estimate(state, started, batch.cost)
    night["backlog"] = backlog
    report = write_report(
        batch.night_dir, batch.night_id, str(since), rows, len(state["pending"]), batch.methods, backlog
    )
    write_index(
        batch.night_dir,
        batch.night_id,
        status,
        str(since),
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
    lookback = _dt.timedelta(days=float(night_cfg.get("lookback_days", 2)))
    query_since = (_parse_date(since) - lookback).isoformat()
    listed = lister(client, query_since, sorted(load_membrane_terms()), int(night_cfg.get("page_size", 500)))
    new = queue_runs(state, listed, started.isoformat())
    state["since"] = started.isoformat()
    return len(listed), new


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
        if r.get("attempts") and _parse_date(r.get("retry_after") or "1970-01-01") <= now
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
    return RunCost(float(night_cfg.get("gpu_hours_per_run", 0.5)), "assumed", 0)


def batch_size(night_cfg: dict[str, Any], waiting: int, cost: RunCost) -> int:
    """How many runs fit tonight: `cap` runs, and `gpu_hours` at `cost` per run (at least one run)."""
    size = waiting
    cap = night_cfg.get("cap", 50)
    if cap is not None:
        size = min(size, int(cap))
    budget = night_cfg.get("gpu_hours")
    if budget is not None and cost.hours > 0:
        size = min(size, max(1, math.floor(float(budget) / cost.hours)))
    return size


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
    metrics = bool(night_cfg.get("metrics", True))
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
    benchmark_rules = dict((config.get("evaluate") or {}).get("benchmark_rules") or {})
    return _Batch(night_dir.name, night_dir, runs, methods, targets, metrics, cost, benchmark_rules)


def write_runs_sheet(sheet: Path, runs: list[tuple[str, dict[str, Any]]]) -> Path:
    """The runs sheet of a batch (one test-split row per portal run), the workflow's input for the night."""
    with atomic_path(sheet) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RUNS_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for _, run in runs:
            writer.writerow(
                {
                    "tomo": tomo_key(run),
                    "source": "cdp",
                    "dataset_id": run["dataset_id"],
                    "run_id": run["run_id"],
                    "tomogram_id": "",
                    "path": "",
                    "truth_path": "",
                    "split": "test",
                    "truth": "cdp" if run["has_membrane"] else "none",
                }
            )
    return sheet


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
        str(night_cfg.get("cores", 1)),
        *[str(a) for a in night_cfg.get("snakemake_args") or []],
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
        _write_holder(lock_fd, f"{holder.splitlines()[0] if holder else ''}; snakemake pgid {proc.pid}")
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
    figures = int(night_cfg.get("report_figures", 50))
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
            retry = _count_attempt(state, key, reason, night_cfg, started)
            row.update(
                status="failed",
                reason=reason,
                attempts=retry["attempts"],
                retry_after=retry.get("retry_after"),
            )
        rows.append(row)
    state["costs"] = state.get("costs", [])[-COST_SAMPLES:]
    return rows


COST_SAMPLES = 200
"""Measured runs kept in the state for the GPU-time estimate (the most recent)."""


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


def _count_attempt(
    state: dict[str, Any], key: str, reason: str, night_cfg: dict[str, Any], now: _dt.datetime
) -> dict[str, Any]:
    """Record a failed attempt of a pending run: it waits `retry_after_nights` x 2^(attempts-1) nights, or is
    given up after `max_attempts`; returns its entry."""
    entry = state["pending"][key]
    entry["attempts"] = entry.get("attempts", 0) + 1
    entry["last_error"] = reason
    wait = float(night_cfg.get("retry_after_nights", 1)) * 2 ** (entry["attempts"] - 1)
    entry["retry_after"] = (now + _dt.timedelta(days=wait)).isoformat()
    if entry["attempts"] >= int(night_cfg.get("max_attempts", 3)):
        state["failed"][key] = state["pending"].pop(key)
        entry.pop("retry_after")
    return entry


RATE_NIGHTS = 7
"""Nights averaged for the backlog's rate (the most recent ones that ran a batch)."""


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


# ---------------------------------------------------------------- report


def _fraction(path: Path) -> float | None:
    """Foreground voxels / all voxels of a mask, read in slabs so a large mask is never fully in memory."""
    if not path.exists():
        return None
    from tomoseg.core.io import open_volume

    with open_volume(path) as (data, _voxel):
        total = sum(int(np.count_nonzero(data[z : z + 16])) for z in range(0, data.shape[0], 16))
        return total / data.size


def run_statistics(workdir: Path, tomo: str, methods: list[str], truth: bool) -> dict[str, Any]:
    """Mask statistics (foreground fraction), the chosen tomogram and metrics of one processed run."""
    stats: dict[str, Any] = {}
    source = workdir / "results" / "data" / tomo / "tomogram.source.json"
    if source.exists():
        src = read_json(source)
        stats.update(
            tomogram_id=src.get("tomogram_id"),
            shape="x".join(map(str, src.get("shape_zyx", []))),
            voxel_spacing=src.get("voxel_spacing"),
        )
    if truth:
        stats["truth_fraction"] = _fraction(workdir / "results" / "data" / tomo / "groundtruth.mrc")
    untrained = untrained_methods({m: workdir / method(m).provenance_path(tomo) for m in methods})
    stats["untrained"] = ", ".join(untrained)
    for name in methods:
        stats[f"{name}_fraction"] = _fraction(workdir / method(name).mask_path(tomo))
        metric_file = workdir / metrics_path(name, tomo)
        if metric_file.exists():
            record = read_json(metric_file)
            values = record if "dice" in record else record.get("metrics", {})
            for metric in ("dice", "iou"):
                if isinstance(values.get(metric), int | float):
                    stats[f"{name}_{metric}"] = float(values[metric])
    return stats


def run_figure(
    workdir: Path,
    tomo: str,
    methods: list[str],
    out: Path,
    dice_z: Path | None = None,
    stats_json: Path | None = None,
) -> str | None:
    """The report's picture of a run: slices of the normalized tomogram with the truth and each mask.

    Drawn by the reporting layer's slice overlays (PNG only), optionally with the Dice-along-Z plot and the
    mask statistics a tomogram page reads; None when there is no tomogram or a mask does not match it, since
    a missing picture must not fail the night.
    """
    normalized = workdir / data_path(tomo, "normalized.mrc")
    if not normalized.exists():
        return None
    # imported here: the CLI loads this module for every command, and matplotlib is slow to import
    from tomoseg.reporting.figures import overlay_files

    truth = workdir / data_path(tomo, "groundtruth.mrc")
    masks = {m: workdir / method(m).mask_path(tomo) for m in methods}
    untrained = untrained_methods({m: workdir / method(m).provenance_path(tomo) for m in methods})
    try:
        overlay_files(
            normalized,
            {m: p for m, p in masks.items() if p.exists()},
            out.with_suffix(""),
            truth=truth if truth.exists() else None,
            title=tomo,
            untrained=untrained,
            formats=("png",),
            dice_z_stem=dice_z.with_suffix("") if dice_z is not None else None,
            stats_json=stats_json,
        )
    except InputError as err:
        log.warning("no figure for %s: %s", tomo, err)
        return None
    return str(out)


def run_page(
    workdir: Path,
    tomo: str,
    methods: list[str],
    night_dir: Path,
    run: dict[str, Any] | None = None,
    benchmark_rules: dict[str, list[str]] | None = None,
) -> dict[str, str | None]:
    """A processed run's figure and its page in the night's folder: {"figure": ..., "page": ...}.

    The page is the workflow report's per-tomogram page (`tomoseg.reporting.pages.tomogram_page`: overlays
    with TP/FP/FN where there is truth, Dice along Z, mask fractions, metrics, runtime, provenance), written
    to `pages/<tomo>.html`; its figures go to `figures/` (`<tomo>.png`, `<tomo>_dice_z.png` and .pdf,
    `<tomo>.json`). None for what could not be drawn.
    """
    figures = night_dir / "figures"
    overlay, dice_z, stats = figures / f"{tomo}.png", figures / f"{tomo}_dice_z.png", figures / f"{tomo}.json"
    figure = run_figure(workdir, tomo, methods, overlay, dice_z=dice_z, stats_json=stats)
    if figure is None:
        return {"figure": None, "page": None}
    from tomoseg.reporting.pages import tomogram_page

    provenance = {m: workdir / method(m).provenance_path(tomo) for m in methods}
    metrics = {m: workdir / metrics_path(m, tomo) for m in methods}
    try:
        page = tomogram_page(
            tomo,
            night_dir / "pages" / f"{tomo}.html",
            methods=methods,
            stats_json=stats,
            overlay_png=overlay,
            dice_z_png=dice_z,
            metrics={m: p for m, p in metrics.items() if p.exists()},
            provenance=provenance,
            untrained=untrained_methods(provenance),
            results=workdir / "results",
            benchmark_rules=benchmark_rules or {},
            run=_sheet_row(run) if run is not None else None,
        )
    except (InputError, OSError, ValueError) as err:  # a missing page must not fail the night either
        log.warning("no page for %s: %s", tomo, err)
        return {"figure": figure, "page": None}
    return {"figure": figure, "page": str(page.relative_to(night_dir))}


def _sheet_row(run: dict[str, Any]) -> dict[str, Any]:
    """What a tomogram page shows of a portal run (as the workflow's page shows its runs-sheet row)."""
    return {
        "source": "cdp",
        "dataset_id": run.get("dataset_id"),
        "run_id": run.get("run_id"),
        "name": run.get("name"),
        "truth": "cdp" if run.get("has_membrane") else "none",
    }


def failure_reason(workdir: Path, tomo: str, missing: list[str], code: int) -> str:
    """The last error line in the run's newest rule log that has one, else which outputs are missing."""
    logs = sorted(workdir.glob(log_path("*", tomo)), key=lambda p: p.stat().st_mtime, reverse=True)
    for log_file in logs:
        error = last_error_line(log_file)
        if error:
            return f"{log_file.parent.name}: {error}"
    return f"snakemake exit {code}; missing {', '.join(missing)}"


def write_report(
    night_dir: Path,
    night_id: str,
    since: str,
    rows: list[dict[str, Any]],
    pending: int,
    methods: list[str],
    backlog: dict[str, Any] | None = None,
) -> Path:
    """The night's report: a TSV of every run and a Markdown summary (processed, failures, the backlog)."""
    columns = [
        "tomo",
        "dataset_id",
        "run_id",
        "name",
        "status",
        "has_membrane",
        "tomogram_id",
        "shape",
        "voxel_spacing",
        "truth_fraction",
    ]
    for m in methods:
        columns += [f"{m}_fraction", f"{m}_dice", f"{m}_iou"]
    columns += ["untrained", "gpu_hours", "figure", "attempts", "retry_after", "reason"]
    with atomic_path(night_dir / "report.tsv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=columns, delimiter="\t", lineterminator="\n", extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(rows)

    def fmt(v: Any) -> str:
        if v is None or v == "":
            return "–"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    done = [r for r in rows if r["status"] == "processed"]
    failed = [r for r in rows if r["status"] == "failed"]
    shown = [
        c
        for c in columns
        if c not in ("figure", "attempts", "retry_after", "reason", "status")
        and any(r.get(c) not in (None, "") for r in done)
    ]
    lines = [
        f"# Night {night_id}",
        "",
        f"Runs released or modified since {since}: {len(rows)} in this batch, "
        f"{len(done)} processed, {len(failed)} failed, {pending} still pending.",
        "",
    ]
    untrained = sorted({m for r in done for m in str(r.get("untrained") or "").split(", ") if m})
    if untrained:
        lines += [
            f"**Untrained**: the outputs of {', '.join(untrained)} come from randomly initialised weights "
            "(demo/test checkpoints); their masks and metrics are meaningless (column `untrained`).",
            "",
        ]
    if backlog:
        lines += ["## Backlog", "", backlog_sentence(backlog), ""]
    if done:
        lines += [
            "## Processed",
            "",
            "| " + " | ".join(shown) + " | figure |",
            "|" + "---|" * (len(shown) + 1),
        ]
        for r in done:
            figure = f"![{r['tomo']}](figures/{r['tomo']}.png)" if r.get("figure") else "–"
            lines.append("| " + " | ".join(fmt(r.get(c)) for c in shown) + f" | {figure} |")
        lines.append("")
    if failed:
        lines += [
            "## Failed",
            "",
            "| tomo | dataset | run | attempts | next try | reason |",
            "|---|---|---|---|---|---|",
        ]
        for r in failed:
            retry = r.get("retry_after") or "given up"
            lines.append(
                f"| {r['tomo']} | {r['dataset_id']} | {r['name']} | {r['attempts']} | {retry} | "
                f"{str(r['reason']).replace('|', '/')} |"
            )
        lines.append("")
    lines.append(
        "Fractions are foreground voxels / all voxels; dice and iou come from results/metrics where ground truth exists."
    )
    report = night_dir / "report.md"
    with atomic_path(report) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return report


INDEX_TEXT_COLUMNS = (
    *("tomo", "dataset_id", "run_id", "name", "status", "tomogram_id", "shape", "untrained"),
    *("attempts", "retry_after", "reason"),
)
"""Columns of the night's HTML table shown empty, not as NaN, where a run has no value."""


def write_index(
    night_dir: Path,
    night_id: str,
    status: str,
    since: str,
    rows: list[dict[str, Any]],
    pending: int,
    methods: list[str],
    backlog: dict[str, Any] | None = None,
) -> Path:
    """The night's HTML page (`index.html`): status, backlog, untrained banner and a table of the runs that
    links each run to its page (`run_page`), built from the reporting layer's HTML pieces."""
    import html

    import pandas as pd

    from tomoseg.reporting.tables import html_page, to_html_table, untrained_banner

    columns = ["tomo", "dataset_id", "run_id", "name", "status", "tomogram_id", "shape", "voxel_spacing"]
    columns += ["truth_fraction", *(f"{m}_{k}" for m in methods for k in ("fraction", "dice", "iou"))]
    columns += ["untrained", "gpu_hours", "attempts", "retry_after", "reason"]
    columns = [c for c in columns if c in ("tomo", "status") or any(r.get(c) not in (None, "") for r in rows)]
    table = pd.DataFrame(
        [
            {
                c: r.get(c) if r.get(c) is not None else ("" if c in INDEX_TEXT_COLUMNS else math.nan)
                for c in columns
            }
            for r in rows
        ],
        columns=columns,
    )
    done = sum(r["status"] == "processed" for r in rows)
    untrained = sorted({m for r in rows for m in str(r.get("untrained") or "").split(", ") if m})
    parts = [
        f"<h1>Night {html.escape(night_id)}</h1>",
        f"<p><strong>Status:</strong> {html.escape(status)}.</p>",
        f"<p>Runs released or modified since {html.escape(since)}: {len(rows)} in this batch, {done} processed, "
        f"{len(rows) - done} failed, {pending} still pending.</p>",
        untrained_banner(untrained),
    ]
    if backlog:
        parts.append(f"<h2>Backlog</h2><p>{html.escape(backlog_sentence(backlog))}</p>")
    parts += [
        "<h2>Runs</h2>",
        to_html_table(table, "runs", links={"tomo": [r.get("page") for r in rows]}),
        "<p>A run's key (tomo) links to its page (overlays, mask fractions, metrics, runtime, provenance); pages are "
        'drawn for the first <code>report_figures</code> processed runs. Also: <a href="report.md">report.md</a>, '
        '<a href="report.tsv">report.tsv</a>.</p>',
    ]
    index = night_dir / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(html_page(f"night {night_id}", "\n".join(p for p in parts if p)))
    return index


def backlog_sentence(backlog: dict[str, Any]) -> str:
    """The report's line on the backlog: what is pending, the rate, how many nights it takes, its GPU time."""
    text = f"{backlog['pending']:,} runs pending ({backlog['new']:,} new, {backlog['retrying']:,} waiting to retry). "
    nights = backlog["rate_nights"]
    rate = f"{backlog['rate']:g} runs a night (mean of the last {nights} night{'s' if nights != 1 else ''})"
    if not backlog["pending"]:
        text += f"Nothing left; the current rate is {rate}."
    elif backlog["nights"] is None:
        text += f"No run was processed recently ({rate}): at this rate the backlog does not drain."
    else:
        text += f"At the current rate of {rate} it takes about {backlog['nights']:,} more nights."
    if backlog["gpu_hours_per_run"] > 0:
        source = {"measured": "measured on recent runs", "assumed": "assumed, nothing measured yet"}
        text += (
            f" GPU time: {backlog['gpu_hours_per_run']:.3g} h a run "
            f"({source.get(backlog['cost_source'], backlog['cost_source'])}), "
            f"{backlog['gpu_hours']:,.1f} h for the backlog."
        )
    return text
