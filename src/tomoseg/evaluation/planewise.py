"""Plane-wise metrics: Dice, IoU, precision and recall of every 2-D slice along XY, XZ and YZ, averaged per plane.

Upstream ETSAM (commit 58e8df8) scores each slice with torchmetrics and ``zero_division=0``, so a ratio
whose denominator is zero counts as 0 - also on a slice where both masks are empty, which drags the
averages down on tomograms with empty border slices. Three conventions are offered:

* ``zero`` (default, upstream's): every zero denominator gives 0 and every slice is averaged;
* ``skip``: slices where both masks are empty are left out of the average (other zero denominators give 0);
* ``one``: slices where both masks are empty score 1 on all four metrics (other zero denominators give 0).

A volume is (Z, Y, X): XY slices have a fixed Z, XZ slices a fixed Y, YZ slices a fixed X. One streamed
pass over Z-chunks of the memory-mapped masks counts, per slice of each plane, true positives and the
voxels of each mask (three int64 vectors per plane); no float copy of the volume is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.core.io import InputError, open_volume
from tomoseg.evaluation.masks import nonzero_mask

# plane name -> the axis of a (Z, Y, X) volume its slices hold fixed
PLANES: dict[str, int] = {"xy": 0, "xz": 1, "yz": 2}
EMPTY_CONVENTIONS = ("zero", "skip", "one")
PLANE_METRICS = ("dice", "iou", "precision", "recall")


@dataclass(frozen=True)
class PlaneOptions:
    """Plane-wise metrics asked for: the empty-slice convention (see EMPTY_CONVENTIONS)."""

    empty: str = "zero"


@dataclass
class SliceCounts:
    """Per-slice counts of one plane: true positives, predicted voxels and truth voxels (int64 vectors)."""

    tp: np.ndarray
    pred: np.ndarray
    truth: np.ndarray


def slice_counts(
    pred_path: str | os.PathLike, truth_path: str | os.PathLike, chunk_voxels: int = 1 << 22
) -> dict[str, SliceCounts]:
    """Counts per slice of every plane, in one pass over Z-chunks of the two memory-mapped masks."""
    pred_path, truth_path = Path(pred_path), Path(truth_path)
    with open_volume(pred_path) as (pred, _), open_volume(truth_path) as (truth, _):
        if pred.shape != truth.shape:
            raise InputError(
                f"shape mismatch: prediction {pred_path} has shape {pred.shape}, "
                f"ground truth {truth_path} has shape {truth.shape}"
            )
        counts = {
            name: SliceCounts(*(np.zeros(pred.shape[axis], np.int64) for _ in range(3)))
            for name, axis in PLANES.items()
        }
        chunk = max(1, chunk_voxels // (pred.shape[1] * pred.shape[2]))
        for z in range(0, pred.shape[0], chunk):
            p = nonzero_mask(pred[z : z + chunk], pred_path, z)
            t = nonzero_mask(truth[z : z + chunk], truth_path, z)
            both = p & t
            for name, axis in PLANES.items():
                others = tuple(a for a in range(3) if a != axis)
                into = counts[name]
                where = slice(z, z + p.shape[0]) if axis == 0 else slice(None)
                into.tp[where] += np.count_nonzero(both, axis=others)
                into.pred[where] += np.count_nonzero(p, axis=others)
                into.truth[where] += np.count_nonzero(t, axis=others)
    return counts


def slice_scores(counts: SliceCounts, empty: str = "zero") -> dict[str, np.ndarray]:
    """Dice, IoU, precision, recall of every slice under an empty-slice convention (NaN = left out)."""
    if empty not in EMPTY_CONVENTIONS:
        raise ValueError(f"empty must be one of {EMPTY_CONVENTIONS}, got {empty!r}")
    tp = counts.tp.astype(np.float64)
    fp = counts.pred - counts.tp
    fn = counts.truth - counts.tp
    pairs = {
        "dice": (2 * tp, 2 * tp + fp + fn),
        "iou": (tp, tp + fp + fn),
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
    }
    both_empty = (counts.pred == 0) & (counts.truth == 0)
    out = {}
    for name, (num, den) in pairs.items():
        values = np.divide(num, den, out=np.zeros_like(tp), where=den > 0)
        if empty == "one":
            values[both_empty] = 1.0
        elif empty == "skip":
            values[both_empty] = np.nan
        out[name] = values
    return out


def plane_wise_from_counts(counts: dict[str, SliceCounts], empty: str = "zero") -> dict[str, dict[str, Any]]:
    """Per plane: the four metrics averaged over its slices, with the number of slices averaged."""
    result: dict[str, dict[str, Any]] = {}
    for name, c in counts.items():
        scores = slice_scores(c, empty)
        kept = int(np.count_nonzero(~np.isnan(scores["dice"])))
        result[name] = {
            **{m: float(np.nanmean(v)) if kept else float("nan") for m, v in scores.items()},
            "slices": kept,
            "empty_slices": int(np.count_nonzero((c.pred == 0) & (c.truth == 0))),
        }
    return result


def plane_wise(
    pred_path: str | os.PathLike,
    truth_path: str | os.PathLike,
    empty: str = "zero",
    chunk_voxels: int = 1 << 22,
) -> dict[str, dict[str, Any]]:
    """Plane-wise metrics of two mask files: {xy|xz|yz: {dice, iou, precision, recall, slices, empty_slices}}."""
    if empty not in EMPTY_CONVENTIONS:
        raise InputError(
            f"plane-wise empty-slice convention must be one of {EMPTY_CONVENTIONS}, got {empty!r}"
        )
    return plane_wise_from_counts(slice_counts(pred_path, truth_path, chunk_voxels), empty)
