"""Post-processing of binary masks: drop 26-connected components that span too few Z slices.

Definition (matches the published ETSAM code, postprocess.py at commit fc1864e): components are labelled
with 26-connectivity (a 3x3x3 block of ones); a component's Z span is the extent of its bounding box
along Z, ``stop - start`` with ``stop`` exclusive (i.e. the number of slices from its first to its
last slice, inclusive); it is kept when that span is >= ``min_slices``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from tomoseg.core.io import InputError, read_placement, read_volume, write_json, write_volume
from tomoseg.core.provenance import provenance_record

log = logging.getLogger(__name__)

STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)


def _label_26(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label 26-connected components into the smallest integer dtype that holds the labels."""
    for dtype in (np.uint16, np.int32, np.int64):
        try:
            labels = np.empty(mask.shape, dtype=dtype)
            count = ndimage.label(mask, structure=STRUCTURE_26, output=labels)
            return labels, int(count)
        except RuntimeError:  # "insufficient bit-depth in requested output type"
            del labels
            continue
    raise RuntimeError("could not label components")  # pragma: no cover - int64 always suffices


def component_z_spans(labels: np.ndarray, count: int) -> np.ndarray:
    """Z span (bounding-box stop - start) of labels 1..count, index 0 unused, without a per-object loop."""
    first = np.full(count + 1, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(count + 1, -1, dtype=np.int64)
    for z in range(labels.shape[0]):
        present = np.flatnonzero(np.bincount(labels[z].ravel(), minlength=count + 1))
        first[present] = np.minimum(first[present], z)
        last[present] = z
    spans = np.where(last >= 0, last - first + 1, 0)
    spans[0] = 0
    return spans


def check_min_slices(min_slices: int) -> None:
    """A component spans at least one slice, so a minimum below 1 is a mistake (InputError)."""
    if isinstance(min_slices, bool) or not isinstance(min_slices, int | np.integer) or min_slices < 1:
        raise InputError(
            f"min_slices must be a whole number >= 1 (a component spans at least 1 slice), got {min_slices!r}"
        )


def filter_components(mask: np.ndarray, min_slices: int) -> np.ndarray:
    """Return a uint8 0/1 mask keeping the 26-connected components whose Z span is >= min_slices."""
    check_min_slices(min_slices)
    binary = np.asarray(mask) != 0
    labels, count = _label_26(binary)
    if count == 0:
        return np.zeros(binary.shape, dtype=np.uint8)
    spans = component_z_spans(labels, count)
    keep = (spans >= min_slices).astype(np.uint8)
    keep[0] = 0
    log.info(
        "%d components, %d kept (Z span >= %d slices), %d removed",
        count,
        int(keep.sum()),
        min_slices,
        count - int(keep.sum()),
    )
    out = np.zeros(binary.shape, dtype=np.uint8)
    # gather only at foreground voxels: the mask is sparse
    fg = np.flatnonzero(binary)
    out.ravel()[fg] = keep[labels.ravel()[fg]]
    return out


def postprocess_file(mask_path: str | os.PathLike, out: str | os.PathLike, min_slices: int) -> dict:
    """Filter the mask in `mask_path` into `out` (uint8, same voxel size and placement); returns a summary."""
    check_min_slices(min_slices)
    mask, voxel_size = read_volume(mask_path)
    before = int(np.count_nonzero(mask))
    result = filter_components(mask, min_slices)
    write_volume(Path(out), result, voxel_size, placement=read_placement(mask_path))
    after = int(result.sum())
    return {"min_slices": min_slices, "foreground_before": before, "foreground_after": after}


def run_postprocess(mask: Path, out: Path, min_slices: int, provenance: Path | None = None) -> dict:
    """Post-process one mask file; optionally write a provenance record."""
    summary = postprocess_file(mask, out, min_slices)
    log.info("%s -> %s: %s", mask, out, summary)
    if provenance is not None:
        write_json(
            provenance,
            provenance_record("postprocess", {"min_slices": min_slices}, {"mask": str(mask)}, **summary),
        )
    return summary
