"""copick projects: reading runs and tomograms, and writing masks back as copick segmentations.

A copick project is a JSON config naming where its runs live (the `copick` extra); tomoseg reads a
run's tomogram at a chosen voxel spacing and tomogram type, and writes a method's mask into the run as
a binary segmentation (name, user id, session id; the mask's voxel size) that copick tools then list.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.core.io import (
    InputError,
    Placement,
    VoxelSize,
    read_mask,
    read_placement,
    read_volume,
    write_json,
    write_volume,
)
from tomoseg.core.omezarr import write_ome_zarr
from tomoseg.core.provenance import provenance_record

log = logging.getLogger(__name__)

COPICK_EXTRA = "pip install 'tomoseg[copick]'"


def open_project(config: str | os.PathLike) -> Any:
    """Open the copick project of a config file (InputError naming it when missing or unreadable)."""
    config = Path(config)
    try:
        import copick
    except ImportError:
        raise InputError(
            f"{config}: reading a copick project needs the copick package; {COPICK_EXTRA}"
        ) from None
    if not config.is_file():
        raise InputError(f"{config}: copick config file not found")
    try:
        return copick.from_file(str(config))
    except Exception as err:  # pydantic ValidationError, JSONDecodeError, ValueError for unknown config types
        raise InputError(f"{config}: not a usable copick config ({type(err).__name__}: {err})") from None


def project_runs(config: str | os.PathLike) -> list[str]:
    """Names of the runs of a copick project, sorted."""
    return sorted(run.name for run in open_project(config).runs)


def _run(root: Any, config: Path, run: str) -> Any:
    found = root.get_run(run)
    if found is None:
        names = sorted(r.name for r in root.runs)
        raise InputError(f"{config}: no copick run {run!r} (runs: {', '.join(names[:20]) or 'none'})")
    return found


def find_tomogram(config: str | os.PathLike, run: str, voxel_spacing: float, tomo_type: str) -> Any:
    """The copick tomogram of `run` at `voxel_spacing` (Angstrom) and of type `tomo_type`, or an InputError listing what exists."""
    config = Path(config)
    copick_run = _run(open_project(config), config, run)
    spacing = copick_run.get_voxel_spacing(voxel_spacing)
    if spacing is None:
        have = sorted(vs.voxel_size for vs in copick_run.voxel_spacings)
        raise InputError(f"{config}: run {run!r} has no voxel spacing {voxel_spacing} A (has {have})")
    tomogram = spacing.get_tomogram(tomo_type)
    if tomogram is None:
        have_types = sorted(t.tomo_type for t in spacing.tomograms)
        raise InputError(
            f"{config}: run {run!r} has no {tomo_type!r} tomogram at {voxel_spacing} A (has {have_types})"
        )
    return tomogram


def _local_store(entity: Any) -> Path | None:
    """The local folder of a copick tomogram or segmentation, when the project lives on this file system."""
    for attr in ("overlay_path", "static_path", "path"):
        value = getattr(entity, attr, None)
        if value and Path(value).is_dir():
            return Path(value)
    return None


def read_tomogram(
    config: str | os.PathLike, run: str, voxel_spacing: float, tomo_type: str
) -> tuple[np.ndarray, VoxelSize, Placement]:
    """Read a copick run's tomogram (full-resolution level) with its voxel size and placement."""
    tomogram = find_tomogram(config, run, voxel_spacing, tomo_type)
    local = _local_store(tomogram)
    if local is not None:  # read as any OME-Zarr image: validated, with the translation as origin
        volume, voxel = read_volume(local)
        return volume, voxel, read_placement(local)
    try:
        array = np.asarray(tomogram.numpy())
    except Exception as err:
        raise InputError(f"{config}: cannot read run {run!r} tomogram {tomo_type!r} ({err})") from None
    return array, (float(voxel_spacing),) * 3, Placement()


def import_copick(
    config: str | os.PathLike, run: str, voxel_spacing: float, tomo_type: str, out: str | os.PathLike
) -> None:
    """Copy a copick run's tomogram into the results tree as MRC (voxel size and origin kept), with provenance."""
    out = Path(out)
    volume, voxel, placement = read_tomogram(config, run, voxel_spacing, tomo_type)
    write_volume(out, volume, voxel, placement=placement)
    write_json(
        out.with_name(out.stem + ".source.json"),
        provenance_record(
            "import_copick",
            {"voxel_spacing": voxel_spacing, "tomo_type": tomo_type},
            {"config": str(Path(config).resolve()), "run": run},
            shape=list(volume.shape),
            voxel_size=list(voxel),
            origin=list(placement.origin),
        ),
    )


def write_segmentation(
    config: str | os.PathLike,
    run: str,
    mask: np.ndarray,
    voxel_size: VoxelSize | float,
    name: str,
    user_id: str,
    session_id: str,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Any:
    """Write a binary mask into a copick run as segmentation `name` of `user_id`/`session_id`, replacing an older one.

    The voxel size must be isotropic and one of the run's voxel spacings (copick files segmentations
    under it). In a local project the image is written atomically by tomoseg (with `origin`); else by copick.
    """
    config = Path(config)
    if isinstance(voxel_size, int | float):
        voxel_size = (float(voxel_size),) * 3
    if max(voxel_size) - min(voxel_size) > 1e-3 * max(voxel_size):
        raise InputError(
            f"{config}: copick segmentations have one voxel size; the mask has {voxel_size} A (z, y, x)"
        )
    spacing = round(float(voxel_size[0]), 3)
    copick_run = _run(open_project(config), config, run)
    if copick_run.get_voxel_spacing(spacing) is None:
        have = sorted(vs.voxel_size for vs in copick_run.voxel_spacings)
        raise InputError(
            f"{config}: run {run!r} has no voxel spacing {spacing} A for the segmentation (has {have})"
        )
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    try:
        segmentation = copick_run.new_segmentation(
            spacing, name, session_id, is_multilabel=False, user_id=user_id, exist_ok=True
        )
    except ValueError as err:  # e.g. no pickable object of that name in the config
        raise InputError(f"{config}: cannot add segmentation {name!r} to run {run!r} ({err})") from None
    local = _local_store(segmentation)
    if local is not None:
        write_ome_zarr(local, binary, (spacing,) * 3, origin=origin, levels=1, name=name)
    else:
        segmentation.from_numpy(binary)
    log.info("%s: run %s: segmentation %s (%s/%s) written, %d foreground voxels", config, run, name, user_id,
             session_id, int(binary.sum()))  # fmt: skip
    return segmentation


def export_mask(
    config: str | os.PathLike,
    run: str,
    mask_path: str | os.PathLike,
    name: str,
    user_id: str,
    session_id: str,
) -> Any:
    """Write a tomoseg mask file (MRC or OME-Zarr) into a copick run as a segmentation, keeping voxel size and origin."""
    mask, voxel = read_mask(mask_path)
    origin = read_placement(mask_path).origin
    return write_segmentation(config, run, mask, voxel, name, user_id, session_id, origin=origin)
