"""`tomoseg normalize`: scale a tomogram to [0, 1] the way ETSAM expects."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoseg.io import read_volume, write_json, write_volume
from tomoseg.normalize import NORMALIZATION_MODES, normalize_volume
from tomoseg.provenance import provenance_record


def run_normalize(tomogram: Path, out: Path, mode: str) -> None:
    """Normalize one MRC tomogram into `out` (float32) with a provenance record beside it."""
    volume, voxel_size = read_volume(tomogram)
    normalized = normalize_volume(volume, mode, name=str(tomogram))  # type: ignore[arg-type]
    write_volume(out, normalized, voxel_size)
    write_json(
        out.with_suffix(".json"),
        provenance_record("normalize", {"mode": mode}, {"tomogram": str(tomogram)}, shape=list(volume.shape)),
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `normalize` sub-command."""
    p = sub.add_parser("normalize", help="normalize a tomogram to [0, 1] (float32)")
    p.add_argument("tomogram", type=Path)
    p.add_argument("--out", type=Path, required=True, help="output MRC path")
    p.add_argument(
        "--mode",
        choices=NORMALIZATION_MODES,
        default="max_positive",
        help="max_positive = published ETSAM code (clip negatives, divide by max; default); minmax = paper text",
    )
    p.set_defaults(func=lambda a: run_normalize(a.tomogram, a.out, a.mode))
