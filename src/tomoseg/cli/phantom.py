"""`tomoseg phantom`: write a synthetic tomogram with membrane ground truth."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def _side(text: str) -> int:
    """A volume side length in voxels (an integer >= MIN_SIDE)."""
    from tomoseg.acquisition.phantoms import MIN_SIDE  # scipy: loaded only when making a phantom

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer number of voxels, got {text!r}") from None
    if value < MIN_SIDE:
        raise argparse.ArgumentTypeError(f"each side must be at least {MIN_SIDE} voxels, got {value}")
    return value


def _positive(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `phantom` sub-command."""
    p = sub.add_parser(
        "phantom",
        help="synthetic tomogram with membrane ground truth (tomogram.mrc, groundtruth.mrc, phantom.json)",
        description="Write tomogram.mrc (float32, membranes dark), groundtruth.mrc (uint8 0/1) and phantom.json "
        "into DIR; deterministic by seed. See docs/phantoms.md.",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--seed", type=int, required=True, metavar="N", help="random seed")
    p.add_argument(
        "--shape", type=_side, nargs=3, required=True, metavar=("Z", "Y", "X"), help="size in voxels"
    )
    p.add_argument("--voxel-size", type=_positive, default=13.48, metavar="A", help="Angstrom per voxel")
    p.add_argument(
        "--snr",
        type=_positive,
        default=0.5,
        metavar="S",
        help="signal variance / noise variance, both after the missing-wedge filter",
    )
    p.set_defaults(func=_run)


def _run(a: argparse.Namespace) -> int:
    from tomoseg.acquisition.phantoms import write_phantom

    write_phantom(a.out, seed=a.seed, shape=a.shape, voxel_size=a.voxel_size, snr=a.snr)
    return 0
