"""`tomoseg runs-sheet`: a runs sheet of the tomograms in a folder, with their ground truth where names pair up."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tomoseg.core.errors import InputError

log = logging.getLogger(__name__)
SPLITS = ("test", "train", "val", "robustness")


def _run(a: argparse.Namespace) -> int:
    from tomoseg.acquisition.local import folder_rows
    from tomoseg.core.runsheet import write_runs_sheet

    if a.out.exists() and not a.force:
        raise InputError(f"{a.out}: exists; pass --force to replace it")
    rows = folder_rows(a.folder, a.truth, a.split)
    write_runs_sheet(a.out, rows)
    paired = sum(1 for r in rows if r["truth"] == "local")
    log.info("wrote %s: %d tomograms, %d with ground truth (split %s)", a.out, len(rows), paired, a.split)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `runs-sheet` sub-command."""
    p = sub.add_parser(
        "runs-sheet",
        help="write a runs sheet of the tomograms in a folder (local rows), pairing ground truth by name",
        description="One local row per volume in FOLDER (.mrc, .rec, .map, .st, .zarr), keyed by its name. "
        "A volume named NAME_gt (or _truth, _groundtruth, _ground_truth, _labels, _label, _mask, _membranes, "
        "_seg) beside NAME, or NAME / NAME_gt in --truth DIR, is NAME's ground truth (truth = local; shapes "
        "checked). Paths are written absolute. Use the sheet as the config's `runs` (docs/formats.md).",
    )
    p.add_argument("folder", type=Path, help="folder of tomograms")
    p.add_argument("--truth", type=Path, default=None, metavar="DIR", help="folder of ground truths")
    p.add_argument("--split", choices=SPLITS, default="test", help="the rows' split (default test)")
    p.add_argument("--out", type=Path, required=True, metavar="SHEET", help="runs sheet to write (.tsv)")
    p.add_argument("--force", action="store_true", help="replace SHEET when it exists")
    p.set_defaults(func=_run)
