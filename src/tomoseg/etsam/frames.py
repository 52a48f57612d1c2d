"""Slices -> SAM2 input frames on the device: bicubic (antialiased, = Pillow's) resize, ImageNet mean/std."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_slices(slices: torch.Tensor, image_size: int) -> torch.Tensor:
    """Resize (B, H, W) slices to (B, 1, S, S) bicubic with antialias (Pillow's BICUBIC kernel), aspect not kept."""
    x = slices.float()[:, None]
    if x.shape[-2:] == (image_size, image_size):
        return x
    return F.interpolate(
        x, size=(image_size, image_size), mode="bicubic", align_corners=False, antialias=True
    )


@functools.lru_cache(maxsize=8)
def imagenet_constants(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std as (1, 3, 1, 1) tensors, made once per device and dtype.

    Building them per chunk with `torch.tensor(..., device=cuda)` is a blocking host-to-device copy (a sync
    on every chunk); cached, they are uploaded once per process.
    """
    with torch.inference_mode(False):  # plain tensors, usable later outside inference mode (training)
        mean = torch.tensor(IMAGENET_MEAN, dtype=dtype).to(device)[None, :, None, None]
        std = torch.tensor(IMAGENET_STD, dtype=dtype).to(device)[None, :, None, None]
    return mean, std


def normalize_frames(resized: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) grey frames -> (B, 3, S, S) ImageNet-normalized frames (the channel copy is a broadcast)."""
    mean, std = imagenet_constants(resized.device, resized.dtype)
    return (resized.expand(-1, 3, -1, -1) - mean) / std


def make_frames(
    slices: np.ndarray | torch.Tensor, image_size: int, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Upload raw (B, H, W) slices once and return (B, 3, S, S) float32 SAM2 input frames on `device`."""
    t = torch.as_tensor(np.ascontiguousarray(slices) if isinstance(slices, np.ndarray) else slices)
    return normalize_frames(resize_slices(t.to(device, non_blocking=True), image_size))


def pil_frames(slices: np.ndarray, image_size: int) -> torch.Tensor:
    """The published ETSAM code's frame path (PIL mode F, BICUBIC, 3 stored channels), for comparison only."""
    from PIL import Image

    out = torch.empty((len(slices), 3, image_size, image_size), dtype=torch.float32)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    for i, s in enumerate(slices):
        img = Image.fromarray(np.asarray(s, dtype=np.float32), mode="F").resize(
            (image_size, image_size), Image.BICUBIC
        )
        grey = torch.from_numpy(np.asarray(img, dtype=np.float32).copy())
        out[i] = (grey[None].repeat(3, 1, 1) - mean) / std
    return out
