"""A network guard for dry runs that must not reach the network (the download-plan test, the DAG benchmark)."""

from __future__ import annotations

import os
from pathlib import Path

# Imported by every Python started with the guard's folder on PYTHONPATH (as `sitecustomize`): each socket
# connect outside AF_UNIX is recorded in the file named by NET_ATTEMPTS and refused.
_SITECUSTOMIZE = """
import os, socket
_connect = socket.socket.connect
def _refuse(self, address):
    if self.family != socket.AF_UNIX:
        with open(os.environ["NET_ATTEMPTS"], "a") as f:
            f.write(repr(address) + "\\n")
        raise OSError("network disabled for this dry run: " + repr(address))
    return _connect(self, address)
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
"""


def offline_env(scratch: Path, src: Path) -> tuple[dict[str, str], Path]:
    """An environment whose Pythons refuse and record network connects, with `src` importable; and the record file.

    The record file (`scratch/net_attempts.txt`) exists after the run only if something tried to connect.
    """
    guard = scratch / "network_guard"
    guard.mkdir(parents=True, exist_ok=True)
    (guard / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    attempts = scratch / "net_attempts.txt"
    attempts.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=f"{guard}{os.pathsep}{src}", NET_ATTEMPTS=str(attempts))
    return env, attempts
