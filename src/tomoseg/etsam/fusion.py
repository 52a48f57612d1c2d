"""Stage 1 -> Stage 2 input: clipped, min-max normalized Stage 1 logits added to the normalized tomogram."""

from __future__ import annotations

import numpy as np

NO_OBJECT_SCORE = -1024.0  # SAM2's NO_OBJ_SCORE: the logits of a frame predicted to hold no object
STAGE1_THRESHOLD = 0.0
STAGE2_THRESHOLD = -0.25


def fuse(normalized: np.ndarray, stage1_logits: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """normalized + minmax(clip(stage1, -clip, clip)) over the whole volume (a sum, range ~[0, 2]), float32."""
    s1 = np.clip(stage1_logits, -clip, clip).astype(np.float32)
    lo, hi = float(s1.min()), float(s1.max())
    s1 -= np.float32(lo)
    if hi > lo:
        s1 /= np.float32(hi - lo)
    s1 += normalized.astype(np.float32, copy=False)
    return s1


def threshold(logits: np.ndarray, value: float) -> np.ndarray:
    """Binary uint8 mask of logits > value."""
    return (logits > value).astype(np.uint8)
