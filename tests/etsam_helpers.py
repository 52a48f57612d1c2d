"""Shared fixtures of the ETSAM tests: tiny random models and a small non-square test volume."""

from __future__ import annotations

import functools

import numpy as np
import torch

from tomoseg.etsam.model import random_model, tiny_spec

IMAGE_SIZE = 128
# 26 frames (> 16 object pointers, > 7 memories) of 100 x 150 px: non-square, neither side = the image size.
SHAPE = (26, 100, 150)
GRID_SPACING = 10  # denser than the paper's 50 px so that 82 dots survive the 150 -> 128 resize


@functools.lru_cache(maxsize=4)
def model(seed: int, bias: float | None = None) -> torch.nn.Module:
    """Hiera-tiny at 128 px with seeded random weights (object-score bias as in the test checkpoints)."""
    torch.set_num_threads(2)
    kwargs = {} if bias is None else {"object_score_bias": bias}
    return random_model(tiny_spec(IMAGE_SIZE), seed, **kwargs)


@functools.lru_cache(maxsize=1)
def volume() -> np.ndarray:
    """A normalized-looking [0, 1] volume with a dark band (membrane-like) drifting through the slices."""
    rng = np.random.default_rng(0)
    v = rng.random(SHAPE, dtype=np.float32) * 0.5 + 0.25
    for z in range(SHAPE[0]):
        v[z, 30 + z : 36 + z, :] = 0.05
    return v
