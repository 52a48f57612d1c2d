"""Sharded execution: one Snakemake job runs a per-run step for every run of a shard of the runs sheet.

Planning cost in Snakemake grows with the number of jobs, so a portal backfill (tens of thousands of
runs) cannot be one job per run and step. Above a configured number of runs the workflow plans one job
per shard of runs and stage instead; that job runs the *same* workflow script each per-run rule runs,
for each run of its shard, with the per-run rule's inputs, outputs, log, params and benchmark record.
So the per-run files stay exactly where the per-run rules put them (what the summaries and the nightly
read), and a run is resumable on its own: each finished step leaves a done record that fingerprints its
params, script and inputs, and a rerun skips every step whose record still matches. One run's failure
is logged in that run's own log and recorded in the shard's record; the shard's other runs go on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import runpy
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tomoseg.core.io import atomic_path, read_json, write_json
from tomoseg.core.layout import read_shard_record, results_path
from tomoseg.core.runlog import log_failure

log = logging.getLogger(__name__)

DONE_DIR = results_path("shards/done")
"""Done records of sharded steps: results/shards/done/{rule}/{wildcards}.json."""


class Files(dict):
    """Named files or params as a workflow script reads them: by name (`.tomogram`), by position, `.get`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return list(self.values())[key]
        return super().__getitem__(key)


@dataclass
class Step:
    """One per-run rule's job: the script it runs and its resolved files, params and wildcards."""

    rule: str
    script: str
    input: dict[str, Any]
    output: dict[str, str]
    log: str
    benchmark: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    wildcards: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Step:
        """A Step from its plain-dict form (as the workflow passes it in params)."""
        return cls(**dict(record))

    def done_record(self) -> Path:
        """Where this step's done record lives (one per rule and wildcards)."""
        return Path(DONE_DIR) / self.rule / ("/".join(self.wildcards.values()) + ".json")

    def input_files(self) -> list[str]:
        """Every input path (lists flattened)."""
        files: list[str] = []
        for value in self.input.values():
            files.extend(value if isinstance(value, list) else [value])
        return [str(f) for f in files]


@dataclass
class ScriptObject:
    """What a workflow script reads from Snakemake's `snakemake` object, for one per-run step."""

    input: Files
    output: Files
    params: Files
    wildcards: Files
    log: list[str]
    config: dict[str, Any]
    rule: str
    threads: int = 1


def fingerprint(step: Step) -> str:
    """Hash of what decides a step's outputs: its rule, params, script text, and each input's size and mtime."""
    inputs = []
    for path in step.input_files():
        stat = os.stat(path)
        inputs.append([path, stat.st_size, stat.st_mtime_ns])
    record = {
        "rule": step.rule,
        "params": step.params,
        "output": step.output,
        "script": hashlib.sha256(Path(step.script).read_bytes()).hexdigest(),
        "inputs": inputs,
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def is_done(step: Step, current: str) -> bool:
    """Whether the step's outputs exist and its done record matches its `current` fingerprint."""
    record = step.done_record()
    if not record.exists() or not all(Path(p).exists() for p in step.output.values()):
        return False
    try:
        return bool(read_json(record).get("fingerprint") == current)
    except (
        ValueError,
        OSError,
        AttributeError,
    ) as err:  # truncated or unreadable (InputError is a ValueError)
        log.warning(
            "%s: unreadable done record, the step is treated as not done and runs again (%s)", record, err
        )
        return False


def adoptable(step: Step) -> bool:
    """Whether a step without a done record has outputs that are complete and newer than its inputs.

    Such outputs were made by a per-run job (one job per run, before the runs were many enough to shard)
    and are kept, as Snakemake keeps an output without a metadata record that is newer than its inputs.
    """
    if step.done_record().exists():
        return False
    outputs = [Path(p) for p in step.output.values()]
    if not all(p.exists() for p in outputs):
        return False
    newest_input = max((os.stat(p).st_mtime_ns for p in step.input_files()), default=0)
    return min(p.stat().st_mtime_ns for p in outputs) >= newest_input


def run_step(step: Step, config: dict[str, Any]) -> float:
    """Run a per-run step's workflow script in this process, as Snakemake would; return its wall time (s)."""
    for path in [*step.output.values(), step.log, step.benchmark]:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    script_object = ScriptObject(
        input=Files(step.input),
        output=Files(step.output),
        params=Files(step.params),
        wildcards=Files(step.wildcards),
        log=[step.log],
        config=config,
        rule=step.rule,
    )
    # The shard's log handlers are set aside meanwhile (not closed) and come back afterwards, with the
    # excepthook. The step's log takes its place: the script points logging at it again (log_to), and an
    # error, even one before log_to, ends up there as a per-run job's uncaught error would.
    root, hook = logging.getLogger(), sys.excepthook
    shard_handlers, root.handlers = root.handlers[:], [logging.FileHandler(step.log, mode="w")]
    start = time.perf_counter()
    try:
        runpy.run_path(step.script, init_globals={"snakemake": script_object}, run_name="__main__")
        return time.perf_counter() - start
    except Exception as error:
        log_failure(error)
        raise
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers, sys.excepthook = shard_handlers, hook


def write_benchmark(path: str, seconds: float) -> None:
    """A per-run benchmark record in Snakemake's format (wall time only: memory is the shard job's)."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    with atomic_path(path) as tmp:
        tmp.write_text(f"s\th:m:s\n{seconds:.4f}\t{hours}:{minutes:02d}:{secs:02d}\n")


def run_shard(
    runs: Mapping[str, Iterable[Mapping[str, Any]]],
    marker: str | os.PathLike,
    config: dict[str, Any],
) -> dict[str, Any]:
    """Run each run's steps in order (skipping those already done), isolate failures, write the shard's record.

    A run whose step fails (its error goes to that run's log) or whose input is missing (an earlier
    stage failed for it) stops there; the other runs go on. The record says, per run, ok, failed or
    blocked, and why; it is written atomically at the end, also when runs failed (see docs/scaling.md).
    """
    record: dict[str, Any] = {"runs": {}, "failed": [], "blocked": [], "ran": 0, "skipped": 0}
    total = len(runs)
    for number, (key, steps) in enumerate(runs.items(), start=1):
        status: dict[str, Any] = {"status": "ok", "steps": {}}
        for step in map(Step.from_dict, steps):
            missing = [p for p in step.input_files() if not Path(p).exists()]
            if missing:
                status.update(status="blocked", step=step.rule, reason=f"input missing: {', '.join(missing)}")
                break
            # a step changes its outputs only, so its fingerprint is the same before and after it runs
            current = fingerprint(step)
            if is_done(step, current):
                status["steps"][step.rule] = "done before"
                record["skipped"] += 1
                continue
            if adoptable(step):
                write_json(step.done_record(), {"fingerprint": current, "adopted": True})
                status["steps"][step.rule] = "done before (adopted)"
                record["skipped"] += 1
                continue
            try:
                seconds = run_step(step, config)
            except Exception as error:  # noqa: BLE001 - one run's failure must not stop its shard-mates
                status.update(status="failed", step=step.rule, reason=f"{type(error).__name__}: {error}")
                status["log"] = step.log
                break
            if step.benchmark:
                write_benchmark(step.benchmark, seconds)
            write_json(step.done_record(), {"fingerprint": current, "seconds": round(seconds, 3)})
            status["steps"][step.rule] = f"ran in {seconds:.1f} s"
            record["ran"] += 1
        record["runs"][key] = status
        if status["status"] != "ok":
            record[status["status"]].append(key)
            log.warning(
                "run %d/%d %s: %s at %s (%s)",
                number,
                total,
                key,
                status["status"],
                status["step"],
                status["reason"],
            )
        else:
            log.info("run %d/%d %s: ok", number, total, key)
    write_json(marker, record)
    log.info(
        "shard done: %d runs, %d steps ran, %d were done before, %d runs failed, %d blocked; wrote %s",
        total,
        record["ran"],
        record["skipped"],
        len(record["failed"]),
        len(record["blocked"]),
        marker,
    )
    return record


STATUS_COLUMNS = ("stage", "shard", "tomo", "status", "step", "reason", "log")


def write_status(
    markers: Iterable[str | os.PathLike], out: str | os.PathLike, allow_failures: bool
) -> list[dict[str, str]]:
    """Gather every shard record into one table of the runs that failed or were blocked (TSV at `out`).

    Strict (not `allow_failures`), any such run is an error listing them, and nothing is written: the
    workflow ends non-zero like a failed per-run job, and the next invocation retries those runs.
    """
    rows: list[dict[str, str]] = []
    runs = 0
    for marker in map(Path, markers):
        record = read_shard_record(marker)  # None, with a warning naming it, when truncated or unreadable
        if record is None:
            values = {"stage": marker.parent.name, "shard": marker.stem, "tomo": "*", "status": "not done"}
            values.update(
                step="",
                reason=f"unreadable shard record {marker}; the next invocation reruns the shard",
                log="",
            )
            rows.append(values)
            continue
        runs += len(record["runs"])
        for tomo, status in record["runs"].items():
            if not isinstance(status, dict):
                status = {"status": "not done", "reason": f"unreadable entry in {marker}"}
            if status.get("status") != "ok":
                values = {"stage": marker.parent.name, "shard": marker.stem, "tomo": tomo}
                values.update({key: str(status.get(key, "")) for key in ("status", "step", "reason", "log")})
                rows.append(values)
    for row in rows:
        log.warning("%s", "  ".join(f"{key}={row[key]}" for key in STATUS_COLUMNS))
    if rows and not allow_failures:
        raise RuntimeError(
            f"{len(rows)} of {runs} run-stages failed or were blocked by a failed stage (listed above; each "
            "failed run's log says why); rerun to retry them (finished steps are not redone), or set "
            "evaluate.allow_missing: true to build the tables without them"
        )
    with atomic_path(out) as tmp:
        lines = ["\t".join(STATUS_COLUMNS)]
        lines += [
            "\t".join(row[key].replace("\t", " ").replace("\n", " ") for key in STATUS_COLUMNS)
            for row in rows
        ]
        tmp.write_text("\n".join(lines) + "\n")
    log.info("%d run-stages in %s: %d not ok; wrote %s", runs, "shard records", len(rows), out)
    return rows
