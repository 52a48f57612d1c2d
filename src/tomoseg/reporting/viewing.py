"""A tomogram with its mask and logits as viewer layers: data, physical scale and position, contrast.

`view_layers` builds the layers without any viewer (tested without a display); `show_in_napari` hands
them to napari, which is imported only there. See docs/viewing.md for napari, IMOD and ChimeraX.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.core.io import InputError, Placement, read_mask, read_placement, read_volume

CONTRAST_PERCENTILES = (0.5, 99.5)
_SAMPLE = 1_000_000  # voxels sampled for the contrast limits of a large volume


@dataclass
class Layer:
    """One viewer layer: `kind` is "image" or "labels"; `options` are napari's add_<kind> keywords."""

    name: str
    kind: str
    data: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)


def world_position(voxel_size: tuple[float, float, float], placement: Placement) -> dict[str, tuple]:
    """napari's scale and translate (z, y, x, in Angstrom) of a volume, from its MRC header.

    The position of voxel 0 is the header origin, or, when that is zero, the grid start times the voxel
    size (as ChimeraX reads MRC files), so that every tomoseg output overlays its tomogram.
    """
    if any(placement.origin):
        translate = tuple(float(v) for v in placement.origin)
    else:
        translate = tuple(float(s * v) for s, v in zip(placement.start, voxel_size, strict=True))
    return {"scale": tuple(float(v) for v in voxel_size), "translate": translate}


def contrast_limits(volume: np.ndarray) -> tuple[float, float]:
    """Robust display limits: the 0.5 and 99.5 percentiles of (a sample of) the volume."""
    flat = volume.reshape(-1)
    step = max(1, flat.size // _SAMPLE)
    low, high = np.percentile(flat[::step], CONTRAST_PERCENTILES)
    if not high > low:
        high = low + 1.0
    return float(low), float(high)


def view_layers(
    tomogram: str | os.PathLike,
    masks: list[str | os.PathLike] | tuple = (),
    logits: list[str | os.PathLike] | tuple = (),
) -> list[Layer]:
    """The tomogram (grey), each logits volume (hidden, additive) and each mask (labels) as layers.

    Every volume must have the tomogram's shape; each is placed by its own header, so a mask written
    without the tomogram's origin shows where it really sits.
    """
    volume, voxel = read_volume(tomogram)
    shape = volume.shape
    layers = [
        Layer(
            Path(tomogram).stem,
            "image",
            volume,
            {
                "colormap": "gray",
                "contrast_limits": contrast_limits(volume),
                **world_position(voxel, read_placement(tomogram)),
            },
        )
    ]
    for path in logits:
        scores, vs = read_volume(path)
        _same_shape(path, scores.shape, tomogram, shape)
        options = {"colormap": "magma", "blending": "additive", "visible": False}
        options.update(contrast_limits=contrast_limits(scores), **world_position(vs, read_placement(path)))
        layers.append(Layer(_name(path), "image", scores, options))
    for path in masks:
        mask, vs = read_mask(path)
        _same_shape(path, mask.shape, tomogram, shape)
        options = {"opacity": 0.5, **world_position(vs, read_placement(path))}
        layers.append(Layer(_name(path), "labels", mask, options))
    return layers


def show_in_napari(layers: list[Layer], napari: Any = None) -> Any:
    """Open a napari viewer with `layers` and run it until closed (`napari`: the module, for tests)."""
    if napari is None:
        import napari
    viewer = napari.Viewer(title=layers[0].name if layers else "tomoseg")
    for layer in layers:
        getattr(viewer, f"add_{layer.kind}")(layer.data, name=layer.name, **layer.options)
    viewer.dims.ndisplay = 2
    napari.run()
    return viewer


def _name(path: str | os.PathLike) -> str:
    """A layer name that tells outputs of different methods apart: `<folder>/<file stem>`."""
    p = Path(path)
    return f"{p.parent.name}/{p.stem}" if p.parent.name else p.stem


def _same_shape(path: str | os.PathLike, shape: tuple, tomogram: str | os.PathLike, expected: tuple) -> None:
    if tuple(shape) != tuple(expected):
        raise InputError(
            f"{path}: shape {tuple(shape)} differs from the tomogram {tomogram}'s {tuple(expected)}"
        )
