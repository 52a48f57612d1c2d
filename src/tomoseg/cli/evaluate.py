"""`tomoseg evaluate`: Dice, IoU, precision, recall, (with scores) a score histogram and AUPRC, and on request
plane-wise and theta-wise (orientation) metrics."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tomoseg.core.errors import InputError
from tomoseg.core.provenance import provenance_beside, untrained_flag
from tomoseg.evaluation.metrics import DEFAULT_THRESHOLDS, SCORE_KINDS, evaluate_files
from tomoseg.evaluation.orientation import DEFAULT_BINS, DEFAULT_K, ThetaOptions
from tomoseg.evaluation.planewise import EMPTY_CONVENTIONS, PlaneOptions

log = logging.getLogger(__name__)


def _run(a: argparse.Namespace) -> int:
    if (a.scores is None) != (a.score_kind is None):
        raise InputError("--scores and --score-kind go together")
    if (a.theta_map is not None or a.truth_theta is not None) and not a.theta_wise:
        raise InputError("--theta-map and --truth-theta need --theta-wise")
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
        planes=PlaneOptions(a.plane_empty) if a.plane_wise else None,
        orientation=ThetaOptions(tuple(a.theta_bins), a.theta_k, a.theta_map, a.truth_theta)
        if a.theta_wise
        else None,
    )
    summary = ", ".join(
        f"{k}={record[k]:.4f}" for k in ("dice", "iou", "precision", "recall", "auprc") if k in record
    )
    log.info("wrote %s: %s%s", a.json, summary, " (untrained)" if untrained else "")
    if a.theta_map is not None:
        log.info("wrote %s: the ground truth's θ per membrane voxel (-1 elsewhere)", a.theta_map)
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
    p.add_argument(
        "--plane-wise",
        action="store_true",
        help="also Dice/IoU/precision/recall per 2-D slice along XY, XZ and YZ, averaged per plane",
    )
    p.add_argument(
        "--plane-empty",
        choices=EMPTY_CONVENTIONS,
        default="zero",
        help="a slice where both masks are empty: zero = scores 0 (upstream ETSAM's, torchmetrics "
        "zero_division=0), skip = left out of the average, one = scores 1",
    )
    p.add_argument(
        "--theta-wise",
        action="store_true",
        help="also recall (truth normals) and precision (prediction normals) per bin of the angle θ "
        "between the membrane normal and the beam (Z) axis",
    )
    p.add_argument(
        "--theta-bins",
        type=float,
        nargs="+",
        default=list(DEFAULT_BINS),
        help="θ bin edges in degrees, rising from 0 to 90",
    )
    p.add_argument("--theta-k", type=int, default=DEFAULT_K, help="nearest voxels per normal (local PCA)")
    p.add_argument(
        "--theta-map",
        type=Path,
        help="with --theta-wise, also write the ground truth's θ per voxel (float32 MRC, -1 outside) for viewing",
    )
    p.add_argument(
        "--truth-theta",
        type=Path,
        help="with --theta-wise, read the ground truth's θ from this θ map (written by --theta-map) instead "
        "of recomputing its normals",
    )
    p.set_defaults(func=_run)
