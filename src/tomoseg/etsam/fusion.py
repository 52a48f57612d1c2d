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


class FusedVolume:
    """The Stage 2 input computed slice by slice (never materialised): normalized + minmax(clip(stage1))."""

    def __init__(self, normalized: np.ndarray, stage1_logits: np.ndarray, clip: float = 5.0):
        if normalized.shape != stage1_logits.shape:
            raise ValueError(
                f"Stage 1 logits shape {stage1_logits.shape} differs from the tomogram's {normalized.shape}"
            )
        self.normalized, self.stage1, self.clip = normalized, stage1_logits, clip
        self.lo = max(float(stage1_logits.min()), -clip)
        self.hi = min(float(stage1_logits.max()), clip)
        self.shape = normalized.shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        s1 = np.clip(self.stage1[index], -self.clip, self.clip).astype(np.float32)
        s1 -= np.float32(self.lo)
        if self.hi > self.lo:
            s1 /= np.float32(self.hi - self.lo)
        return s1 + self.normalized[index].astype(np.float32, copy=False)


def threshold(logits: np.ndarray, value: float) -> np.ndarray:
    """Binary uint8 mask of logits > value."""
    return (logits > value).astype(np.uint8)
