"""Split processing: a tomogram cut into XY tiles (upstream ETSAM: four quadrants), each segmented alone.

Upstream (`etsam.py --split-processing`, commit 58e8df8) halves Y and X at `H // 2` and `W // 2`, runs
both stages on each quadrant (top-left, top-right, bottom-left, bottom-right) and writes each quadrant's
logits back into a zero-filled array of the full shape: no overlap, no padding, no blending. The tiles
here generalise that to N tiles on a grid of rows x columns with edges at `(i * size) // count`, which
for N = 4 are upstream's quadrants exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class Box(NamedTuple):
    """One tile: rows y0:y1 and columns x0:x1 of every slice (end exclusive)."""

    y0: int
    y1: int
    x0: int
    x1: int

    def of(self, volume):
        """The tile of a (Z, Y, X) volume (a view for numpy arrays)."""
        return volume[:, self.y0 : self.y1, self.x0 : self.x1]


def tile_grid(count: int, height: int, width: int) -> tuple[int, int]:
    """Rows x columns for `count` tiles: the most square factorisation, the larger factor on the longer side."""
    if count < 1:
        raise ValueError(f"tile count must be >= 1, got {count}")
    small = max(f for f in range(1, math.isqrt(count) + 1) if count % f == 0)
    large = count // small
    return (large, small) if height > width else (small, large)


def _edges(size: int, parts: int) -> list[int]:
    return [(i * size) // parts for i in range(parts + 1)]


def tile_boxes(height: int, width: int, count: int) -> list[Box]:
    """The tiles of an H x W slice, row by row (for 4: top-left, top-right, bottom-left, bottom-right)."""
    rows, cols = tile_grid(count, height, width)
    ys, xs = _edges(height, rows), _edges(width, cols)
    return [Box(ys[r], ys[r + 1], xs[c], xs[c + 1]) for r in range(rows) for c in range(cols)]


def split_tiles(volume: np.ndarray, count: int) -> tuple[list[np.ndarray], list[Box]]:
    """The tiles of a (Z, Y, X) volume (views) and their boxes."""
    boxes = tile_boxes(volume.shape[1], volume.shape[2], count)
    return [b.of(volume) for b in boxes], boxes


def merge_tiles(
    tiles: Sequence[np.ndarray], boxes: Sequence[Box], shape: tuple[int, int, int], dtype=np.float32
) -> np.ndarray:
    """Tiles written back into one (Z, Y, X) array, as upstream does (zeros first; the tiles cover it all)."""
    out = np.zeros(shape, dtype=dtype)
    for tile, box in zip(tiles, boxes, strict=True):
        box.of(out)[...] = tile
    return out
