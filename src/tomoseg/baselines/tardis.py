"""TARDIS as a baseline: `tardis_mem` in its own environment, probabilities = its CNN output, mask = >= threshold."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.baselines.checkpoints import trust_flags
from tomoseg.baselines.driver import TOOLSCRIPTS, BaselineError, run_driver, stage_input
from tomoseg.baselines.runner import BaselineJob, ToolOutput, check_shape, read_output, run_baseline
from tomoseg.core.errors import InputError
from tomoseg.core.io import VoxelSize, read_placement, write_volume

TARDIS_DEFAULTS: dict[str, Any] = {"patch_size": 128, "rotate": True, "normalize_px": None, "threshold": 0.25}
"""`tardis_mem` defaults (0.3.36): 128 patches, 4 rotations, rescale to 15 A (None = tool default), CNN threshold 0.25."""

MASK_RULE = "probabilities >= {} (no border zeroed; the tool's own mask zeroes a ~1% X/Y border)"


def _parameters(
    pixel_size: float | None,
    patch_size: int,
    rotate: bool,
    normalize_px: float | None,
    device: str,
    tomogram: Path,
    voxel_size: VoxelSize,
) -> dict[str, Any]:
    # The MRC header stores float32 (13.48 reads back as 13.47999954...); TARDIS itself rounds to 3 decimals.
    px = float(pixel_size) if pixel_size else round(float(voxel_size[2]), 4)
    if not px > 0:
        raise InputError(
            f"{tomogram}: no pixel size in the MRC header; TARDIS needs it (set baselines: tardis: pixel_size)"
        )
    return {
        "pixel_size": px,
        "patch_size": int(patch_size),
        "rotate": bool(rotate),
        "normalize_px": normalize_px,
        # -ct 0 is the only way the CLI writes its probability map; the mask is ours (see docs/baselines.md).
        "cnn_threshold": "0",
        "output_format": "mrc_None",
        "device": device,
    }


def _drive(job: BaselineJob, work: Path, cnn_threshold: str, name: str, log_name: str) -> dict[str, Any]:
    """One `tardis_mem` run through the driver; `name` and `log_name` keep a second run's files apart."""
    flags = job.parameters
    command = [
        str(job.python), str(TOOLSCRIPTS / "tardis_tool.py"), "run",
        "--input", str(stage_input(job.tomogram, work)), "--checkpoint", str(job.checkpoint),
        "--pixel-size", repr(flags["pixel_size"]), "--cnn-threshold", cnn_threshold,
        "--patch-size", str(flags["patch_size"]), "--rotate", str(int(flags["rotate"])),
        "--device", flags["device"],
    ]  # fmt: skip
    if flags["normalize_px"] is not None:
        command += ["--normalize-px", repr(float(flags["normalize_px"]))]
    command += [*trust_flags("tardis", job.trust), "--probabilities-npy", str(work / f"{name}.npy")]
    result = run_driver([*command, "--result", str(work / f"{name}.json")], work, log_name=log_name)
    job.refuse_if_told(result)
    return result


def _segment(threshold: float, job: BaselineJob, work: Path) -> ToolOutput:
    result = _drive(job, work, "0", "probabilities", "tool.log")
    probabilities, _ = read_output(
        result["outputs"].get("probabilities"), "probability map (<stem>_CNN.tif)", "tardis", result
    )
    check_shape(probabilities, job, "probability map")
    probabilities = probabilities.astype(np.float32, copy=False)
    if not np.isfinite(probabilities).all() or probabilities.min() < 0 or probabilities.max() > 1:
        raise BaselineError("tardis wrote probabilities outside [0, 1] or non-finite values")
    mask = (probabilities >= threshold).astype(np.uint8)
    provenance = {
        "mask_rule": MASK_RULE.format(threshold),
        "checkpoint_loading": result.get("checkpoint_loading"),
    }
    return ToolOutput(probabilities, mask, result, provenance)


def _own_mask(threshold: float, wanted: bool, job: BaselineJob, work: Path, out: Path) -> dict[str, Any]:
    """The tool thresholding itself, stored as tool_mask.mrc (missing when the tool writes none: empty mask)."""
    if not wanted:
        return {"tool_mask": {}}
    result = _drive(job, work, repr(float(threshold)), "tool_mask", "tool_mask.log")
    path = result["outputs"].get("semantic")
    if path:
        semantic, _ = read_output(path, "semantic mask", "tardis", result)
        check_shape(semantic, job, "semantic mask")
        mask = (semantic != 0).astype(np.uint8)
        write_volume(out / "tool_mask.mrc", mask, job.voxel_size, placement=read_placement(job.tomogram))
    return {
        "tool_mask": {
            "written": bool(path),
            "command": result.get("command"),
            "runtime_s": result["runtime_s"],
        }
    }


def run_tardis(
    tomogram: str | os.PathLike,
    out_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    python: str | os.PathLike | None = None,
    pixel_size: float | None = None,
    patch_size: int = TARDIS_DEFAULTS["patch_size"],
    rotate: bool = TARDIS_DEFAULTS["rotate"],
    normalize_px: float | None = TARDIS_DEFAULTS["normalize_px"],
    threshold: float = TARDIS_DEFAULTS["threshold"],
    device: str = "auto",
    settings: str = "tool defaults",
    untrained: bool | None = None,
    gpu_json: str | os.PathLike | None = None,
    tool_mask: bool = False,
    keep_tool_outputs: bool = False,
    allow_unverified_checkpoint: bool = False,
) -> dict[str, Any]:
    """Segment one tomogram with TARDIS; store probabilities.mrc, mask.mrc (probabilities >= threshold), provenance.

    tool_mask=True runs the tool a second time with its own threshold and stores its mask as
    tool_mask.mrc (which zeroes a ~1% X/Y border and is missing when empty), for comparison.
    allow_unverified_checkpoint=True hands a checkpoint that is neither published nor readable as data to
    the tool as it is (the tool unpickles it: only for files the site trusts; docs/security.md).
    """
    return run_baseline(
        "tardis", tomogram, out_dir, checkpoint, python,
        parameters=partial(_parameters, pixel_size, patch_size, rotate, normalize_px, device),
        step=partial(_segment, threshold), scores_name="probabilities",
        after=partial(_own_mask, threshold, tool_mask),
        settings=settings, untrained=untrained, gpu_json=gpu_json, keep_tool_outputs=keep_tool_outputs,
        allow_unverified_checkpoint=allow_unverified_checkpoint,
    )  # fmt: skip
