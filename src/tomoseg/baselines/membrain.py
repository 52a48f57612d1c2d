"""Membrain-Seg as a baseline: `membrain segment` in its own environment, scores = its logits, mask = logits > threshold."""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.baselines.checkpoints import trust_flags
from tomoseg.baselines.driver import TOOLSCRIPTS, BaselineError, run_driver, stage_input, tail
from tomoseg.baselines.runner import BaselineJob, ToolOutput, check_shape, read_output, run_baseline
from tomoseg.core.errors import InputError
from tomoseg.core.io import VoxelSize

log = logging.getLogger(__name__)

MEMBRAIN_DEFAULTS: dict[str, Any] = {
    "sliding_window_size": 160,
    "test_time_augmentation": True,
    "segmentation_threshold": 0.0,
}
"""`membrain segment` defaults (0.0.10): 160^3 window, 8-fold flip TTA, logits > 0.0."""


def _parameters(
    sliding_window_size: int,
    test_time_augmentation: bool,
    segmentation_threshold: float,
    tomogram: Path,
    voxel_size: VoxelSize,
) -> dict[str, Any]:
    if sliding_window_size % 32 or sliding_window_size < 32:
        raise InputError(
            f"membrain sliding_window_size must be a positive multiple of 32, got {sliding_window_size}"
        )
    return {
        "sliding_window_size": int(sliding_window_size),
        "test_time_augmentation": bool(test_time_augmentation),
        "segmentation_threshold": float(segmentation_threshold),
        "store_probabilities": True,
    }


def _command(job: BaselineJob, work: Path) -> list[str]:
    flags = job.parameters
    return [
        str(job.python), str(TOOLSCRIPTS / "membrain_tool.py"), "run",
        "--input", str(stage_input(job.tomogram, work)), "--checkpoint", str(job.checkpoint),
        "--out-folder", str(work / "out"),
        "--sliding-window-size", str(flags["sliding_window_size"]),
        "--test-time-augmentation", str(int(flags["test_time_augmentation"])),
        "--segmentation-threshold", repr(flags["segmentation_threshold"]),
        *trust_flags("membrain", job.trust),
        "--result", str(work / "result.json"),
    ]  # fmt: skip


def _require_all_keys(check: dict[str, Any], ckpt: Path) -> None:
    # Membrain-Seg loads with strict=False, so a missing key would silently stay random.
    if not check.get("ok"):
        raise BaselineError(
            f"{ckpt}: not every checkpoint key loads into Membrain-Seg's model (the tool would silently "
            f"ignore them): {check.get('error') or ''} missing {check.get('missing', [])[:10]} "
            f"({len(check.get('missing', []))}), unexpected {check.get('unexpected', [])[:10]} "
            f"({len(check.get('unexpected', []))}), differing {check.get('differing', [])[:10]}"
        )


def _segment(job: BaselineJob, work: Path) -> ToolOutput:
    result = run_driver(_command(job, work), work)
    job.refuse_if_told(result)
    check = result["checkpoint_check"]
    _require_all_keys(check, job.checkpoint)
    if result.get("returncode") != 0:
        raise BaselineError(
            f"membrain segment exited {result.get('returncode')}; last output:\n{tail(result['log'])}"
        )
    outputs = result["outputs"]
    scores, _ = read_output(outputs.get("scores"), "score map (<stem>_scores.mrc)", "membrain", result)
    tool_mask, _ = read_output(
        outputs.get("segmented"), "segmentation (<stem>_*_segmented.mrc)", "membrain", result
    )
    check_shape(scores, job, "score map")
    check_shape(tool_mask, job, "segmentation")
    scores = scores.astype(np.float32, copy=False)
    if not np.isfinite(scores).all():
        raise BaselineError("membrain wrote non-finite scores")
    threshold = job.parameters["segmentation_threshold"]
    mask = (scores > threshold).astype(np.uint8)
    differing = int(np.count_nonzero(mask != (tool_mask != 0)))
    if differing:
        log.warning("our mask differs from membrain's own segmentation in %d voxels", differing)
    provenance = {
        "checkpoint_check": {k: check[k] for k in ("model_keys", "checkpoint_keys", "parameters", "ok")},
        "checkpoint_loading": result.get("checkpoint_loading"),
        "mask_rule": f"scores > {threshold}",
        "tool_mask_voxels_differing": differing,
    }
    return ToolOutput(scores, mask, result, provenance)


def run_membrain(
    tomogram: str | os.PathLike,
    out_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    python: str | os.PathLike | None = None,
    sliding_window_size: int = MEMBRAIN_DEFAULTS["sliding_window_size"],
    test_time_augmentation: bool = MEMBRAIN_DEFAULTS["test_time_augmentation"],
    segmentation_threshold: float = MEMBRAIN_DEFAULTS["segmentation_threshold"],
    settings: str = "tool defaults",
    untrained: bool | None = None,
    gpu_json: str | os.PathLike | None = None,
    keep_tool_outputs: bool = False,
    allow_unverified_checkpoint: bool = False,
) -> dict[str, Any]:
    """Segment one tomogram with Membrain-Seg; store scores.mrc (logits), mask.mrc (logits > threshold), provenance.

    allow_unverified_checkpoint=True hands a checkpoint that is neither published nor readable as data to
    the tool as it is (the tool unpickles it: only for files the site trusts; docs/security.md).
    """
    parameters = partial(_parameters, sliding_window_size, test_time_augmentation, segmentation_threshold)
    return run_baseline(
        "membrain", tomogram, out_dir, checkpoint, python,
        parameters=parameters, step=_segment, scores_name="scores",
        settings=settings, untrained=untrained, gpu_json=gpu_json, keep_tool_outputs=keep_tool_outputs,
        allow_unverified_checkpoint=allow_unverified_checkpoint,
    )  # fmt: skip
