"""Baseline checkpoints: where the published weights are, the check that one is there, and tiny random ones.

Tiny checkpoints (tests, demo) have each tool's real architecture with small widths and random weights,
and carry a sidecar marker `<checkpoint>.tomoseg.json` saying they are untrained.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from tomoseg.baselines.driver import (
    TOOL_PACKAGES,
    TOOLSCRIPTS,
    BaselineError,
    run_driver,
    tool_python,
    workdir,
)
from tomoseg.core.errors import InputError
from tomoseg.core.io import read_json, sha256sum, write_json

log = logging.getLogger(__name__)

WEIGHTS_HELP = {
    "membrain": (
        "Membrain-Seg's trained weights are published by its authors on Google Drive (linked from the "
        "membrain-seg README): the recommended model https://drive.google.com/file/d/1hruug1GbO4V8C4bkE5DZJeybDyOxZ7PX "
        "and MemBrain_seg_v10_alpha.ckpt https://drive.google.com/file/d/1tSQIz_UCsQZNfyHg0RxD-4meFgolszo8 . "
        "Download one and put it at {path}, or point `baselines: membrain: checkpoint:` in the config at it. "
        "For a run with random weights (demo/tests only) use `tomoseg make-baseline-checkpoints --out DIR`."
    ),
    "tardis": (
        "TARDIS's trained membrane weights are published in the tool's public S3 bucket 'tardis-weigths' as "
        "https://tardis-weigths.s3.dualstack.us-east-1.amazonaws.com/tardis_em/fnet_attn_32/membrane_3d/V_<N>/model_weights.pth "
        "(TARDIS itself caches them as ~/.tardis_em/fnet_attn_32/membrane_3d/model_weights.pth when it has internet). "
        "Download the newest V_<N> and put it at {path}, or point `baselines: tardis: checkpoint:` in the config at it. "
        "For a run with random weights (demo/tests only) use `tomoseg make-baseline-checkpoints --out DIR`."
    ),
}

TINY_CHECKPOINTS = {
    "membrain": ("membrain_tiny.ckpt", "membrain_tool.py", ["--channels", "4", "8", "16", "32", "64", "128"]),
    "tardis": ("tardis_tiny.pth", "tardis_tool.py", ["--conv-scaler", "8", "--num-conv-layers", "3"]),
}
"""File name, driver script and size options of each tool's tiny checkpoint (real architecture, small widths)."""


class MissingCheckpointError(InputError):
    """The configured checkpoint does not exist; the message says where the weights are published."""


def require_checkpoint(tool: str, path: str | os.PathLike | None) -> Path:
    """The checkpoint path if the file exists, else a MissingCheckpointError naming where to get it."""
    if not path:
        raise MissingCheckpointError(
            f"no {tool} checkpoint configured. " + WEIGHTS_HELP[tool].format(path="a path of your choice")
        )
    ckpt = Path(path)
    if not ckpt.is_file():
        raise MissingCheckpointError(
            f"{ckpt}: {tool} checkpoint not found. " + WEIGHTS_HELP[tool].format(path=ckpt)
        )
    if ckpt.stat().st_size == 0:
        raise MissingCheckpointError(
            f"{ckpt}: {tool} checkpoint is empty (0 bytes). " + WEIGHTS_HELP[tool].format(path=ckpt)
        )
    return ckpt.resolve()


def _marker_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".tomoseg.json")


def checkpoint_marker(checkpoint: Path) -> dict[str, Any]:
    """The sidecar record `<checkpoint>.tomoseg.json` written for tomoseg-made checkpoints ({} if none)."""
    sidecar = _marker_path(checkpoint)
    return read_json(sidecar) if sidecar.exists() else {}


def make_baseline_checkpoint(
    tool: str, target: str | os.PathLike, python: str | os.PathLike | None = None, seed: int = 0
) -> Path:
    """A tiny randomly initialised checkpoint of the tool's real architecture at `target`, marked untrained."""
    _, script, options = TINY_CHECKPOINTS[tool]
    py = tool_python(tool, python)
    target = Path(target)
    with workdir(target) as work:
        tmp = work / target.name
        command = [
            str(py), str(TOOLSCRIPTS / script), "make", str(tmp), "--seed", str(seed), *options,
            "--result", str(work / "result.json"),
        ]  # fmt: skip
        result = run_driver(command, work)
        if not tmp.exists() or not result.get("ok") or not result.get("check", {"ok": True}).get("ok"):
            raise BaselineError(f"making the tiny {tool} checkpoint failed: {result}")
        marker = {
            "untrained": True,
            "tool": TOOL_PACKAGES[tool],
            "tool_version": result.get("tool_version"),
            "made_by": "tomoseg make-baseline-checkpoints",
            "seed": seed,
            "parameters": result.get("parameters"),
            "architecture": result.get("structure") or {"channels": result.get("channels")},
            "sha256": sha256sum(tmp),
        }
        os.replace(tmp, target)
    write_json(_marker_path(target), marker)
    log.info("%s: tiny untrained %s checkpoint (%d parameters)", target, tool, marker["parameters"] or -1)
    return target


def make_baseline_checkpoints(
    out_dir: str | os.PathLike,
    membrain_python: str | os.PathLike | None = None,
    tardis_python: str | os.PathLike | None = None,
    tools: tuple[str, ...] = ("membrain", "tardis"),
    seed: int = 0,
) -> dict[str, Path]:
    """Tiny checkpoints of both tools in `out_dir` (membrain_tiny.ckpt, tardis_tiny.pth), for tests and the demo."""
    pythons = {"membrain": membrain_python, "tardis": tardis_python}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        tool: make_baseline_checkpoint(tool, out / TINY_CHECKPOINTS[tool][0], pythons[tool], seed)
        for tool in tools
    }
