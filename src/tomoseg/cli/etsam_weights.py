"""`tomoseg fetch-weights` and `tomoseg make-test-checkpoints`: real and tiny untrained ETSAM checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoseg.etsam.weights import ZENODO_RECORD, fetch_weights


def _make_test_checkpoints(a: argparse.Namespace) -> int:
    from tomoseg.etsam.model import make_test_checkpoints  # torch and sam2: loaded only here

    make_test_checkpoints(a.out, a.image_size)
    return 0


def _fetch_weights(a: argparse.Namespace) -> int:
    fetch_weights(a.out, a.record, progress=False if a.no_progress else None)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `fetch-weights` and `make-test-checkpoints` sub-commands."""
    p = sub.add_parser(
        "fetch-weights", help=f"download etsam_stage1_v1.pt / etsam_stage2_v1.pt (Zenodo {ZENODO_RECORD})"
    )
    p.add_argument("--out", type=Path, default=Path("resources/etsam"), help="output folder")
    p.add_argument("--record", default=ZENODO_RECORD, help="Zenodo record to download from")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (off anyway when not a terminal)"
    )
    p.set_defaults(func=_fetch_weights)

    q = sub.add_parser(
        "make-test-checkpoints", help="write tiny randomly initialised (untrained) ETSAM checkpoints"
    )
    q.add_argument(
        "--out", type=Path, required=True, help="output folder (etsam_stage1/2 checkpoints and sidecar JSONs)"
    )
    q.add_argument("--image-size", type=int, default=128, help="model image size, a multiple of 32")
    q.set_defaults(func=_make_test_checkpoints)
