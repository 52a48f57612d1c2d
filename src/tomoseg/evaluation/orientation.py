"""Orientation (theta-wise) metrics: recall and precision per bin of the membrane's angle to the beam.

θ = arccos|n_z| ∈ [0°, 90°], n the unit normal of the local membrane surface and z the beam axis: θ = 0°
for a membrane facing the beam (a sheet in the XY plane, the one the missing wedge blurs), 90° for one
seen edge-on. Recall per bin uses the normals of the ground truth (truth voxels of the bin that are
predicted / truth voxels of the bin), precision per bin those of the prediction (predicted voxels of the
bin that are in the truth / predicted voxels of the bin). Default bins 0-30-60-90; bin [lo, hi) holds
lo ≤ θ < hi, the last bin also θ = hi.

Normals: local PCA of the voxel point cloud (voxel indices, Z, Y, X; tomograms are isotropic). For each
membrane voxel, its neighbourhood is its k = 30 nearest voxels (itself included) *and every voxel tied
with the k-th* (on a voxel grid many are at equal distances; taking all of them makes the normal
independent of the search tree's tie order); the normal is the eigenvector of the smallest eigenvalue of
the neighbourhood's covariance. Upstream ETSAM fits the same k = 30 neighbourhood with pymeshlab; PCA
of the neighbourhood is that fit without the mesh library. A neighbourhood of fewer than 3 voxels has no
plane: its voxels get θ = NaN and count in no bin (reported as `unbinned`).

Memory: the mask is processed in Z-slabs of about `slab_voxels` voxels read with a halo of `halo` slices
on each side. A voxel whose neighbourhood radius exceeds the halo could miss a neighbour outside the
slab; it is recomputed with twice the halo (until the slab covers the volume), so the result equals that
of one tree over the whole volume while memory stays that of one slab's points (never a float copy of
the volume). An isolated speck far from other membrane widens its halo far: its tree then holds the
membrane voxels of the wider range (read a slab at a time), still never a copy of the volume.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tomoseg.core.io import InputError, create_volume, open_volume
from tomoseg.evaluation.masks import nonzero_mask

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

log = logging.getLogger(__name__)

DEFAULT_BINS: tuple[float, ...] = (0.0, 30.0, 60.0, 90.0)
DEFAULT_K = 30
SLAB_VOXELS = 1 << 25
HALO = 8
QUERY_CHUNK = 16384
# θ-map value of voxels outside the mask (θ itself is in [0, 90])
THETA_MAP_BACKGROUND = -1.0
_TIE = 1e-9
THETA_DECIMALS = 6


@dataclass(frozen=True)
class ThetaOptions:
    """Theta-wise metrics asked for: bin edges (degrees), neighbours per normal, where to write the truth's θ map,
    and a θ map of the truth to read instead of recomputing its normals."""

    bins: tuple[float, ...] = DEFAULT_BINS
    k: int = DEFAULT_K
    theta_map: str | os.PathLike | None = None
    truth_theta: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        """Check the bins and k when asked, before any volume is read."""
        check_bins(self.bins)
        check_k(self.k)


def check_bins(bins: Sequence[float]) -> np.ndarray:
    """The bin edges as an array; they must rise strictly from 0 to 90 degrees (InputError otherwise)."""
    edges = np.asarray(list(bins), dtype=np.float64)
    if len(edges) < 2 or edges[0] != 0 or edges[-1] != 90 or np.any(np.diff(edges) <= 0):
        raise InputError(f"theta bins must rise strictly from 0 to 90 degrees, got {list(bins)}")
    return edges


def check_k(k: int) -> None:
    """A plane needs at least 3 neighbours (InputError otherwise)."""
    if k < 3:
        raise InputError(f"theta-wise metrics need k >= 3 neighbours for a plane, got {k}")


def binned_theta(theta: np.ndarray) -> np.ndarray:
    """θ as it is binned and stored in θ maps: rounded to THETA_DECIMALS, then float32.

    Rounding makes a θ on an edge (45° on a lattice diagonal) bin the same whatever the floating-point
    error of the eigenvector; float32 is what a θ map holds, so binning a map's values gives the same bins
    as binning the θ it was written from (float32(round(float64(v))) == v for these values).
    """
    rounded: np.ndarray = np.round(theta, THETA_DECIMALS).astype(np.float32)
    return rounded


def bin_index(theta: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each θ, binned as `binned_theta` (bin i: edges[i] ≤ θ < edges[i+1], the last bin closed); -1 for NaN."""
    idx = np.searchsorted(edges, binned_theta(theta).astype(np.float64), side="right") - 1
    idx = np.minimum(idx, len(edges) - 2)
    idx[np.isnan(theta)] = -1
    return idx


def theta_from_neighbours(offsets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """θ (degrees) of the PCA normal of each neighbourhood: offsets (q, m, 3) Z, Y, X from any origin, weights (q, m) 0/1.

    The covariance is the weighted second moment minus the outer product of the mean (exact in float64 for
    integer voxel offsets), one batched matrix product instead of a centred copy per neighbourhood.
    """
    w = weights.astype(np.float64)
    count = w.sum(axis=1)
    weighted = offsets * w[:, :, None]
    first = weighted.sum(axis=1)
    cov = (
        np.matmul(weighted.transpose(0, 2, 1), offsets)
        - first[:, :, None] * first[:, None, :] / count[:, None, None]
    )
    _, vectors = np.linalg.eigh(cov)
    n_z = np.abs(vectors[:, 0, 0])  # z component of the eigenvector of the smallest eigenvalue
    theta: np.ndarray = np.degrees(np.arccos(np.clip(n_z, 0.0, 1.0)))
    theta[count < 3] = np.nan
    return theta


def _query_theta(
    tree: cKDTree, points: np.ndarray, query: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """θ and neighbourhood radius of the `query` points among `points` (k nearest plus every tie)."""
    n = len(points)
    kk = min(k, n)
    theta = np.empty(len(query), np.float64)
    radius = np.empty(len(query), np.float64)
    for start in range(0, len(query), QUERY_CHUNK):
        q = query[start : start + QUERY_CHUNK]
        rows = np.arange(len(q))
        # the k-th neighbour's ties: on a voxel grid rarely more than a quarter of k beyond it
        m = min(kk + max(8, kk // 4), n)
        while True:
            found = tree.query(q[rows], k=m)
            dist = np.asarray(found[0]).reshape(len(rows), m)
            idx = np.asarray(found[1]).reshape(len(rows), m)
            r = dist[:, kk - 1]
            inside = dist <= r[:, None] + _TIE
            # a neighbourhood that fills all m columns may have more ties beyond: ask again for more
            more = inside[:, -1] & (m < n)
            done = ~more
            sel = rows[done]
            offsets = (points[idx[done]] - q[sel][:, None, :]).astype(np.float64)
            theta[start + sel] = theta_from_neighbours(offsets, inside[done])
            radius[start + sel] = r[done]
            if not more.any():
                break
            rows = rows[more]
            m = min(2 * m, n)
    return theta, radius


def theta_slabs(
    mask: np.ndarray,
    path: Path,
    k: int = DEFAULT_K,
    slab_voxels: int = SLAB_VOXELS,
    halo: int = HALO,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Per Z-slab (z0, z1): the slab's membrane voxels (n, 3) Z, Y, X and their θ, from a memory-mapped mask."""
    from scipy.spatial import cKDTree  # imported here: `tomoseg --help` stays free of scipy

    depth = mask.shape[0]
    slab = max(1, slab_voxels // (mask.shape[1] * mask.shape[2]))
    for z0 in range(0, depth, slab):
        z1 = min(z0 + slab, depth)
        own = np.argwhere(nonzero_mask(mask[z0:z1], path, z0)).astype(np.int32)
        own[:, 0] += z0
        theta = np.full(len(own), np.nan)
        todo = np.arange(len(own))
        h = max(1, halo)
        while len(todo):
            lo, hi = max(0, z0 - h), min(depth, z1 + h)
            points = _points(mask, path, lo, hi, slab)
            t, r = _query_theta(cKDTree(points), points, own[todo], k)
            theta[todo] = t
            if lo == 0 and hi == depth:
                break
            # a neighbour farther than the halo could lie outside the slab: redo those with a wider halo
            todo = todo[r > h]
            if len(todo):
                log.debug("slab %d-%d: %d voxels need a halo wider than %d", z0, z1, len(todo), h)
            h *= 2
        yield z0, z1, own, theta


def _points(mask: np.ndarray, path: Path, lo: int, hi: int, step: int) -> np.ndarray:
    """Membrane voxels (n, 3) int32 Z, Y, X of slices lo..hi, read `step` slices at a time (no bool copy of the range)."""
    parts = []
    for z in range(lo, hi, step):
        found = np.argwhere(nonzero_mask(mask[z : min(z + step, hi)], path, z)).astype(np.int32)
        found[:, 0] += z
        parts.append(found)
    return np.concatenate(parts) if parts else np.empty((0, 3), np.int32)


def _counts(n_bins: int) -> dict[str, np.ndarray]:
    return {"voxels": np.zeros(n_bins, np.int64), "hits": np.zeros(n_bins, np.int64)}


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def theta_wise(
    pred_path: str | os.PathLike,
    truth_path: str | os.PathLike,
    bins: Sequence[float] = DEFAULT_BINS,
    k: int = DEFAULT_K,
    theta_map: str | os.PathLike | None = None,
    slab_voxels: int = SLAB_VOXELS,
    halo: int = HALO,
    truth_theta: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Recall (truth normals) and precision (prediction normals) per θ bin; optionally the truth's θ map as MRC.

    `truth_theta`: a θ map of this ground truth written earlier (`theta_map`, --theta-map) whose values are
    used instead of recomputing the truth's normals (the workflow scores every method against one map).

    Returns {"bins": [{bin, recall, precision, truth_voxels, pred_voxels, truth_predicted, pred_true}, ...],
    "unbinned": {"truth_voxels", "pred_voxels"}}.
    """
    edges = check_bins(bins)
    check_k(k)
    pred_path, truth_path = Path(pred_path), Path(truth_path)
    n_bins = len(edges) - 1
    truth_c, pred_c = _counts(n_bins), _counts(n_bins)
    unbinned = {"truth_voxels": 0, "pred_voxels": 0}
    with ExitStack() as stack:
        pred, _ = stack.enter_context(open_volume(pred_path))
        truth, voxel_size = stack.enter_context(open_volume(truth_path))
        if pred.shape != truth.shape:
            raise InputError(
                f"shape mismatch: prediction {pred_path} has shape {pred.shape}, "
                f"ground truth {truth_path} has shape {truth.shape}"
            )
        out = None
        if theta_map is not None:
            out = stack.enter_context(create_volume(theta_map, truth.shape, np.float32, voxel_size))
        truth_slabs = theta_slabs(truth, truth_path, k, slab_voxels, halo)
        if truth_theta is not None:
            thetas, _ = stack.enter_context(open_volume(truth_theta))
            if thetas.shape != truth.shape:
                raise InputError(
                    f"shape mismatch: θ map {truth_theta} has shape {thetas.shape}, "
                    f"ground truth {truth_path} has shape {truth.shape}"
                )
            truth_slabs = _slabs_from_map(truth, truth_path, thetas, Path(truth_theta), slab_voxels)
        for slabs, mask, other, other_path, into, key in (
            (truth_slabs, truth, pred, pred_path, truth_c, "truth_voxels"),
            (
                theta_slabs(pred, pred_path, k, slab_voxels, halo),
                pred,
                truth,
                truth_path,
                pred_c,
                "pred_voxels",
            ),
        ):
            for z0, z1, pts, theta in slabs:
                hit = nonzero_mask(other[z0:z1], other_path, z0)[pts[:, 0] - z0, pts[:, 1], pts[:, 2]]
                idx = bin_index(theta, edges)
                ok = idx >= 0
                into["voxels"] += np.bincount(idx[ok], minlength=n_bins)
                into["hits"] += np.bincount(idx[ok & hit], minlength=n_bins)
                unbinned[key] += int(np.count_nonzero(~ok))
                if out is not None and mask is truth:
                    _write_theta(out, z0, z1, pts, theta)
    rows = []
    for i in range(n_bins):
        tv, tp = int(truth_c["voxels"][i]), int(truth_c["hits"][i])
        pv, pt = int(pred_c["voxels"][i]), int(pred_c["hits"][i])
        rows.append(
            {
                "bin": [float(edges[i]), float(edges[i + 1])],
                "recall": _ratio(tp, tv),
                "precision": _ratio(pt, pv),
                "truth_voxels": tv,
                "pred_voxels": pv,
                "truth_predicted": tp,
                "pred_true": pt,
            }
        )
    return {"bins": rows, "unbinned": unbinned}


def theta_map(
    mask_path: str | os.PathLike,
    out_path: str | os.PathLike,
    k: int = DEFAULT_K,
    slab_voxels: int = SLAB_VOXELS,
    halo: int = HALO,
) -> None:
    """Write the θ (degrees) of every membrane voxel of a mask as a float32 MRC (-1 outside), for viewing."""
    mask_path = Path(mask_path)
    with open_volume(mask_path) as (mask, voxel_size):
        with create_volume(out_path, mask.shape, np.float32, voxel_size) as out:
            for z0, z1, pts, theta in theta_slabs(mask, mask_path, k, slab_voxels, halo):
                _write_theta(out, z0, z1, pts, theta)


def _write_theta(out: np.ndarray, z0: int, z1: int, pts: np.ndarray, theta: np.ndarray) -> None:
    """Write one slab of a θ map: θ at the membrane voxels, THETA_MAP_BACKGROUND elsewhere (and for NaN θ)."""
    block = np.full((z1 - z0, *out.shape[1:]), THETA_MAP_BACKGROUND, np.float32)
    block[pts[:, 0] - z0, pts[:, 1], pts[:, 2]] = np.nan_to_num(binned_theta(theta), nan=THETA_MAP_BACKGROUND)
    out[z0:z1] = block


def _slabs_from_map(
    mask: np.ndarray, path: Path, thetas: np.ndarray, map_path: Path, slab_voxels: int
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Like `theta_slabs`, with θ read from a θ map of this mask (written by `theta_map` or --theta-map)."""
    slab = max(1, slab_voxels // (mask.shape[1] * mask.shape[2]))
    for z0 in range(0, mask.shape[0], slab):
        z1 = min(z0 + slab, mask.shape[0])
        inside = nonzero_mask(mask[z0:z1], path, z0)
        values = np.asarray(thetas[z0:z1])
        if np.any(values[~inside] != THETA_MAP_BACKGROUND) or np.any(values[inside] > 90):
            raise InputError(
                f"{map_path}: not a θ map of {path} (θ outside its membrane or above 90, near slice {z0})"
            )
        pts = np.argwhere(inside).astype(np.int32)
        theta = values[pts[:, 0], pts[:, 1], pts[:, 2]].astype(np.float64)
        theta[theta < 0] = np.nan
        pts[:, 0] += z0
        yield z0, z1, pts, theta
