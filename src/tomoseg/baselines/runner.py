"""The skeleton every baseline run shares; `membrain.py` and `tardis.py` fill in the tool's own step.

`run_baseline` checks the input, the checkpoint (`checkpoints.verify_checkpoint`: nothing unpickles a file
that may carry code) and tool environment, gives the tool step a private working
directory, then stores what the step returns (scores, mask, the tool's log, optionally its raw outputs),
the GPU record and `provenance.json`, each written atomically, provenance last. A job only succeeds when
the expected files exist, are readable and have the input's shape: both tools can exit 0 after failing.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.baselines.checkpoints import checkpoint_marker, checkpoint_refused, verify_checkpoint
from tomoseg.baselines.driver import (
    PINNED_VERSIONS,
    TOOL_PACKAGES,
    BaselineError,
    tail,
    tool_python,
    workdir,
)
from tomoseg.core.errors import InputError
from tomoseg.core.io import (
    VoxelSize,
    check_outputs,
    read_header,
    read_placement,
    read_volume,
    require_writable_dir,
    sha256sum,
    write_json,
    write_volume,
)
from tomoseg.core.provenance import provenance_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineJob:
    """One tool's run on one tomogram: the checked input, checkpoint (and verdict), tool Python, parameters."""

    tool: str
    tomogram: Path
    shape: tuple[int, int, int]
    voxel_size: VoxelSize
    checkpoint: Path
    python: Path
    parameters: dict[str, Any]
    trust: dict[str, Any] = field(default_factory=dict)

    def refuse_if_told(self, result: dict[str, Any]) -> None:
        """Raise InputError when the tool environment's weights-only reading refused the checkpoint."""
        if result.get("checkpoint_refused"):
            raise checkpoint_refused(self.tool, self.checkpoint, result["checkpoint_refused"])


@dataclass
class ToolOutput:
    """What a tool step hands back: the arrays to store, the driver result behind them, its provenance fields."""

    scores: np.ndarray
    mask: np.ndarray
    result: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)


Parameters = Callable[[Path, VoxelSize], dict[str, Any]]
"""(tomogram, voxel size) -> the tool's parameters as recorded; raises InputError before any work starts."""
Step = Callable[[BaselineJob, Path], ToolOutput]
"""(job, working directory) -> the tool's output, read and checked."""
AfterStep = Callable[[BaselineJob, Path, Path], dict[str, Any]]
"""(job, working directory, output folder) -> more provenance fields; runs after the outputs are stored."""


def read_output(path: str | None, what: str, tool: str, result: dict[str, Any]) -> tuple[np.ndarray, Any]:
    """A tool output as an array; a missing or unreadable file is a BaselineError with the tool's message."""
    if not path:
        raise BaselineError(
            f"{tool} exited {result.get('returncode')} but wrote no {what}"
            + (f"; the tool reported:\n{result['tool_error'].strip()}" if result.get("tool_error") else "")
            + f"\nlast output:\n{tail(result['log'])}"
        )
    try:
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False), None
        return read_volume(path)
    except (InputError, ValueError, OSError) as err:
        raise BaselineError(f"{tool} wrote an unreadable {what} ({err})") from None


def check_shape(array: np.ndarray, job: BaselineJob, what: str) -> None:
    """Refuse an output whose shape is not the input's: the tool changed the axis order or size."""
    if array.shape != tuple(job.shape):
        raise BaselineError(
            f"{job.tool}: {what} has shape {array.shape} but the input {job.tomogram} has {tuple(job.shape)} "
            "(Z, Y, X); the tool changed the axis order or size, refusing to store it"
        )


def write_gpu_json(path: str | os.PathLike | None, result: dict[str, Any]) -> dict[str, Any]:
    """The device and peak GPU memory of a driver run, written to `path` if given (the benchmark's record)."""
    on_cpu = result.get("device", "cpu") == "cpu"
    record = {
        "device": result.get("device", "cpu"),
        "gpu_name": result.get("gpu_name"),
        "peak_gpu_memory_mb": None if on_cpu else result.get("peak_gpu_memory_mb"),
        "sampler": result.get("gpu_sampler"),
        "samples": result.get("gpu_samples", 0),
    }
    if path:
        write_json(path, record)
    return record


def tool_record(tool: str, result: dict[str, Any], python: Path) -> dict[str, Any]:
    """The tool's installed and pinned versions as provenance; a version other than the pinned one is logged."""
    version = result.get("tool_version")
    if version != PINNED_VERSIONS[tool]:
        log.warning("%s %s found, tomoseg pins %s", TOOL_PACKAGES[tool], version, PINNED_VERSIONS[tool])
    return {
        "name": TOOL_PACKAGES[tool],
        "version": version,
        "pinned_version": PINNED_VERSIONS[tool],
        "torch": result.get("torch_version"),
        "python": str(python),
    }


def checkpoint_record(ckpt: Path, trust: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint as provenance: path, sha256, size, tomoseg's marker and how it was trusted."""
    return {
        "path": str(ckpt),
        "sha256": sha256sum(ckpt),
        "bytes": ckpt.stat().st_size,
        "marker": checkpoint_marker(ckpt),
        "trust": (trust or {}).get("trust"),
    }


def is_untrained(untrained: bool | None, ckpt: Path) -> bool:
    """Whether the weights are random: the caller's word, or'ed with a tomoseg marker saying so."""
    marked = bool(checkpoint_marker(ckpt).get("untrained", False))
    return marked if untrained is None else bool(untrained) or marked


def keep_files(files: dict[str, str], dest: Path) -> dict[str, str]:
    """Copy the tool's own output files (not our .npy side files) to `dest`, for comparison by hand."""
    dest.mkdir(parents=True, exist_ok=True)
    kept = {}
    for key, src in files.items():
        if src and Path(src).exists() and not src.endswith(".npy"):
            target = dest / Path(src).name
            shutil.copyfile(src, target)
            kept[key] = str(target)
    return kept


def _provenance(
    job: BaselineJob, output: ToolOutput, extra: dict[str, Any], settings: str, untrained: bool | None
) -> dict[str, Any]:
    result = output.result
    return provenance_record(
        job.tool,
        parameters=job.parameters,
        inputs={"tomogram": str(job.tomogram)},
        packages=("tomoseg", "numpy", "mrcfile"),
        method=job.tool,
        untrained=is_untrained(untrained, job.checkpoint),
        settings=settings,
        tool=tool_record(job.tool, result, job.python),
        checkpoint=checkpoint_record(job.checkpoint, job.trust),
        command=result.get("command"),
        command_line=shlex.join(result.get("command") or []),
        driver_command=result["driver_command"],
        device=result.get("device"),
        runtime_s=result["runtime_s"],
        shape=list(job.shape),
        voxel_size_zyx=list(job.voxel_size),
        **output.provenance,
        **extra,
    )


def run_baseline(
    tool: str,
    tomogram: str | os.PathLike,
    out_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    python: str | os.PathLike | None,
    *,
    parameters: Parameters,
    step: Step,
    scores_name: str,
    after: AfterStep | None = None,
    settings: str = "tool defaults",
    untrained: bool | None = None,
    gpu_json: str | os.PathLike | None = None,
    keep_tool_outputs: bool = False,
    allow_unverified_checkpoint: bool = False,
) -> dict[str, Any]:
    """Run one tool's `step` on one tomogram and store `<scores_name>.mrc`, `mask.mrc`, its log and provenance."""
    tomogram, out = Path(tomogram).resolve(), Path(out_dir)
    names = (f"{scores_name}.mrc", "mask.mrc", "tool.log", "provenance.json")
    if (
        out.exists() or out.is_symlink()
    ):  # a file in the way or a read-only folder: one line, before anything runs
        require_writable_dir(out)
    check_outputs([out / name for name in names], [tomogram, checkpoint])
    shape, _, voxel_size = read_header(tomogram)
    trust = verify_checkpoint(tool, checkpoint, allow_unverified_checkpoint)
    ckpt = Path(checkpoint or "").resolve()
    py = tool_python(tool, python)
    job = BaselineJob(tool, tomogram, shape, voxel_size, ckpt, py, parameters(tomogram, voxel_size), trust)
    with workdir(out) as work:
        output = step(job, work)
        placement = read_placement(tomogram)  # the tool's own files may not carry it: the tomogram's
        write_volume(out / f"{scores_name}.mrc", output.scores, voxel_size, placement=placement)
        write_volume(out / "mask.mrc", output.mask, voxel_size, placement=placement)
        shutil.copyfile(output.result["log"], out / "tool.log")
        kept = keep_files(output.result["outputs"], out / "tool") if keep_tool_outputs else {}
        # After the copies above: a second tool run may overwrite the first run's files in `work`.
        extra = after(job, work, out) if after else {}
        extra.update(tool_outputs=kept, gpu=write_gpu_json(gpu_json, output.result))
        record = _provenance(job, output, extra, settings, untrained)
        write_json(out / "provenance.json", record)
    for name in (f"{scores_name}.mrc", "mask.mrc", "tool.log", "provenance.json"):
        log.info("wrote %s%s", out / name, " (untrained checkpoint)" if record.get("untrained") else "")
    return record
