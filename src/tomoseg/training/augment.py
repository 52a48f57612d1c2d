"""Augmentation of a sample: one random transform drawn per sample and applied to every frame, image and
label alike (flip, rotation + shear, resize to the square input, brightness/contrast), then the inference
frame path's ImageNet normalization."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tomoseg.etsam.frames import normalize_frames, resize_slices
from tomoseg.etsam.prompts import resize_mask_prompt


@dataclass(frozen=True)
class Transform:
    """The parameters of one sample's transform (the same for all its frames)."""

    flip: bool = False
    rotation_deg: float = 0.0
    shear_deg: float = 0.0
    brightness: float = 1.0
    contrast: float = 1.0


def draw_transform(rng: np.random.Generator, settings) -> Transform:
    """A random transform within the settings' ranges (prob_flip, rotation_deg, shear_deg, brightness, contrast)."""
    return Transform(
        flip=bool(rng.random() < settings.prob_flip),
        rotation_deg=float(rng.uniform(-settings.rotation_deg, settings.rotation_deg)),
        shear_deg=float(rng.uniform(-settings.shear_deg, settings.shear_deg)),
        brightness=float(rng.uniform(1 - settings.brightness, 1 + settings.brightness)),
        contrast=float(rng.uniform(1 - settings.contrast, 1 + settings.contrast)),
    )


def _affine_grid(t: Transform, n: int, size: int, device: torch.device) -> torch.Tensor:
    """The sampling grid of rotation + x-shear about the centre (output pixel -> input pixel), for n frames."""
    a, s = math.radians(t.rotation_deg), math.radians(t.shear_deg)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    shear = torch.tensor([[1.0, math.tan(s)], [0.0, 1.0]], dtype=torch.float64)
    forward = rot @ shear
    inverse = torch.linalg.inv(forward)
    theta = torch.zeros(1, 2, 3, dtype=torch.float64)
    theta[0, :, :2] = inverse
    grid = F.affine_grid(theta.float(), [1, 1, size, size], align_corners=False).to(device)
    return grid.expand(n, -1, -1, -1)


def apply_transform(
    images: torch.Tensor, labels: torch.Tensor, t: Transform, image_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W) images and 0/1 labels -> (N, 3, S, S) SAM2 frames and (N, S, S) float 0/1 labels.

    Images are resized like inference frames (bicubic, antialiased), labels like SAM2's mask prompts
    (bilinear, antialiased, >= 0.5); the affine warp is bilinear for images, nearest for labels.
    """
    img = resize_slices(images, image_size)  # (N, 1, S, S)
    lab = torch.cat([resize_mask_prompt(x, image_size) for x in labels.to(torch.float32)]).to(img.device)
    if t.flip:
        img, lab = img.flip(-1), lab.flip(-1)
    if t.rotation_deg or t.shear_deg:
        grid = _affine_grid(t, len(img), image_size, img.device)
        img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        lab = F.grid_sample(lab, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if t.brightness != 1.0:
        img = img * t.brightness
    if t.contrast != 1.0:
        mean = img.mean(dim=(-2, -1), keepdim=True)
        img = (img - mean) * t.contrast + mean
    return normalize_frames(img), lab[:, 0]
