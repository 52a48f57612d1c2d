"""Running one baseline driver script (`toolscripts/`) in the tool's own environment, and watching its GPU use.

Neither tool is importable here: a driver script runs under the tool environment's Python, calls the
tool's real command line and writes a JSON result. Each job gets its own working directory and HOME
(TARDIS writes next to its input and into ~), so parallel jobs never collide.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tomoseg.core.children import start_child, stop_group
from tomoseg.core.errors import InputError, ToolError
from tomoseg.core.io import read_json, write_error

log = logging.getLogger(__name__)

TOOLSCRIPTS = Path(__file__).resolve().parent / "toolscripts"
TOOL_PACKAGES = {"membrain": "membrain-seg", "tardis": "tardis-em"}
PINNED_VERSIONS = {"membrain": "0.0.10", "tardis": "0.3.36"}
"""The versions `make setup` and workflow/envs/*.yaml install; a different version is logged and recorded."""
GPU_SAMPLER = "nvidia-smi --query-compute-apps (NVML per-process), process tree, every 0.5 s"


class BaselineError(ToolError):
    """A baseline tool failed (also when it exited 0); the message carries the tool's own words."""


def tool_python(tool: str, python: str | os.PathLike | None) -> Path:
    """The Python of the tool's environment (None = this interpreter, e.g. inside a conda env with the tool)."""
    if not python:
        return Path(sys.executable)
    exe = Path(python)
    if not exe.exists():
        raise InputError(
            f"{exe}: Python of the {tool} environment not found; create it with `make baselines` "
            f"(virtual environments under venvs/) or set `baselines: {tool}: python:` in the config"
        )
    # Keep the venv's path (a venv's bin/python is a symlink to the base interpreter).
    return exe.absolute()


class GpuMemorySampler:
    """Peak GPU memory of one process tree, sampled from NVML's per-process accounting via nvidia-smi."""

    QUERY = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.available = shutil.which("nvidia-smi") is not None
        self.peak_mb: float | None = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> GpuMemorySampler:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _tree(self) -> set[int]:
        import psutil

        try:
            proc = psutil.Process(self.pid)
            return {self.pid} | {child.pid for child in proc.children(recursive=True)}
        except psutil.Error:
            return {self.pid}

    def _query(self) -> str:
        try:
            return subprocess.run(self.QUERY, capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    @staticmethod
    def _used_mb(out: str, pids: set[int]) -> float:
        used = 0.0
        for line in out.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in pids:
                with contextlib.suppress(ValueError):
                    used += float(parts[1])
        return used

    def _loop(self) -> None:
        while not self._stop.is_set():
            # Query before listing the tree: a child started between the two calls still counts.
            used = self._used_mb(self._query(), self._tree())
            self.samples += 1
            if used > 0 and (self.peak_mb is None or used > self.peak_mb):
                self.peak_mb = used
            self._stop.wait(self.interval_s)


@contextlib.contextmanager
def workdir(out_dir: Path) -> Iterator[Path]:
    """A private working directory (with its own HOME) beside the output folder, removed afterwards."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.work-", dir=out_dir.parent)).absolute()
        (work / "home").mkdir()
        (work / "in").mkdir()
    except OSError as err:  # a read-only parent folder: one line naming it, before the tool runs
        raise write_error(out_dir.parent, err, folder=True) from None
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def stage_input(tomogram: Path, work: Path) -> Path:
    """The input linked (or copied) into the job's own input folder, once: tools write next to their input."""
    staged = work / "in" / (tomogram.stem + ".mrc")
    if staged.exists():
        return staged
    try:
        staged.symlink_to(tomogram)
    except OSError:
        shutil.copyfile(tomogram, staged)
    return staged


def tool_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tool's environment: ours without Python paths of this interpreter, HOME and caches in the job."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env["MPLCONFIGDIR"] = str(home / ".matplotlib")
    env.setdefault("TERM", "dumb")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def tail(path: Path, lines: int = 40) -> str:
    """The last non-empty lines of a tool's output (progress bars' carriage returns count as line ends)."""
    if not path.exists():
        return "(no output)"
    text = path.read_text(errors="replace").replace("\r", "\n")
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _wait_sampled(proc: subprocess.Popen) -> tuple[int, GpuMemorySampler]:
    """Wait for the driver; whatever happens (interrupt, SIGTERM, error), nothing of its process group survives."""
    try:
        with GpuMemorySampler(proc.pid) as sampler:
            return proc.wait(), sampler
    finally:
        stop_group(proc)


def run_driver(
    command: list[str], work: Path, extra_env: dict[str, str] | None = None, log_name: str = "tool.log"
) -> dict[str, Any]:
    """Run a tool driver in `work` with HOME=work/home; return its JSON result plus timing and GPU peak.

    The result also carries `driver_command` and `log` (the tool's output, `work/log_name`).
    """
    log_path = work / log_name
    log.info("running: %s", shlex.join(command))
    start = time.monotonic()
    with open(log_path, "w") as handle:
        # Its own process group, killed with us (parent-death signal) and as a group by _wait_sampled.
        proc = start_child(
            command,
            cwd=work,
            env=tool_env(work / "home", extra_env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        returncode, sampler = _wait_sampled(proc)
    seconds = time.monotonic() - start
    for line in tail(log_path, 60).splitlines():
        log.info("tool| %s", line)
    result_path = Path(command[command.index("--result") + 1])
    if returncode != 0 or not result_path.exists():
        raise BaselineError(
            f"{shlex.join(command)} exited {returncode} without a result; last output:\n{tail(log_path)}"
        )
    result = read_json(result_path)
    result.update(
        driver_returncode=returncode,
        runtime_s=round(seconds, 3),
        peak_gpu_memory_mb=sampler.peak_mb,
        gpu_samples=sampler.samples,
        gpu_sampler=GPU_SAMPLER if sampler.available else None,
        driver_command=command,
        log=log_path,
    )
    return result
