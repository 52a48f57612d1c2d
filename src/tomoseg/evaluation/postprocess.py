"""Post-processing of binary masks: thin-noise removal (the paper's) and rung cutting (current upstream).

Thin-noise removal (step `thin_noise`; matches the published ETSAM code at commit fc1864e and
`postprocess.py` at 58e8df8): components are labelled with 26-connectivity (a 3x3x3 block of ones); a
component's Z span is the extent of its bounding box along Z, ``stop - start`` with ``stop`` exclusive
(i.e. the number of slices from its first to its last slice, inclusive); it is kept when that span is
>= ``min_slices``.

Rung cutting (step `rungs`; upstream ETSAM's `--postprocess-remove-parallel-membrane-misconnections`,
58e8df8), per Z slice: skeletonize the slice (scikit-image, 2-D); skeleton pixels with >= 3 of their 8
neighbours on the skeleton are junctions, the rest form segments (8-connected); a segment of at most
``max_bridge_len`` pixels touching two or more distinct junction clusters is a rung between two
membranes; with ``max_spur_len`` > 0 a segment of at most that length touching one junction cluster and
holding an end point (one neighbour) is a spur. Every mask pixel whose nearest skeleton pixel (Euclidean
distance transform) lies on a rung or spur is removed: the bridge is cut at its full width. Upstream
runs thin-noise removal first, then rung cutting; so does `postprocess_mask`.

Instances (`label_instances`, `tomoseg instances`): the same 26-connected labelling, components under
``min_voxels`` dropped, numbered 1 = largest (ties in z, y, x order of their first voxel), stored as uint16.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from tomoseg.core.io import InputError, check_outputs, read_placement, read_volume, write_json, write_volume
from tomoseg.core.presets import POSTPROCESS_STEPS, canonical_steps
from tomoseg.core.provenance import provenance_record

log = logging.getLogger(__name__)

STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)
STRUCTURE_8 = np.ones((3, 3), dtype=bool)
_OFFSETS_8 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
DEFAULT_STEPS: tuple[str, ...] = ("thin_noise",)  # the paper's post-processing


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


def _neighbour(labels: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """labels[y + dy, x + dx] at every (y, x), 0 outside the slice."""
    h, w = labels.shape
    padded = np.pad(labels, 1)
    return padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def skeleton_parts(skeleton: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Segments of a 2-D skeleton: (segment labels, lengths in px, distinct junction clusters touched, has an end).

    Junctions are skeleton pixels with >= 3 skeleton neighbours (8-connectivity), end points those with
    exactly 1; segments are the 8-connected components of the rest. Arrays are indexed by segment label
    (index 0 unused).
    """
    skel = np.asarray(skeleton, dtype=bool)
    degree = ndimage.convolve(skel.astype(np.uint8), STRUCTURE_8.astype(np.uint8), mode="constant") - skel
    junctions = skel & (degree >= 3)
    segments, n_seg = ndimage.label(skel & ~junctions, structure=STRUCTURE_8)
    clusters, _ = ndimage.label(junctions, structure=STRUCTURE_8)
    lengths = np.bincount(segments.ravel(), minlength=n_seg + 1)
    pairs = []
    for dy, dx in _OFFSETS_8:
        near = _neighbour(clusters, dy, dx)
        touch = (segments > 0) & (near > 0)
        pairs.append(np.stack([segments[touch], near[touch]], axis=1))
    unique = np.unique(np.concatenate(pairs), axis=0) if pairs else np.empty((0, 2), int)
    touched = np.bincount(unique[:, 0], minlength=n_seg + 1) if len(unique) else np.zeros(n_seg + 1, int)
    has_end = np.zeros(n_seg + 1, dtype=bool)
    has_end[segments[skel & (degree == 1)]] = True
    has_end[0] = False
    return segments, lengths, touched, has_end


def cut_rungs_slice(mask: np.ndarray, max_bridge_len: int = 5, max_spur_len: int = 0) -> np.ndarray:
    """One 2-D slice with its short skeleton bridges between two junctions (rungs), and spurs, cut out (bool)."""
    from skimage.morphology import skeletonize  # scikit-image: only this step needs it

    m: np.ndarray = np.asarray(mask) != 0
    if not m.any():
        return m
    skel = skeletonize(m)
    if not skel.any():
        return m
    segments, lengths, touched, has_end = skeleton_parts(skel)
    remove = (lengths <= max_bridge_len) & (touched >= 2)
    if max_spur_len > 0:
        remove |= (lengths <= max_spur_len) & (touched == 1) & has_end
    remove[0] = False
    if not remove.any():
        return m
    nearest = ndimage.distance_transform_edt(~skel, return_distances=False, return_indices=True)
    owner = segments[tuple(nearest)]
    out: np.ndarray = m & ~remove[owner]
    return out


def cut_rungs(mask: np.ndarray, max_bridge_len: int = 5, max_spur_len: int = 0) -> np.ndarray:
    """Every Z slice of a (Z, Y, X) mask through `cut_rungs_slice`; uint8 0/1."""
    if max_bridge_len < 0 or max_spur_len < 0:
        raise InputError(
            f"max_bridge_len and max_spur_len must be >= 0, got {max_bridge_len}, {max_spur_len}"
        )
    binary = np.asarray(mask) != 0
    out = np.zeros(binary.shape, dtype=np.uint8)
    for z in range(binary.shape[0]):
        if binary[z].any():
            out[z] = cut_rungs_slice(binary[z], max_bridge_len, max_spur_len)
    log.info(
        "rung cutting (max bridge %d px, max spur %d px): %d of %d foreground voxels removed",
        max_bridge_len,
        max_spur_len,
        int(binary.sum()) - int(out.sum()),
        int(binary.sum()),
    )
    return out


def postprocess_mask(
    mask: np.ndarray,
    steps: str | list[str] | tuple[str, ...] = DEFAULT_STEPS,
    min_slices: int = 10,
    max_bridge_len: int = 5,
    max_spur_len: int = 0,
) -> np.ndarray:
    """The selected steps in upstream's order (thin_noise, then rungs); uint8 0/1."""
    chosen = canonical_steps(steps)
    if not chosen:
        raise ValueError(f"no post-processing step selected; choose from {POSTPROCESS_STEPS}")
    out: np.ndarray = (np.asarray(mask) != 0).astype(np.uint8)
    if "thin_noise" in chosen:
        out = filter_components(out, min_slices)
    if "rungs" in chosen:
        out = cut_rungs(out, max_bridge_len, max_spur_len)
    return out


def postprocess_file(
    mask_path: str | os.PathLike,
    out: str | os.PathLike,
    min_slices: int,
    steps: str | list[str] | tuple[str, ...] = DEFAULT_STEPS,
    max_bridge_len: int = 5,
    max_spur_len: int = 0,
) -> dict:
    """Post-process the mask in `mask_path` into `out` (uint8, same voxel size and placement); returns a summary."""
    check_min_slices(min_slices)
    check_outputs([out], [mask_path])
    mask, voxel_size = read_volume(mask_path)
    before = int(np.count_nonzero(mask))
    chosen = canonical_steps(steps)
    result = postprocess_mask(mask, chosen, min_slices, max_bridge_len, max_spur_len)
    write_volume(Path(out), result, voxel_size, placement=read_placement(mask_path))
    after = int(result.sum())
    summary: dict = {"min_slices": min_slices, "foreground_before": before, "foreground_after": after}
    if chosen != list(DEFAULT_STEPS):
        summary.update(steps=chosen, max_bridge_len=max_bridge_len, max_spur_len=max_spur_len)
    return summary


def run_postprocess(
    mask: Path,
    out: Path,
    min_slices: int,
    provenance: Path | None = None,
    steps: str | list[str] | tuple[str, ...] = DEFAULT_STEPS,
    max_bridge_len: int = 5,
    max_spur_len: int = 0,
) -> dict:
    """Post-process one mask file; optionally write a provenance record."""
    check_outputs([provenance], [mask])
    summary = postprocess_file(mask, out, min_slices, steps, max_bridge_len, max_spur_len)
    log.info("%s -> %s: %s", mask, out, summary)
    if provenance is not None:
        params = {
            k: summary[k] for k in ("min_slices", "steps", "max_bridge_len", "max_spur_len") if k in summary
        }
        write_json(provenance, provenance_record("postprocess", params, {"mask": str(mask)}, **summary))
    return summary


# Instances (issue 26 item 8): what Membrain-Seg's --store-connected-components stores, with a size filter.
MAX_INSTANCES = int(np.iinfo(np.uint16).max)  # labels are stored as MRC mode 6 (uint16); MRC has no uint32


def check_min_voxels(min_voxels: int) -> None:
    """A component holds at least one voxel, so a minimum below 1 is a mistake (InputError)."""
    if isinstance(min_voxels, bool) or not isinstance(min_voxels, int | np.integer) or min_voxels < 1:
        raise InputError(f"min_voxels must be a whole number >= 1, got {min_voxels!r}")


def label_instances(mask: np.ndarray, min_voxels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Label 26-connected components of >= min_voxels voxels, 1 = largest (ties: first in z, y, x order).

    Returns (uint16 labels with 0 = background, int64 sizes of labels 1..n in order); more than 65535 kept
    components raise InputError, as uint16 (MRC mode 6) cannot number them.
    """
    check_min_voxels(min_voxels)
    binary = np.asarray(mask) != 0
    labels, count = _label_26(binary)
    sizes = np.bincount(labels.ravel(), minlength=count + 1).astype(np.int64)
    sizes[0] = 0
    kept = np.flatnonzero(sizes >= min_voxels)
    kept = kept[kept > 0]
    # scipy numbers components in order of their first voxel (C order): a stable sort keeps that for ties
    order = kept[np.argsort(-sizes[kept], kind="stable")]
    if len(order) > MAX_INSTANCES:
        raise InputError(
            f"{len(order)} components of >= {min_voxels} voxels: more than the {MAX_INSTANCES} labels an "
            "MRC uint16 volume holds; raise min_voxels"
        )
    relabel = np.zeros(count + 1, dtype=np.uint16)
    relabel[order] = np.arange(1, len(order) + 1, dtype=np.uint16)
    out = np.zeros(binary.shape, dtype=np.uint16)
    fg = np.flatnonzero(binary)
    out.ravel()[fg] = relabel[labels.ravel()[fg]]
    log.info(
        "%d components, %d kept (>= %d voxels), %d dropped", count, len(order), min_voxels, count - len(order)
    )
    return out, sizes[order]


def run_instances(mask: Path, out: Path, min_voxels: int = 1, provenance: Path | None = None) -> dict:
    """Write the labelled instances of one mask file (uint16 MRC, same voxel size and placement) and a record."""
    check_min_voxels(min_voxels)
    check_outputs([out, provenance], [mask])
    data, voxel_size = read_volume(mask)
    labels, sizes = label_instances(data, min_voxels)
    write_volume(Path(out), labels, voxel_size, placement=read_placement(mask))
    summary: dict = {
        "min_voxels": min_voxels,
        "instances": len(sizes),
        "foreground_before": int(np.count_nonzero(data)),
        "foreground_after": int(sizes.sum()),
        "sizes": [int(s) for s in sizes],
    }
    log.info("%s -> %s: %d instances", mask, out, len(sizes))
    if provenance is not None:
        write_json(
            provenance,
            provenance_record(
                "instances", {"min_voxels": min_voxels, "connectivity": 26}, {"mask": str(mask)}, **summary
            ),
        )
    return summary
