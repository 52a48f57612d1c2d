"""`tomoseg threshold`: a new mask from stored logits at another threshold, with provenance (no ground truth)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoseg.core.outformat import OUT_FORMAT_HELP, OUT_FORMATS, convert_outputs
from tomoseg.evaluation.metrics import SCORE_KINDS


def _run(a: argparse.Namespace) -> int:
    from tomoseg.evaluation.threshold import rethreshold_file

    rethreshold_file(a.logits, a.out, a.threshold, a.score_kind, a.provenance)
    convert_outputs({a.out: True}, a.out_format)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `threshold` sub-command."""
    p = sub.add_parser(
        "threshold",
        help="rewrite a mask from stored logits at a new threshold (mask = logit > T), with provenance",
        description="Write MASK (uint8 0/1, the logits' voxel size and placement) and MASK's "
        "<name>.provenance.json (the logits' path and sha256, the threshold, the untrained flag carried from "
        "the logits' provenance), and log the mask fraction. Choose T with the report's threshold explorer. "
        "See docs/evaluation.md.",
    )
    p.add_argument("logits", type=Path, help="stored logits or scores MRC (e.g. stage2_logits.mrc)")
    p.add_argument(
        "--threshold", type=float, required=True, metavar="T", help="logit threshold: mask = logit > T"
    )
    p.add_argument("--out-format", choices=OUT_FORMATS, default="mrc", help=OUT_FORMAT_HELP)
    p.add_argument("--out", type=Path, required=True, metavar="MASK", help="output mask MRC")
    p.add_argument(
        "--score-kind",
        choices=SCORE_KINDS,
        default="logits",
        help="logits: compared as stored; etsam-logits: raised to minus their maximum first (as in AUPRC); "
        "probabilities: compared as logits, i.e. p > sigmoid(T)",
    )
    p.add_argument(
        "--provenance",
        type=Path,
        help="the logits' provenance record, for the untrained flag (default: <name>.provenance.json or "
        "provenance.json beside the logits, if there is one)",
    )
    p.set_defaults(func=_run)
