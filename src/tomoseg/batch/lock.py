"""The nightly lock: one night at a time in a state folder, and the clean-up after a night killed hard.

The lock is an exclusive flock on `<state_dir>/nightly.lock`; the file names its holder (the night's
pid, and its Snakemake's process group once started) so that a later night can tell a live night from
a dead one whose Snakemake outlived it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import logging
import os
import re
import signal
import time
from pathlib import Path

from tomoseg.core.errors import BusyError

log = logging.getLogger(__name__)


class NightBusy(BusyError):
    """Another night holds the lock."""


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
    write_holder(
        fd, f"pid {os.getpid()} since {_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}"
    )
    return fd


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def write_holder(fd: int, text: str) -> None:
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
