"""Baseline checkpoints: where the published weights are, the checks before a tool sees one, tiny random ones.

A checkpoint is unpickled by the tool, and unpickling can run code, so `verify_checkpoint` decides first
(docs/security.md): a digest the authors published (`published_checkpoints.json`) is trusted as it is;
any other file must be a torch.save archive whose pickle names no class beyond tensors, plain containers
and FORMAT_CLASSES, and is then read as data again inside the tool's environment
(`toolscripts/checkpoint_guard.py`) with every load of the tool forced to weights-only. Anything else is
refused unless the site sets `allow_unverified_checkpoint` for that tool.

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

PUBLISHED_DIGESTS = Path(__file__).resolve().with_name("published_checkpoints.json")
"""sha256 digests the tools' authors publish for their weights (none so far: the lists are empty)."""

FORMAT_CLASSES: dict[str, tuple[str, ...]] = {
    # Lightning < 2 stored hyper_parameters as an AttributeDict (a dict subclass); Lightning logs a
    # callback's monitored value as a numpy scalar when the metric was one.
    "membrain": (
        "lightning_fabric.utilities.data.AttributeDict",
        "pytorch_lightning.utilities.parsing.AttributeDict",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.dtype",
    ),
    # {"model_struct_dict": plain settings, "model_state_dict": tensors}: nothing beyond torch's own.
    "tardis": (),
}
"""Classes besides tensors and plain containers that a tool's checkpoint format holds: the allow-list."""

TRUST_PUBLISHED = "published digest"
TRUST_INSPECTED = "read as data"
TRUST_UNVERIFIED = "unverified (site opt-in)"

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


def published_digests(tool: str) -> dict[str, str]:
    """The published sha256 digests of `tool`'s weights, each with where it was published."""
    listed = read_json(PUBLISHED_DIGESTS).get(tool, [])
    return {entry["sha256"].lower(): entry.get("source", "") for entry in listed}


def _unsafe_globals(tool: str, ckpt: Path) -> list[str]:
    """Classes/functions the checkpoint's pickle names beyond torch's own and FORMAT_CLASSES (static, runs nothing)."""
    import torch

    try:
        named = torch.serialization.get_unsafe_globals_in_checkpoint(ckpt)
    except Exception as err:  # noqa: BLE001 - not a zip archive, no data.pkl, a corrupt pickle ...
        raise InputError(
            f"{ckpt}: not a PyTorch checkpoint that tomoseg can read as data ({type(err).__name__}: {err}); "
            f"a {tool} checkpoint is a torch.save archive"
        ) from None
    return sorted(set(named) - set(FORMAT_CLASSES[tool]))


def verify_checkpoint(
    tool: str, path: str | os.PathLike | None, allow_unverified: bool = False
) -> dict[str, Any]:
    """Decide whether `tool` may be given the checkpoint, before any tool runs; the verdict is provenance.

    Published digest: trusted. Otherwise the file must name no class beyond FORMAT_CLASSES (checked here
    without unpickling, and again weights-only inside the tool's environment) or the site must have set
    `allow_unverified_checkpoint`; else InputError.
    """
    ckpt = require_checkpoint(tool, path)
    digest = sha256sum(ckpt)
    published = published_digests(tool)
    if digest in published:
        return {"trust": TRUST_PUBLISHED, "sha256": digest, "source": published[digest]}
    if allow_unverified:
        log.warning(
            "%s: %s checkpoint not verified (allow_unverified_checkpoint is set): the tool unpickles it, "
            "which runs any code it carries",
            ckpt,
            tool,
        )
        return {"trust": TRUST_UNVERIFIED, "sha256": digest}
    unsafe = _unsafe_globals(tool, ckpt)
    if unsafe:
        raise InputError(
            f"{ckpt}: {tool} checkpoint refused: its pickle names {', '.join(unsafe[:8])}"
            f"{' ...' if len(unsafe) > 8 else ''}, which a {tool} checkpoint does not hold and unpickling "
            f"could run as code. Use the published weights, or, only for a file you trust, set "
            f"`baselines: {tool}: allow_unverified_checkpoint: true` (--allow-unverified-checkpoint); "
            "see docs/security.md"
        )
    return {"trust": TRUST_INSPECTED, "sha256": digest, "allowed_classes": list(FORMAT_CLASSES[tool])}


def checkpoint_refused(tool: str, ckpt: Path, reason: str) -> InputError:
    """The error for a checkpoint that the tool environment's weights-only reading refused."""
    return InputError(
        f"{ckpt}: {tool} checkpoint refused when read as data in the tool's environment: {reason}. "
        f"Only for a file you trust: `baselines: {tool}: allow_unverified_checkpoint: true` "
        "(--allow-unverified-checkpoint); see docs/security.md"
    )


def trust_flags(tool: str, verdict: dict[str, Any]) -> list[str]:
    """The driver options that carry the verdict: read the checkpoint as data, or hand it over as it is."""
    if verdict["trust"] == TRUST_INSPECTED:
        return ["--checkpoint-trust", "inspect", *(f"--allow-class={name}" for name in FORMAT_CLASSES[tool])]
    return ["--checkpoint-trust", "trusted"]


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
    log.info(
        "wrote %s: tiny untrained %s checkpoint (%d parameters)", target, tool, marker["parameters"] or -1
    )
    log.info("wrote %s", _marker_path(target))
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
