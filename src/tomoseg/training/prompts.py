"""Prompts sampled from a truth mask as SAM2 is trained: points inside it, a box enclosing it, the mask itself,
and correction clicks from the error region of a prediction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# SAM2's point labels: 1 positive, 0 negative, 2/3 the top-left/bottom-right box corners
POSITIVE, NEGATIVE, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = 1, 0, 2, 3


@dataclass
class Prompt:
    """One frame's prompt: `kind` points/box/mask; points (P, 2) as x, y pixels of the S x S frame, labels (P,)."""

    kind: str
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    mask: np.ndarray | None = None

    def point_inputs(self, device: torch.device | str) -> dict[str, torch.Tensor] | None:
        """SAM2's `point_inputs` (batch 1), or None for a mask prompt."""
        if self.points is None or self.labels is None:
            return None
        return {
            "point_coords": torch.as_tensor(self.points, dtype=torch.float32, device=device)[None],
            "point_labels": torch.as_tensor(self.labels, dtype=torch.int32, device=device)[None],
        }

    def mask_inputs(self, device: torch.device | str) -> torch.Tensor | None:
        """SAM2's `mask_inputs` (1, 1, S, S) float, or None for a point or box prompt."""
        if self.mask is None:
            return None
        return torch.as_tensor(self.mask, dtype=torch.float32, device=device)[None, None]


def random_pixel(region: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """(x, y) of a pixel drawn uniformly from the True pixels of `region` (its centre; SAM2 adds 0.5 itself)."""
    ys, xs = np.nonzero(region)
    i = int(rng.integers(len(ys)))
    return float(xs[i]), float(ys[i])


def point_prompt(truth: np.ndarray, rng: np.random.Generator) -> Prompt:
    """One positive click inside the truth (a negative click anywhere when the frame has no membrane)."""
    if truth.any():
        x, y = random_pixel(truth, rng)
        return Prompt("points", np.array([[x, y]]), np.array([POSITIVE]))
    x, y = random_pixel(np.ones_like(truth, dtype=bool), rng)
    return Prompt("points", np.array([[x, y]]), np.array([NEGATIVE]))


def box_prompt(truth: np.ndarray, rng: np.random.Generator, jitter: float = 0.1) -> Prompt:
    """The truth's bounding box, each side pushed outwards by up to `jitter` of its length (still enclosing)."""
    if not truth.any():
        return point_prompt(truth, rng)
    h, w = truth.shape
    ys, xs = np.nonzero(truth)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    dy, dx = jitter * (y1 - y0 + 1), jitter * (x1 - x0 + 1)
    out = rng.uniform(0, 1, 4)
    box = [
        max(0.0, x0 - out[0] * dx),
        max(0.0, y0 - out[1] * dy),
        min(w - 1.0, x1 + out[2] * dx),
        min(h - 1.0, y1 + out[3] * dy),
    ]
    return Prompt("box", np.array([box[:2], box[2:]]), np.array([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]))


def mask_prompt(truth: np.ndarray) -> Prompt:
    """The truth mask itself."""
    return Prompt("mask", mask=truth.astype(bool).copy())


def sample_prompt(truth: np.ndarray, rng: np.random.Generator, prob_points: float, prob_box: float) -> Prompt:
    """SAM2's training mix: points with `prob_points`, else a box with `prob_box`, else the mask."""
    if rng.random() < prob_points:
        return point_prompt(truth, rng)
    if rng.random() < prob_box:
        return box_prompt(truth, rng)
    return mask_prompt(truth)


def correction_click(
    prediction: np.ndarray, truth: np.ndarray, rng: np.random.Generator, prob_from_truth: float
) -> tuple[float, float, int]:
    """A click on the error region: positive on a missed pixel, negative on a false one (x, y, label);
    with `prob_from_truth` (or without errors) a positive click anywhere in the truth."""
    missed, false = truth & ~prediction, prediction & ~truth
    if rng.random() < prob_from_truth or not (missed.any() or false.any()):
        if truth.any():
            return (*random_pixel(truth, rng), POSITIVE)
        return (*random_pixel(np.ones_like(truth, dtype=bool), rng), NEGATIVE)
    errors = missed | false
    x, y = random_pixel(errors, rng)
    return x, y, POSITIVE if missed[int(y), int(x)] else NEGATIVE
