"""Logging for workflow scripts: everything a step logs goes to its Snakemake `log:` file."""

from __future__ import annotations

import logging
import os


def log_to(path: str | os.PathLike | None, level: int = logging.INFO) -> None:
    """Send library logging (and uncaught errors, via the caller's re-raise) to the rule's log file."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if path:
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
