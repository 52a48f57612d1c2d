"""`tomoseg make-baseline-checkpoints` and `tomoseg baseline {membrain,tardis}`: the baselines by hand."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoseg.baselines import runner as baselines


def _call(func, *args, **kwargs) -> int:
    """Run a baseline call (a failing tool raises ToolError, which the CLI maps to exit status 1)."""
    func(*args, **kwargs)
    return 0


def _bool(text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `make-baseline-checkpoints` and `baseline` sub-commands."""
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
    p.add_argument("--tools", nargs="+", choices=("membrain", "tardis"), default=["membrain", "tardis"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(
        func=lambda a: _call(
            baselines.make_baseline_checkpoints,
            a.out,
            a.membrain_python,
            a.tardis_python,
            tuple(a.tools),
            a.seed,
        )
    )

    b = sub.add_parser(
        "baseline", help="segment one tomogram with Membrain-Seg or TARDIS (in its own environment)"
    )
    tools = b.add_subparsers(dest="tool", required=True, metavar="TOOL")
    m = tools.add_parser("membrain", help="Membrain-Seg 0.0.10 with its defaults unless told otherwise")
    m.add_argument("tomogram", type=Path)
    m.add_argument(
        "--out", type=Path, required=True, help="output folder (scores.mrc, mask.mrc, provenance.json)"
    )
    m.add_argument("--checkpoint", type=Path, required=True)
    m.add_argument(
        "--python", default="venvs/membrain/bin/python", help="Python of the Membrain-Seg environment"
    )
    m.add_argument(
        "--sliding-window-size", type=int, default=baselines.MEMBRAIN_DEFAULTS["sliding_window_size"]
    )
    m.add_argument("--test-time-augmentation", type=_bool, default=True)
    m.add_argument("--segmentation-threshold", type=float, default=0.0)
    m.add_argument("--settings", default="tool defaults", help="label recorded in provenance")
    m.add_argument("--gpu-json", type=Path, help="write device and peak GPU memory here")
    m.set_defaults(
        func=lambda a: _call(
            baselines.run_membrain,
            a.tomogram,
            a.out,
            a.checkpoint,
            a.python,
            sliding_window_size=a.sliding_window_size,
            test_time_augmentation=a.test_time_augmentation,
            segmentation_threshold=a.segmentation_threshold,
            settings=a.settings,
            gpu_json=a.gpu_json,
        )  # fmt: skip
    )
    t = tools.add_parser(
        "tardis", help="TARDIS 0.3.36 membrane model with its defaults unless told otherwise"
    )
    t.add_argument("tomogram", type=Path)
    t.add_argument(
        "--out", type=Path, required=True, help="output folder (probabilities.mrc, mask.mrc, provenance.json)"
    )
    t.add_argument("--checkpoint", type=Path, required=True)
    t.add_argument("--python", default="venvs/tardis/bin/python", help="Python of the TARDIS environment")
    t.add_argument("--pixel-size", type=float, help="Angstrom per pixel (default: the MRC header)")
    t.add_argument("--patch-size", type=int, default=baselines.TARDIS_DEFAULTS["patch_size"])
    t.add_argument("--rotate", type=_bool, default=True)
    t.add_argument(
        "--normalize-px", type=float, help="rescale to this pixel size (default: the tool's, 15 A)"
    )
    t.add_argument("--threshold", type=float, default=baselines.TARDIS_DEFAULTS["threshold"])
    t.add_argument("--device", default="auto", help="auto, cpu or a GPU index")
    t.add_argument(
        "--tool-mask", action="store_true", help="also run the tool's own thresholding (tool_mask.mrc)"
    )
    t.add_argument("--settings", default="tool defaults", help="label recorded in provenance")
    t.add_argument("--gpu-json", type=Path, help="write device and peak GPU memory here")
    t.set_defaults(
        func=lambda a: _call(
            baselines.run_tardis,
            a.tomogram,
            a.out,
            a.checkpoint,
            a.python,
            pixel_size=a.pixel_size,
            patch_size=a.patch_size,
            rotate=a.rotate,
            normalize_px=a.normalize_px,
            threshold=a.threshold,
            device=a.device,
            tool_mask=a.tool_mask,
            settings=a.settings,
            gpu_json=a.gpu_json,
        )  # fmt: skip
    )
