"""copick projects: reading runs and tomograms, and writing masks back as copick segmentations.

A copick project is a JSON config naming where its runs live (the `copick` extra); tomoseg reads a
run's tomogram at a chosen voxel spacing and tomogram type, and writes a method's mask into the run as
a binary segmentation (name, user id, session id; the mask's voxel size) that copick tools then list.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.core.io import (
    InputError,
    Placement,
    VoxelSize,
    read_header,
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


# A copick run name as a folder name of the project's overlay: plain characters, no separator or "..".
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


def check_run_name(config: Path, run: object) -> str:
    """A copick run name checked as a name (it becomes a folder of the project): InputError naming the config otherwise."""
    if not isinstance(run, str) or not RUN_NAME.fullmatch(run):
        raise InputError(
            f"{config}: copick run name {run!r} refused: a run name is letters, digits and _ . + - "
            "(no path separator, no leading dot, at most 128 characters)"
        )
    return run


def _run(root: Any, config: Path, run: str) -> Any:
    check_run_name(config, run)
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
    found = spacing.get_tomograms(tomo_type)
    tomogram = found[0] if found else None
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


def find_segmentation(
    config: str | os.PathLike,
    run: str,
    voxel_spacing: float,
    name: str,
    user_id: str | None = None,
    session_id: str | None = None,
    exclude_user_ids: tuple[str, ...] = (),
) -> Any:
    """The one binary or multilabel copick segmentation of `run` named `name` at `voxel_spacing`.

    `user_id` and `session_id` narrow the choice (None = any); without a `user_id`, segmentations of
    `exclude_user_ids` (e.g. tomoseg's own, written back into the project) are never chosen, while a
    `user_id` named explicitly is taken whoever wrote it. None or several candidates is an
    InputError listing what the run has, so that a ground truth is never picked by chance.
    """
    config = Path(config)
    copick_run = _run(open_project(config), config, run)
    every = copick_run.get_segmentations()
    found = [
        s
        for s in every
        if s.name == name
        and abs(float(s.voxel_size) - float(voxel_spacing)) < 1e-3
        and (user_id is None or s.user_id == user_id)
        and (session_id is None or s.session_id == session_id)
        and (user_id is not None or s.user_id not in exclude_user_ids)
    ]
    have = sorted(f"{s.name} {s.user_id}/{s.session_id} at {s.voxel_size} A" for s in every)
    wanted = (
        f"segmentation {name!r} (user {user_id or 'any'}, session {session_id or 'any'}) at {voxel_spacing} A"
    )
    if not found:
        raise InputError(f"{config}: run {run!r} has no {wanted} (has {have or 'none'})")
    if len(found) > 1:
        raise InputError(
            f"{config}: run {run!r} has {len(found)} of {wanted}; set the user and session ids (has {have})"
        )
    return found[0]


def import_copick_truth(
    config: str | os.PathLike,
    run: str,
    voxel_spacing: float,
    name: str,
    out: str | os.PathLike,
    user_id: str | None = None,
    session_id: str | None = None,
    exclude_user_ids: tuple[str, ...] = (),
    tomogram: str | os.PathLike | None = None,
) -> None:
    """Write a copick segmentation into the results tree as ground truth (uint8 0/1, > 0 is foreground).

    With `tomogram` (the imported MRC), its shape must match and the truth takes its voxel size and
    placement, so that evaluation compares like with like.
    """
    out = Path(out)
    segmentation = find_segmentation(config, run, voxel_spacing, name, user_id, session_id, exclude_user_ids)
    local = _local_store(segmentation)
    if local is not None:
        volume, voxel = read_mask(local)
        placement = read_placement(local)
    else:
        try:
            volume = (np.asarray(segmentation.numpy()) > 0).astype(np.uint8)
        except Exception as err:
            raise InputError(f"{config}: cannot read run {run!r} segmentation {name!r} ({err})") from None
        voxel, placement = (float(voxel_spacing),) * 3, Placement()
    if tomogram is not None:
        shape, _, voxel = read_header(tomogram)
        if tuple(volume.shape) != shape:
            raise InputError(
                f"{config}: run {run!r} segmentation {name!r} ({segmentation.user_id}/{segmentation.session_id}) "
                f"has shape {tuple(volume.shape)}, its tomogram {tomogram} {shape} (Z, Y, X)"
            )
        placement = read_placement(tomogram)
    write_volume(out, volume, voxel, placement=placement)
    write_json(
        out.with_name(out.stem + ".source.json"),
        provenance_record(
            "import_copick_truth",
            {"voxel_spacing": voxel_spacing, "name": name, "user_id": user_id, "session_id": session_id},
            {"config": str(Path(config).resolve()), "run": run},
            segmentation={"user_id": segmentation.user_id, "session_id": segmentation.session_id},
            shape=list(volume.shape),
            foreground_voxels=int(volume.sum()),
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
    record: str | os.PathLike | None = None,
) -> Any:
    """Write a tomoseg mask file (MRC or OME-Zarr) into a copick run as a segmentation, keeping voxel size and origin.

    With `record`, a provenance JSON of the export is written there (the workflow's marker of the job).
    """
    mask, voxel = read_mask(mask_path)
    origin = read_placement(mask_path).origin
    segmentation = write_segmentation(config, run, mask, voxel, name, user_id, session_id, origin=origin)
    if record is not None:
        write_json(
            record,
            provenance_record(
                "export_copick",
                {
                    "name": segmentation.name,
                    "user_id": segmentation.user_id,
                    "session_id": segmentation.session_id,
                },
                {"config": str(Path(config).resolve()), "run": run, "mask": str(mask_path)},
                voxel_size=list(voxel),
                origin=list(origin),
                foreground_voxels=int(mask.sum()),
            ),
        )
    return segmentation
