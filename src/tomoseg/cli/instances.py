"""`tomoseg instances`: labelled 26-connected components of a mask (as Membrain-Seg's --store-connected-components)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(a: argparse.Namespace) -> int:
    # scipy: loaded only when it runs
    from tomoseg.core.provenance import own_provenance_path
    from tomoseg.evaluation.postprocess import run_instances

    run_instances(a.mask, a.out, a.min_voxels, own_provenance_path(a.out))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `instances` sub-command."""
    p = sub.add_parser(
        "instances",
        help="label the 26-connected components of a mask (1 = largest), dropping those under --min-voxels",
        description="Write a uint16 label volume (MRC mode 6, 0 = background, 1 = largest component, ties "
        "in z, y, x order of their first voxel; at most 65535 labels) and <name>.provenance.json beside it "
        "(component count and sizes).",
    )
    p.add_argument("mask", type=Path, help="binary mask MRC (non-zero = foreground)")
    p.add_argument("--out", type=Path, required=True, help="output label MRC (uint16)")
    p.add_argument(
        "--min-voxels",
        type=int,
        default=1,
        help="drop components with fewer voxels than this (default 1: keep all)",
    )
    p.set_defaults(func=_run)
