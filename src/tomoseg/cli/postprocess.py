"""`tomoseg postprocess`: remove 26-connected components spanning fewer than N Z slices."""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(a: argparse.Namespace) -> int:
    from tomoseg.evaluation.postprocess import run_postprocess  # scipy: loaded only when it runs

    run_postprocess(a.mask, a.out, a.min_slices)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `postprocess` sub-command."""
    p = sub.add_parser(
        "postprocess",
        help="keep 26-connected components whose Z bounding-box span (stop - start) is >= --min-slices",
    )
    p.add_argument("mask", type=Path, help="binary mask MRC (non-zero = foreground)")
    p.add_argument(
        "--min-slices", type=int, default=10, help="minimum Z span in slices (default 10, the paper's)"
    )
    p.add_argument("--out", type=Path, required=True, help="output mask MRC (uint8 0/1)")
    p.set_defaults(func=_run)
