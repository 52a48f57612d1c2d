"""Child processes that never outlive their parent: their own process group, a parent-death signal, group kill.

A child started with `start_child` leads a new process group (so the whole tree it starts can be signalled
at once) and, on Linux, asks the kernel to send it a signal when its parent exits (prctl
PR_SET_PDEATHSIG), so that a `kill -9` of tomoseg, of a Snakemake job or of the nightly does not leave a
tool or a Snakemake running beside the rerun. `stop_group` ends such a tree on errors and interrupts.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up before any fork (a forked child must not load libraries)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def set_parent_death_signal(sig: int = signal.SIGKILL, parent: int | None = None) -> bool:
    """Have the kernel send `sig` to this process when its parent exits (Linux); True when that is set.

    With `parent` (the pid that started this process), a parent that already exited before the request
    is caught too: the signal is then sent at once.
    """
    prctl = _prctl()
    if prctl is None or prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A `preexec_fn`: the child gets `sig` when the calling process exits (prctl looked up here, not after fork)."""
    prctl, parent = _prctl(), os.getpid()

    def preexec() -> None:
        if prctl is not None and prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0 and os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def start_child(command: Sequence[str], death_signal: int = signal.SIGKILL, **popen: Any) -> subprocess.Popen:
    """Popen `command` as the leader of a new process group that gets `death_signal` when this process exits."""
    return subprocess.Popen(
        command, start_new_session=True, preexec_fn=die_with_parent(death_signal), **popen
    )


def stop_group(proc: subprocess.Popen, grace_s: float = 0.0) -> None:
    """End the process group that `proc` leads: SIGTERM and up to `grace_s` to exit, then SIGKILL; reaps `proc`."""
    if grace_s > 0 and proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    _signal_group(proc.pid, signal.SIGKILL)  # also what the leader left behind in its group
    with contextlib.suppress(ChildProcessError):
        proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit(143), so that `finally` blocks and atomic writes clean up on the way out."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
