"""Mask prompts of the ETSAM modes (grid dots, empty, Stage-1 mask) and SAM2's own mask-prompt resize."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from tomoseg.core.presets import canonical_prompt
from tomoseg.etsam.options import PROMPT_MODES

log = logging.getLogger(__name__)


def grid_mask(height: int, width: int, spacing: int = 50) -> np.ndarray:
    """1-pixel dots every `spacing` px from the origin (0, 0) at the slice's own resolution (bool)."""
    mask = np.zeros((height, width), dtype=bool)
    mask[::spacing, ::spacing] = True
    return mask


def resize_mask_prompt(mask: np.ndarray | torch.Tensor, image_size: int) -> torch.Tensor:
    """SAM2's add_new_mask resize: bilinear with antialias to S x S, keep >= 0.5; returns (1, 1, S, S) float."""
    m = torch.as_tensor(mask).float()[None, None]
    if m.shape[-2:] == (image_size, image_size):
        return m
    m = F.interpolate(m, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    return (m >= 0.5).float()


def prompt_frames(mode: str, num_frames: int, every_n: int = 50, reverse: bool = False) -> list[int]:
    """The frame indices that receive a mask prompt in `mode` (frame 0, or every n-th frame from 0).

    reverse: the same counted from the last frame (N-1, N-1-n, ...), for the backward pass of
    bidirectional propagation (the mode applied to the Z-reversed volume). Upstream's mode names are accepted.
    """
    mode = canonical_prompt(mode)
    if mode not in PROMPT_MODES:
        raise ValueError(f"unknown prompt mode {mode!r}; choose one of {PROMPT_MODES}")
    if every_n < 1:
        raise ValueError(f"every_n must be >= 1, got {every_n}")
    frames = [0] if mode in ("grid_first", "empty") else list(range(0, num_frames, every_n))
    return [num_frames - 1 - f for f in frames] if reverse else frames


def build_prompts(
    mode: str,
    shape: tuple[int, int, int],
    image_size: int,
    every_n: int = 50,
    grid_spacing: int = 50,
    stage1_logits: np.ndarray | None = None,
    stage1_threshold: float = 0.0,
    reverse: bool = False,
) -> dict[int, np.ndarray]:
    """Full-resolution bool mask prompts {frame: (H, W)} for `mode`; warns when SAM2's resize drops grid dots.

    reverse: prompts for a backward pass (frames counted from the last one, see `prompt_frames`).
    """
    mode = canonical_prompt(mode)
    n, h, w = shape
    frames = prompt_frames(mode, n, every_n, reverse)
    if mode == "empty":
        return {f: np.zeros((h, w), dtype=bool) for f in frames}
    if mode == "stage1_mask_every_n":
        if stage1_logits is None:
            raise ValueError("prompt mode stage1_mask_every_n needs the Stage 1 logits")
        return {f: np.asarray(stage1_logits[f] > stage1_threshold) for f in frames}
    grid = grid_mask(h, w, grid_spacing)
    kept = int(resize_mask_prompt(grid, image_size).sum())
    total = int(grid.sum())
    if kept < total:
        log.warning(
            "grid prompt: %d of %d dots survive SAM2's mask resize from %dx%d to %dx%d%s",
            kept,
            total,
            h,
            w,
            image_size,
            image_size,
            " (none: the prompt is empty)" if kept == 0 else "",
        )
        log.warning(
            "binning the slices (tomoseg segment --bin N, etsam.bin) keeps more dots; the paper does not bin"
        )
    return dict.fromkeys(frames, grid)
