"""`tomoseg evaluate`: Dice, IoU, precision, recall and (with scores) a score histogram and AUPRC."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tomoseg.core.errors import InputError
from tomoseg.core.provenance import provenance_beside, untrained_flag
from tomoseg.evaluation.metrics import DEFAULT_THRESHOLDS, SCORE_KINDS, evaluate_files

log = logging.getLogger(__name__)


def _run(a: argparse.Namespace) -> int:
    if (a.scores is None) != (a.score_kind is None):
        raise InputError("--scores and --score-kind go together")
    provenance = provenance_beside(a.pred, a.provenance)
    untrained = untrained_flag(provenance)
    record = evaluate_files(
        a.pred,
        a.truth,
        a.json,
        scores=a.scores,
        score_kind=a.score_kind,
        method=a.method,
        tomo=a.tomo,
        thresholds=a.thresholds,
        extra={"untrained": untrained, "provenance": str(provenance) if provenance else None},
        strict_geometry=a.strict_geometry,
    )
    summary = ", ".join(
        f"{k}={record[k]:.4f}" for k in ("dice", "iou", "precision", "recall", "auprc") if k in record
    )
    log.info("wrote %s: %s%s", a.json, summary, " (untrained)" if untrained else "")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `evaluate` sub-command."""
    p = sub.add_parser(
        "evaluate", help="score a predicted mask (and optionally its scores) against ground truth"
    )
    p.add_argument("--pred", type=Path, required=True, help="predicted mask MRC (non-zero = membrane)")
    p.add_argument("--truth", type=Path, required=True, help="ground-truth mask MRC (non-zero = membrane)")
    p.add_argument("--scores", type=Path, help="per-voxel scores MRC (for AUPRC, PR curve, threshold tables)")
    p.add_argument(
        "--score-kind",
        choices=SCORE_KINDS,
        help="etsam-logits: logits below -max raised to -max, then sigmoid; logits: sigmoid; probabilities: as is",
    )
    p.add_argument(
        "--json", type=Path, required=True, help="output metrics JSON (histogram beside it: <stem>.hist.npz)"
    )
    p.add_argument(
        "--provenance",
        type=Path,
        help="the prediction's provenance record, whose untrained flag goes into the JSON and the console "
        "line (default: <name>.provenance.json or provenance.json beside --pred, if there is one)",
    )
    p.add_argument(
        "--strict-geometry",
        action="store_true",
        help="refuse (exit status 2) when prediction and truth differ in voxel size or origin; without it a "
        "warning, also recorded in the JSON as geometry_warning",
    )
    p.add_argument("--method", help="method name recorded in the JSON")
    p.add_argument("--tomo", help="tomogram key recorded in the JSON")
    p.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=list(DEFAULT_THRESHOLDS),
        help="logit thresholds for the threshold table",
    )
    p.set_defaults(func=_run)
