"""Logging for workflow scripts: everything a step logs, and why it failed, goes to its `log:` file."""

from __future__ import annotations

import logging
import os
import sys
from types import TracebackType

from tomoseg.io import InputError

log = logging.getLogger("tomoseg")


def log_to(path: str | os.PathLike | None, level: int = logging.INFO) -> None:
    """Send library logging and any uncaught error of this script to the rule's log file."""
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


def _log_uncaught(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    """Record why the step failed: bad input as one line, anything else with its traceback."""
    if isinstance(error, InputError):
        log.error("FAILED: %s", error)
    else:
        log.error("FAILED: %s: %s", kind.__name__, error, exc_info=(kind, error, tb))
    logging.shutdown()
    sys.exit(1)
