"""Issue 13: after `kill -9` of Snakemake while a baseline tool runs, nothing of the job keeps running.

The chain is the real one: Snakemake runs a workflow script (`log_to`: dies with Snakemake), which runs a
driver through `run_driver` (own process group, dies with the script), whose tool is started the way the
driver scripts start theirs (`checkpoint_guard.die_with_parent`). A stand-in tool sleeps instead of
segmenting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tomoseg.baselines.driver import TOOLSCRIPTS

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux"
)
SRC = Path(__file__).resolve().parents[2] / "src"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.workflow
def test_kill_9_of_snakemake_stops_the_tool(tmp_path):
    pids = tmp_path / "pids"
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(
            f"""
            import os, subprocess, sys, time
            sys.path.insert(0, {str(TOOLSCRIPTS)!r})
            from checkpoint_guard import die_with_parent
            tool = subprocess.Popen(["sleep", "300"], preexec_fn=die_with_parent())
            with open({str(pids)!r}, "a") as f:
                f.write(f"driver {{os.getpid()}}\\ntool {{tool.pid}}\\n")
            tool.wait()
            """
        )
    )
    (tmp_path / "job.py").write_text(
        textwrap.dedent(
            f"""
            import os, sys
            from pathlib import Path
            from tomoseg.baselines.driver import run_driver
            from tomoseg.core.runlog import log_to
            log_to(snakemake.log[0])
            with open({str(pids)!r}, "a") as f:
                f.write(f"script {{os.getpid()}}\\n")
            work = Path(snakemake.output[0]).parent / "work"
            work.mkdir(parents=True)
            run_driver([sys.executable, {str(driver)!r}, "--result", str(work / "r.json")], work)
            """
        )
    )
    (tmp_path / "Snakefile").write_text(
        'rule tool:\n    output: "out/done.txt"\n    log: "tool.log"\n    script: "job.py"\n'
    )
    snakemake = Path(sys.executable).with_name("snakemake")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen(
        [
            str(snakemake),
            "--cores",
            "1",
            "--snakefile",
            str(tmp_path / "Snakefile"),
            "--directory",
            str(tmp_path),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while "tool" not in (pids.read_text() if pids.exists() else ""):
            assert proc.poll() is None and time.monotonic() < deadline, "the job never started its tool"
            time.sleep(0.1)
        started = dict(line.split() for line in pids.read_text().splitlines())
        assert all(_alive(int(pid)) for pid in started.values())
        os.kill(proc.pid, signal.SIGKILL)  # Snakemake alone, as a crash or an impatient user would
        proc.wait()
        deadline = time.monotonic() + 20
        while any(_alive(int(pid)) for pid in started.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = {name: pid for name, pid in started.items() if _alive(int(pid))}
        assert not survivors, f"left running after kill -9 of Snakemake: {survivors}"
    finally:
        for pid in (
            dict(line.split() for line in pids.read_text().splitlines()) if pids.exists() else {}
        ).values():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
