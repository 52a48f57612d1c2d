"""Reading mask slabs: the foreground of a slab of a memory-mapped mask, shared by every metric that streams masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tomoseg.core.io import check_finite_volume


def nonzero_mask(block: np.ndarray, path: Path, z: int) -> np.ndarray:
    """Foreground (non-zero) voxels of a mask slab; NaN or inf in a float mask is an InputError, never membrane."""
    block = np.asarray(block)
    if np.issubdtype(block.dtype, np.floating):
        check_finite_volume(block, path, first_slice=z)
    nonzero: np.ndarray = block != 0
    return nonzero
