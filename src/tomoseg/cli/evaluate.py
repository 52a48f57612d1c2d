"""`tomoseg evaluate`: Dice, IoU, precision, recall and (with scores) a score histogram and AUPRC."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tomoseg.core.errors import InputError
from tomoseg.evaluation.metrics import DEFAULT_THRESHOLDS, SCORE_KINDS, evaluate_files

log = logging.getLogger(__name__)


def _run(a: argparse.Namespace) -> int:
    if (a.scores is None) != (a.score_kind is None):
        raise InputError("--scores and --score-kind go together")
    record = evaluate_files(
        a.pred,
        a.truth,
        a.json,
        scores=a.scores,
        score_kind=a.score_kind,
        method=a.method,
        tomo=a.tomo,
        thresholds=a.thresholds,
    )
    summary = ", ".join(
        f"{k}={record[k]:.4f}" for k in ("dice", "iou", "precision", "recall", "auprc") if k in record
    )
    log.info("%s: %s", a.json, summary)
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
