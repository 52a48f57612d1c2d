"""Child processes never outlive their parent: own process group, parent-death signal, group kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tomoseg.core.children import start_child, stop_group

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux"
)
SRC = Path(__file__).resolve().parents[2] / "src"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_child_dies_when_its_parent_is_killed(tmp_path):
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                sys.path.insert(0, {str(SRC)!r})
                from tomoseg.core.children import start_child
                child = start_child(["sleep", "300"])
                open({str(pid_file)!r}, "w").write(str(child.pid))
                time.sleep(300)
                """
            ),
        ]
    )
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert os.getpgid(child) == child  # the leader of its own process group
    parent.kill()  # kill -9: no clean-up code of the parent runs
    parent.wait()
    assert _gone_within(child, 10), "the child outlived its parent"


def test_stop_group_ends_the_whole_tree(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    proc = start_child(["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"])
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    stop_group(proc, grace_s=2)
    assert proc.returncode is not None and proc.returncode < 0
    assert _gone_within(grandchild, 10)


def test_group_signal_never_reaches_us():
    proc = start_child([sys.executable, "-c", "import time; time.sleep(0.2)"])
    assert os.getpgid(proc.pid) != os.getpgid(0)
    stop_group(proc)
    assert signal.getsignal(signal.SIGTERM) is not None  # we are still here
