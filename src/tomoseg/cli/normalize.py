"""`tomoseg normalize`: scale a tomogram to [0, 1] the way ETSAM expects."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoseg.core.presets import NORMALIZATION_ALIASES
from tomoseg.preprocess import NORMALIZATION_MODES, normalize_file


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `normalize` sub-command."""
    p = sub.add_parser("normalize", help="normalize a tomogram to [0, 1] (float32)")
    p.add_argument("tomogram", type=Path, help="input tomogram (MRC)")
    p.add_argument("--out", type=Path, required=True, help="output MRC path")
    p.add_argument(
        "--mode",
        choices=NORMALIZATION_MODES + tuple(NORMALIZATION_ALIASES),
        default="max_positive",
        help="max_positive = published ETSAM code (clip negatives, divide by max; upstream's "
        "min_max_positive_values); minmax = paper text; softplus_minmax = softplus, then min-max (upstream option)",
    )
    p.set_defaults(func=lambda a: normalize_file(a.tomogram, a.out, a.mode))
