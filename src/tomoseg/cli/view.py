"""`tomoseg view`: a tomogram with its masks and logits in napari, at their physical scale and position."""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(a: argparse.Namespace) -> int:
    from tomoseg.reporting.viewing import show_in_napari, view_layers

    show_in_napari(view_layers(a.tomogram, a.mask, a.logits))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `view` sub-command."""
    p = sub.add_parser(
        "view",
        help="open a tomogram with its masks and logits in napari (pip install napari[all])",
        description="Layers: the tomogram (grey, 0.5-99.5 percentile contrast), each --logits volume "
        "(magma, additive, hidden at first) and each --mask (labels, half opaque), all scaled to Angstrom "
        "and placed by their MRC headers. See docs/viewing.md, also for IMOD and ChimeraX.",
    )
    p.add_argument("tomogram", type=Path, help="tomogram MRC")
    p.add_argument("--mask", type=Path, action="append", default=[], help="mask MRC (repeatable)")
    p.add_argument(
        "--logits", type=Path, action="append", default=[], help="logits or scores MRC (repeatable)"
    )
    p.set_defaults(func=_run)
