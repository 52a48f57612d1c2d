"""`tomoseg make-baseline-checkpoints` and `tomoseg baseline {membrain,tardis}`: the baselines by hand.

A failing tool raises ToolError (exit status 1), a bad input InputError (2); `tomoseg.cli` reports both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoseg.baselines.checkpoints import make_baseline_checkpoints
from tomoseg.baselines.membrain import MEMBRAIN_DEFAULTS, run_membrain
from tomoseg.baselines.tardis import TARDIS_DEFAULTS, run_tardis


def _bool(text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _run_checkpoints(a: argparse.Namespace) -> int:
    make_baseline_checkpoints(a.out, a.membrain_python, a.tardis_python, tuple(a.tools), a.seed)
    return 0


def _run_membrain(a: argparse.Namespace) -> int:
    run_membrain(
        a.tomogram, a.out, a.checkpoint, a.python,
        sliding_window_size=a.sliding_window_size,
        test_time_augmentation=a.test_time_augmentation,
        segmentation_threshold=a.segmentation_threshold,
        settings=a.settings,
        gpu_json=a.gpu_json,
        allow_unverified_checkpoint=a.allow_unverified_checkpoint,
    )  # fmt: skip
    return 0


def _run_tardis(a: argparse.Namespace) -> int:
    run_tardis(
        a.tomogram, a.out, a.checkpoint, a.python,
        pixel_size=a.pixel_size,
        patch_size=a.patch_size,
        rotate=a.rotate,
        normalize_px=a.normalize_px,
        threshold=a.threshold,
        device=a.device,
        tool_mask=a.tool_mask,
        settings=a.settings,
        gpu_json=a.gpu_json,
        allow_unverified_checkpoint=a.allow_unverified_checkpoint,
    )  # fmt: skip
    return 0


def _add_checkpoints(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-baseline-checkpoints",
        help="make tiny randomly initialised checkpoints of Membrain-Seg's and TARDIS's real architectures (untrained)",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="folder for membrain_tiny.ckpt and tardis_tiny.pth"
    )
    p.add_argument(
        "--membrain-python",
        default="venvs/membrain/bin/python",
        help="Python of the Membrain-Seg environment",
    )
    p.add_argument(
        "--tardis-python", default="venvs/tardis/bin/python", help="Python of the TARDIS environment"
    )
    p.add_argument(
        "--tools",
        nargs="+",
        choices=("membrain", "tardis"),
        default=["membrain", "tardis"],
        help="which tools",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the initial weights")
    p.set_defaults(func=_run_checkpoints)


def _add_common(p: argparse.ArgumentParser, outputs: str, python: str, env_name: str) -> None:
    p.add_argument("tomogram", type=Path, help="input tomogram (MRC)")
    p.add_argument(
        "--out", type=Path, required=True, help=f"output folder ({outputs}, mask.mrc, provenance.json)"
    )
    p.add_argument("--checkpoint", type=Path, required=True, help=f"{env_name} checkpoint")
    p.add_argument(
        "--allow-unverified-checkpoint",
        action="store_true",
        help="hand a checkpoint that is neither published nor readable as data to the tool as it is "
        "(the tool unpickles it, which runs any code it carries: only for files you trust; docs/security.md)",
    )
    p.add_argument("--python", default=python, help=f"Python of the {env_name} environment")


def _add_labels(p: argparse.ArgumentParser) -> None:
    p.add_argument("--settings", default="tool defaults", help="label recorded in provenance")
    p.add_argument("--gpu-json", type=Path, help="write device and peak GPU memory here")


def _add_membrain(tools: argparse._SubParsersAction) -> None:
    m = tools.add_parser("membrain", help="Membrain-Seg 0.0.10 with its defaults unless told otherwise")
    _add_common(m, "scores.mrc", "venvs/membrain/bin/python", "Membrain-Seg")
    m.add_argument(
        "--sliding-window-size",
        type=int,
        default=MEMBRAIN_DEFAULTS["sliding_window_size"],
        help="sliding-window edge in voxels (a multiple of 32)",
    )
    m.add_argument(
        "--test-time-augmentation",
        type=_bool,
        default=True,
        help="true or false: the tool's test-time augmentation",
    )
    m.add_argument("--segmentation-threshold", type=float, default=0.0, help="mask.mrc = logits > this")
    _add_labels(m)
    m.set_defaults(func=_run_membrain)


def _add_tardis(tools: argparse._SubParsersAction) -> None:
    t = tools.add_parser(
        "tardis", help="TARDIS 0.3.36 membrane model with its defaults unless told otherwise"
    )
    _add_common(t, "probabilities.mrc", "venvs/tardis/bin/python", "TARDIS")
    t.add_argument("--pixel-size", type=float, help="Angstrom per pixel (default: the MRC header)")
    t.add_argument(
        "--patch-size", type=int, default=TARDIS_DEFAULTS["patch_size"], help="patch edge in voxels"
    )
    t.add_argument(
        "--rotate", type=_bool, default=True, help="true or false: average 4 rotations (the tool's)"
    )
    t.add_argument(
        "--normalize-px", type=float, help="rescale to this pixel size (default: the tool's, 15 A)"
    )
    t.add_argument(
        "--threshold",
        type=float,
        default=TARDIS_DEFAULTS["threshold"],
        help="mask.mrc = probabilities >= this",
    )
    t.add_argument("--device", default="auto", help="auto, cpu or a GPU index")
    t.add_argument(
        "--tool-mask", action="store_true", help="also run the tool's own thresholding (tool_mask.mrc)"
    )
    _add_labels(t)
    t.set_defaults(func=_run_tardis)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `make-baseline-checkpoints` and `baseline {membrain,tardis}` sub-commands."""
    _add_checkpoints(sub)
    b = sub.add_parser(
        "baseline", help="segment one tomogram with Membrain-Seg or TARDIS (in its own environment)"
    )
    tools = b.add_subparsers(dest="tool", required=True, metavar="TOOL")
    _add_membrain(tools)
    _add_tardis(tools)
