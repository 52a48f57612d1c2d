"""Logging for workflow scripts: everything a step logs, and why it failed, goes to its `log:` file."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import sys
from pathlib import Path
from types import TracebackType

from tomoseg.core.children import exit_on_sigterm, set_parent_death_signal
from tomoseg.core.io import InputError

log = logging.getLogger("tomoseg")

RUN_CONTEXT_MARKER = "run context:"
# The environment that says where a job ran: Slurm's node name and job id, and the GPUs it was given.
RUN_CONTEXT_VARIABLES = ("SLURMD_NODENAME", "SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES")


def run_context() -> dict[str, str]:
    """Where this process runs (host, Slurm node and job, visible GPUs), so logs prove job placement."""
    context = {"host": socket.gethostname()}
    context.update({name: os.environ.get(name, "-") or "-" for name in RUN_CONTEXT_VARIABLES})
    return context


def parse_run_context(text: str) -> list[dict[str, str]]:
    """Every run-context record written by `log_to` in a log's text (the inverse of its format)."""
    records = []
    for line in text.splitlines():
        _, marker, rest = line.partition(RUN_CONTEXT_MARKER)
        if marker:
            records.append(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return records


def log_to(path: str | os.PathLike | None, level: int = logging.INFO, die_with_parent: bool = True) -> None:
    """Send library logging and any uncaught error of this script to the rule's log file.

    Its first line records the run context (host, `$SLURMD_NODENAME`, `$SLURM_JOB_ID`,
    `$CUDA_VISIBLE_DEVICES`), so every job's log shows where it ran. With `die_with_parent` the script
    stops (SIGTERM, turned into SystemExit so that its clean-up runs) when the Snakemake process that
    started it dies, even by `kill -9`, and takes the tools it started with it.
    """
    if die_with_parent:
        exit_on_sigterm()
        set_parent_death_signal(signal.SIGTERM)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if path:
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    sys.excepthook = _log_uncaught
    context_log = logging.getLogger("tomoseg.core.runlog")
    context_log.setLevel(logging.INFO)  # written whatever the level asked for: placement proof
    context = " ".join(f"{key}={value}" for key, value in run_context().items())
    context_log.info("%s %s", RUN_CONTEXT_MARKER, context)


def last_error_line(path: str | os.PathLike, fallback: bool = False, limit: int = 300) -> str | None:
    """The last line of a job log that names an error (such as `log_to`'s FAILED line), to say why a job failed.

    A line counts when it mentions "error" or "exception" in any case, so the exception line that closes a
    traceback wins over the FAILED line above it. With `fallback`, a log without such a line gives its
    last line. None when the log is missing, empty or (without `fallback`) names no error. The line keeps
    its last `limit` characters, where a long message ends.
    """
    path = Path(path)
    if not path.exists():
        return None
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        lowered = line.lower()
        if "error" in lowered or "exception" in lowered:
            return line[-limit:]
    return lines[-1][-limit:] if fallback and lines else None


def log_failure(error: BaseException) -> None:
    """Record why the step failed: bad input as one line, anything else with its traceback."""
    if isinstance(error, InputError):
        log.error("FAILED: %s", error)
    else:
        log.error("FAILED: %s: %s", type(error).__name__, error, exc_info=error)


def _log_uncaught(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    """The excepthook `log_to` installs: log why the step failed, then exit 1."""
    log_failure(error)
    logging.shutdown()
    sys.exit(1)
