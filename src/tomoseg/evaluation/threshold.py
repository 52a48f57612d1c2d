"""Re-threshold stored logits without re-running a model or needing ground truth: mask = logit > T.

The rule is the engine's (`tomoseg.etsam.fusion.threshold`, how `mask.mrc` is made) and the threshold
explorer's (a logit threshold for every score kind: probabilities are compared as logits, etsam-logits
are first raised to minus their maximum as in the AUPRC recipe of `tomoseg.evaluation.metrics`).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.core.errors import InputError
from tomoseg.core.io import (
    check_finite_volume,
    check_outputs,
    create_volume,
    open_volume,
    read_placement,
    sha256sum,
    write_json,
)
from tomoseg.core.provenance import own_provenance_path, provenance_beside, provenance_record, untrained_flag
from tomoseg.etsam.fusion import threshold as above
from tomoseg.evaluation.metrics import SCORE_KINDS, max_of, to_logits

log = logging.getLogger(__name__)


def _as_logits(block: np.ndarray, kind: str, floor: float | None, path: Path, z: int) -> np.ndarray:
    """Logits of one Z-slab; logits stay in their stored dtype so that `> T` matches the engine's mask."""
    if kind == "probabilities":
        return to_logits(block, kind, None, path, z)
    x = np.asarray(block)
    check_finite_volume(x, path, first_slice=z)
    return np.maximum(x, x.dtype.type(floor)) if floor is not None else x


def rethreshold_file(
    logits: str | os.PathLike,
    out: str | os.PathLike,
    threshold: float,
    score_kind: str = "logits",
    provenance: str | os.PathLike | None = None,
    chunk_voxels: int = 1 << 22,
) -> dict[str, Any]:
    """Write `out` = uint8 mask of logits > `threshold` (placement kept) and `<name>.provenance.json` beside it.

    `provenance` is the logits' own record (default: the one beside them), whose `untrained` flag is carried
    over. Returns the new provenance record (with `mask_fraction`).
    """
    logits, out = Path(logits), Path(out)
    if not math.isfinite(threshold):
        raise InputError(f"{logits}: the threshold must be a finite number, got {threshold}")
    if score_kind not in SCORE_KINDS:
        raise InputError(f"{logits}: score kind must be one of {', '.join(SCORE_KINDS)}, got {score_kind!r}")
    if not logits.exists():
        raise InputError(f"{logits}: file not found")
    source = provenance_beside(logits, provenance)
    check_outputs([out, own_provenance_path(out)], [logits, source])
    untrained = untrained_flag(source)
    placement = read_placement(logits)
    marked = 0
    with open_volume(logits) as (data, voxel_size):
        shape = (int(data.shape[0]), int(data.shape[1]), int(data.shape[2]))
        chunk = max(1, chunk_voxels // (shape[1] * shape[2]))
        floor = -max_of(data, chunk) if score_kind == "etsam-logits" else None
        with create_volume(out, shape, np.uint8, voxel_size, placement) as mask:
            for z in range(0, shape[0], chunk):
                block = above(_as_logits(data[z : z + chunk], score_kind, floor, logits, z), threshold)
                mask[z : z + chunk] = block
                marked += int(np.count_nonzero(block))
    voxels = shape[0] * shape[1] * shape[2]
    record = provenance_record(
        "threshold",
        {"threshold": float(threshold), "score_kind": score_kind, "rule": "mask = logit > threshold"},
        {"logits": str(logits)},
        logits_sha256=sha256sum(logits),
        logits_provenance=str(source) if source else None,
        untrained=untrained,
        score_floor_logit=floor,
        voxels=voxels,
        marked=marked,
        mask_fraction=marked / voxels,
        mask=str(out),
    )
    record_path = own_provenance_path(out)
    write_json(record_path, record)
    log.info(
        "wrote %s: logit > %g marks %d of %d voxels (mask fraction %.6f)%s",
        out,
        threshold,
        marked,
        voxels,
        marked / voxels,
        " (untrained)" if untrained else "",
    )
    log.info("wrote %s", record_path)
    return record
