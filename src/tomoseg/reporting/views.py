"""Headless 3-D views of masks for the paper's Figures 2, 3 and 5: each mask's surface seen from a tilted
viewpoint, shaded by its orientation to a light and by depth. numpy and scipy only (no display, no OpenGL),
so a cluster node draws them; masks are read a slab at a time and max-pooled, so a paper-size volume costs
the binned volume, not the full one."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from tomoseg.core.io import open_volume, read_json
from tomoseg.core.methods import colour, label
from tomoseg.core.provenance import provenance_marks
from tomoseg.reporting.figures import plt, save

log = logging.getLogger(__name__)

TRUTH_COLOUR = "#4d4d4d"
VIEW_SIZE = 128  # longest side of the binned mask a view is drawn from (voxels)
ELEVATION, AZIMUTH = 35.0, 30.0  # degrees: tilt away from the beam (Z) axis, turn about it


def binned_mask(path: str | os.PathLike, max_size: int = VIEW_SIZE) -> np.ndarray:
    """The mask at `path` max-pooled by the smallest integer factor that brings its longest side to
    `max_size` or less (a one-voxel membrane survives), read a slab of `factor` slices at a time."""
    with open_volume(path) as (data, _):
        shape = data.shape
        factor = max(1, math.ceil(max(shape) / max_size))
        out = np.zeros([math.ceil(n / factor) for n in shape], bool)
        for k, z in enumerate(range(0, shape[0], factor)):
            slab = np.asarray(data[z : z + factor]) != 0
            pad = [(0, 0)] + [(0, -n % factor) for n in shape[1:]]
            slab = np.pad(slab, pad)
            _, h, w = slab.shape
            out[k] = slab.reshape(-1, h // factor, factor, w // factor, factor).any(axis=(0, 2, 4))
    return out


def _rotation(elevation: float, azimuth: float) -> np.ndarray:
    """The rotation (in z, y, x coordinates) that turns the volume about Z by `azimuth`, then tilts it about
    the view's horizontal axis by `elevation`; the viewer looks along the rotated z axis."""
    a, e = math.radians(azimuth), math.radians(elevation)
    about_z = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    about_x = np.array([[math.cos(e), -math.sin(e), 0], [math.sin(e), math.cos(e), 0], [0, 0, 1]])
    return about_x @ about_z


def surface_view(
    mask: np.ndarray, elevation: float = ELEVATION, azimuth: float = AZIMUTH
) -> tuple[np.ndarray, np.ndarray]:
    """(shade, seen) of a boolean volume seen along the rotated z axis: per pixel, the brightness in [0, 1]
    of the first voxel the view ray meets (Lambertian light from the upper left plus a depth cue), and
    whether it meets one. The image is the volume's diagonal wide, so no view crops it."""
    mask = np.asarray(mask, bool)
    size = int(math.ceil(math.sqrt(sum(n * n for n in mask.shape)))) + 2
    rotation = _rotation(elevation, azimuth)
    centre_in = (np.array(mask.shape) - 1) / 2
    # whole-voxel shift between the centres, so that an unrotated view samples voxel centres exactly
    centre_out = centre_in + (size - np.array(mask.shape)) // 2
    # output voxel o samples input voxel R^T (o - c_out) + c_in (nearest neighbour: the mask stays binary)
    inverse = rotation.T
    rotated = ndimage.affine_transform(
        mask.view(np.uint8),
        inverse,
        offset=centre_in - inverse @ centre_out,
        output_shape=(size,) * 3,
        order=0,
    )
    seen = rotated.any(axis=0)
    depth = np.argmax(rotated, axis=0).astype(np.float64)
    shade = np.zeros(seen.shape)
    if not seen.any():
        return shade, seen
    depth[~seen] = depth[seen].max()
    gy, gx = np.gradient(ndimage.gaussian_filter(depth, 1.0))  # smoothed: voxel steps are not the surface
    gy, gx = np.clip(gy, -3, 3), np.clip(gx, -3, 3)  # a depth jump is an edge, drawn dark, not a spike
    normal = np.stack([gx, gy, np.ones_like(gx)])
    normal /= np.linalg.norm(normal, axis=0)
    light = np.array([-1.0, -1.0, 2.0]) / math.sqrt(6.0)  # from the upper left, towards the viewer
    lambert = np.clip(np.tensordot(light, normal, axes=1), 0, 1)
    near, far = depth[seen].min(), depth[seen].max()
    closeness = 1 - (depth - near) / max(far - near, 1.0)
    shade = 0.2 + 0.6 * lambert + 0.2 * closeness
    shade[~seen] = 0
    return shade, seen


def coloured_view(mask: np.ndarray, rgb_hex: str) -> np.ndarray:
    """An RGB image (floats in [0, 1], white background) of `surface_view(mask)` in the colour `rgb_hex`."""
    shade, seen = surface_view(mask)
    rgb = np.array([int(rgb_hex[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    image = np.ones((*shade.shape, 3))
    image[seen] = shade[seen, None] * rgb
    return _crop(image, seen)


def _crop(image: np.ndarray, seen: np.ndarray, margin: int = 2) -> np.ndarray:
    if not seen.any():
        return image
    ys, xs = np.nonzero(seen)
    y0, y1 = max(ys.min() - margin, 0), min(ys.max() + margin + 1, image.shape[0])
    x0, x1 = max(xs.min() - margin, 0), min(xs.max() + margin + 1, image.shape[1])
    return image[y0:y1, x0:x1]


def central_slice(path: str | os.PathLike) -> np.ndarray:
    """The tomogram's middle Z slice scaled to [0, 1] between its 1st and 99th percentiles, for display."""
    with open_volume(path) as (data, _):
        plane = np.asarray(data[data.shape[0] // 2], dtype=np.float32)
    lo, hi = np.percentile(plane, [1, 99])
    return np.clip((plane - lo) / max(float(hi - lo), 1e-12), 0, 1)


@dataclass
class ViewRow:
    """One tomogram of a views figure: its tomogram, masks by column (method or "ground truth"), and a note
    printed under a column (e.g. the scores post-processing changed)."""

    tomo: str
    tomogram: Path
    masks: dict[str, Path]
    notes: dict[str, str] = field(default_factory=dict)


def views_figure(
    rows: Sequence[ViewRow],
    stem: str | os.PathLike,
    title: str,
    marks: Mapping[str, str] | None = None,
    methods: Sequence[str] = (),
) -> list[Path]:
    """A grid (PNG + PDF): per row a tomogram's middle slice, then the 3-D view of each mask in its method's
    colour (ground truth in grey), columns headed by the method's label with its mark (untrained, trained on)."""
    marks = dict(marks or {})
    columns = list(dict.fromkeys(c for r in rows for c in r.masks))
    ncols = 1 + len(columns)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.6 * ncols, 2.6 * len(rows) + 0.6), squeeze=False)
    for i, row in enumerate(rows):
        axes[i, 0].imshow(central_slice(row.tomogram), cmap="gray")
        axes[i, 0].set_ylabel(row.tomo, fontsize=8)
        for j, name in enumerate(columns, start=1):
            ax = axes[i, j]
            if name in row.masks:
                tint = TRUTH_COLOUR if name == "ground truth" else colour(name, methods)
                ax.imshow(coloured_view(binned_mask(row.masks[name]), tint))
            else:
                ax.text(0.5, 0.5, "not made", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            if name in row.notes:
                ax.set_xlabel(row.notes[name], fontsize=7)
    for j, name in enumerate(["tomogram (middle slice)", *columns]):
        axes[0, j].set_title(label(name, marks) if j else name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, stem)


def score_change(before: Mapping[str, float], after: Mapping[str, float]) -> str:
    """ "Dice 0.610 → 0.660" and so on, one line per score that changed between two metrics records."""
    parts = []
    for key, name in (("dice", "Dice"), ("precision", "precision"), ("recall", "recall")):
        b, a = before.get(key), after.get(key)
        if b is not None and a is not None and round(b, 3) != round(a, 3):
            parts.append(f"{name} {b:.3f} → {a:.3f}")
    return "\n".join(parts) or "no score changed"


VIEW_TITLES = {
    "figure2": "Figure 2: test tomograms, ground truth and each method in 3-D",
    "figure3": "Figure 3: tomograms of organisms not seen in training (no ground truth)",
    "figure5": "Figure 5: ETSAM before and after post-processing",
}


def build_views_figure(
    figure: str,
    rows: Mapping[str, Mapping],
    stem: str | os.PathLike,
    methods: Sequence[str],
    provenance: Mapping[str, str | os.PathLike],
) -> list[Path]:
    """Figure 2, 3 or 5 from the workflow's plan (per tomogram: tomogram, masks by column, and for Figure 5
    the metrics records of etsam and etsam_postprocessed, whose changed scores go under the latter)."""
    view_rows = []
    for tomo, row in rows.items():
        metrics = row.get("metrics") or {}
        notes = {}
        if {"etsam", "etsam_postprocessed"} <= set(metrics):
            before, after = (read_json(metrics[m]) for m in ("etsam", "etsam_postprocessed"))
            notes["etsam_postprocessed"] = score_change(before, after)
        masks = {name: Path(p) for name, p in row["masks"].items()}
        view_rows.append(ViewRow(tomo, Path(row["tomogram"]), masks, notes))
    marks = provenance_marks({m: p for m, p in provenance.items() if Path(p).is_file()})
    log.info(
        "%s: tomograms %s, columns %s",
        figure,
        ", ".join(rows),
        sorted({c for r in view_rows for c in r.masks}),
    )
    return views_figure(view_rows, stem, VIEW_TITLES[figure], marks, methods)
