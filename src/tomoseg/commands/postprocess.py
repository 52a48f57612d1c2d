"""`tomoseg postprocess`: remove 26-connected components spanning fewer than N Z slices."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tomoseg.io import write_json
from tomoseg.postprocess import postprocess_file
from tomoseg.provenance import provenance_record

log = logging.getLogger(__name__)


def run_postprocess(mask: Path, out: Path, min_slices: int, provenance: Path | None = None) -> dict:
    """Post-process one mask file; optionally write a provenance record."""
    summary = postprocess_file(mask, out, min_slices)
    log.info("%s -> %s: %s", mask, out, summary)
    if provenance is not None:
        write_json(
            provenance,
            provenance_record("postprocess", {"min_slices": min_slices}, {"mask": str(mask)}, **summary),
        )
    return summary


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `postprocess` sub-command."""
    p = sub.add_parser(
        "postprocess",
        help="keep 26-connected components whose Z bounding-box span (stop - start) is >= --min-slices",
    )
    p.add_argument("mask", type=Path, help="binary mask MRC (non-zero = foreground)")
    p.add_argument("--min-slices", type=int, default=10, help="minimum Z span in slices (default 10, the paper's)")
    p.add_argument("--out", type=Path, required=True, help="output mask MRC (uint8 0/1)")
    p.set_defaults(func=lambda a: run_postprocess(a.mask, a.out, a.min_slices) and 0)
