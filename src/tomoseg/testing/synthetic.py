"""Synthetic membrane-like masks, and a brute-force post-processing reference, for tests and benchmarks."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tomoseg.evaluation.postprocess import STRUCTURE_26


def membrane_mask(
    shape: tuple[int, int, int],
    seed: int = 0,
    n_shells: int = 30,
    thickness: float = 3.0,
    n_specks: int = 2000,
) -> np.ndarray:
    """A sparse uint8 mask of thin spherical shells (vesicle membranes) plus small noise specks."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    mask = np.zeros(shape, dtype=np.uint8)
    scale = min(shape[1:])
    for _ in range(n_shells):
        r = rng.uniform(0.04, 0.2) * scale
        cz, cy, cx = rng.uniform(0, nz), rng.uniform(0, ny), rng.uniform(0, nx)
        z0, z1 = max(0, int(cz - r - thickness)), min(nz, int(cz + r + thickness) + 1)
        y0, y1 = max(0, int(cy - r - thickness)), min(ny, int(cy + r + thickness) + 1)
        x0, x1 = max(0, int(cx - r - thickness)), min(nx, int(cx + r + thickness) + 1)
        if z0 >= z1 or y0 >= y1 or x0 >= x1:
            continue
        yy = (np.arange(y0, y1) - cy)[:, None] ** 2
        xx = (np.arange(x0, x1) - cx)[None, :] ** 2
        for z in range(z0, z1):
            d = np.sqrt(yy + xx + (z - cz) ** 2)
            mask[z, y0:y1, x0:x1] |= (np.abs(d - r) < thickness / 2).astype(np.uint8)
    # specks: small blobs spanning 1-4 slices (what post-processing removes)
    for _ in range(n_specks):
        dz, dy, dx = rng.integers(1, 5), rng.integers(1, 4), rng.integers(1, 4)
        z, y, x = rng.integers(0, nz), rng.integers(0, ny), rng.integers(0, nx)
        mask[z : z + dz, y : y + dy, x : x + dx] = 1
    return mask


def filter_components_reference(mask: np.ndarray, min_slices: int) -> np.ndarray:
    """The straightforward version (label int32 + find_objects + per-object loop); the independent check of
    `tomoseg.evaluation.postprocess.filter_components` in tests and benchmarks."""
    labels, count = ndimage.label(np.asarray(mask) != 0, structure=STRUCTURE_26)
    keep = [
        i + 1
        for i, sl in enumerate(ndimage.find_objects(labels))
        if sl is not None and sl[0].stop - sl[0].start >= min_slices
    ]
    return np.isin(labels, keep).astype(np.uint8)
