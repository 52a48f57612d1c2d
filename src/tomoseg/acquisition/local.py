"""Bringing a user's own MRC files (or local OME-Zarr images) into the workflow: validated copies with provenance."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from tomoseg.core.io import (
    InputError,
    VoxelSize,
    read_header,
    read_mask,
    read_placement,
    read_volume,
    sha256sum,
    volume_name,
    volumes_in,
    write_json,
    write_volume,
)
from tomoseg.core.omezarr import is_zarr
from tomoseg.core.provenance import provenance_record

log = logging.getLogger(__name__)


def check_pair(tomogram: Path, truth: Path, target_voxel_size: float | None = None) -> None:
    """A local ground truth must have its tomogram's shape (Z, Y, X); differing voxel sizes are warned about.

    Only the headers are read, so the check costs nothing and runs when either file is imported: a
    mismatch stops the import before any segmentation of the tomogram runs.
    """
    shape, _, voxel = read_header(tomogram, target_voxel_size)
    truth_shape, _, truth_voxel = read_header(truth, target_voxel_size)
    if truth_shape != shape:
        raise InputError(
            f"{truth}: ground truth shape {truth_shape} differs from its tomogram {tomogram}'s {shape} (Z, Y, X); "
            "fix truth_path in the runs sheet or the file"
        )
    if _voxel_sizes_differ(voxel, truth_voxel):
        log.warning(
            "%s: voxel size %s A differs from its tomogram %s's %s A (the shapes agree, so it is only a header)",
            truth,
            truth_voxel,
            tomogram,
            voxel,
        )


def _voxel_sizes_differ(a: VoxelSize, b: VoxelSize, rel: float = 0.01) -> bool:
    """Both headers state a voxel size (> 0) and they differ by more than `rel`."""
    return all(v > 0 for v in (*a, *b)) and any(
        abs(x - y) > rel * max(x, y) for x, y in zip(a, b, strict=True)
    )


def import_local(
    source: Path,
    out: Path,
    binarize: bool = False,
    counterpart: Path | None = None,
    target_voxel_size: float | None = None,
) -> None:
    """Copy a local tomogram (or ground truth, binarized > 0 to uint8) into the results tree as MRC.

    `counterpart` is the other file of the pair (the ground truth when importing a tomogram, and the
    other way round): their shapes are compared first (`check_pair`). An OME-Zarr source (a `.zarr`
    folder) is read at the level nearest `target_voxel_size` (default level 0), its translation as origin.
    """
    if counterpart is not None:
        tomogram, truth = (Path(counterpart), Path(source)) if binarize else (Path(source), Path(counterpart))
        check_pair(tomogram, truth, target_voxel_size)
    if binarize:
        volume, voxel_size = read_mask(source, target_voxel_size)
        log.info("%s: ground truth binarized (> 0), %d foreground voxels", source, int(volume.sum()))
    else:
        volume, voxel_size = read_volume(source, target_voxel_size=target_voxel_size)
    write_volume(out, volume, voxel_size, placement=read_placement(source, target_voxel_size))
    zarr_source = is_zarr(source)
    write_json(
        out.with_name(out.stem + ".source.json"),
        provenance_record(
            "import_local",
            {"binarize": binarize, "target_voxel_size": target_voxel_size},
            {"path": str(Path(source).resolve())},
            # an OME-Zarr image is a folder of chunk files: no single checksum, its total size instead
            sha256=None if zarr_source else sha256sum(source),
            size_bytes=_folder_size(Path(source)) if zarr_source else Path(source).stat().st_size,
            shape=list(volume.shape),
            voxel_size=list(voxel_size),
        ),
    )


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


TRUTH_SUFFIXES = (
    "_groundtruth",
    "_ground_truth",
    "_truth",
    "_gt",
    "_labels",
    "_label",
    "_mask",
    "_membranes",
    "_seg",
)
"""Name endings that make a volume the ground truth of the tomogram named without them (case-insensitive)."""


def _truth_base(name: str) -> str | None:
    """The tomogram name a truth volume's name points to (`tomo_gt` -> `tomo`), None when it has no such ending."""
    for suffix in TRUTH_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def row_key(name: str) -> str:
    """A runs-sheet `tomo` key from a file name: characters outside [A-Za-z0-9._-] become '-', at most 100."""
    key = re.sub(r"[^A-Za-z0-9._-]", "-", name).lstrip("._-")[:100]
    if not key:
        raise InputError(f"{name!r}: no usable runs-sheet key in this name (letters or digits needed)")
    return key


def folder_rows(folder: Path, truth_folder: Path | None = None, split: str = "test") -> list[dict[str, str]]:
    """Runs-sheet rows (source local) for the tomograms in `folder`, sorted by name, each with its ground truth
    when names pair up: `NAME_gt.mrc` (any of TRUTH_SUFFIXES) beside `NAME.mrc`, or `NAME.mrc` / `NAME_gt.mrc`
    in `truth_folder`. Pairs are checked as the workflow checks them (same shape); paths are absolute."""
    names = {volume_name(v): v for v in volumes_in([folder])}
    truths: dict[str, list[Path]] = {}
    for name, path in names.items():
        base = _truth_base(name)
        if base is not None and base in names:
            truths.setdefault(base, []).append(path)
    paired = {p for found in truths.values() for p in found}
    tomograms = {n: p for n, p in names.items() if p not in paired}
    if truth_folder is not None:
        for path in volumes_in([truth_folder]):
            name = volume_name(path)
            base = name if name in tomograms else _truth_base(name)
            if base in tomograms:
                truths.setdefault(base, []).append(path)
    rows, keys = [], {}
    for name, path in sorted(tomograms.items()):
        found = truths.get(name, [])
        if len(found) > 1:
            raise InputError(
                f"{path}: several ground truths pair with it ({', '.join(map(str, found))}); keep one"
            )
        key = row_key(name)
        if key in keys:
            raise InputError(f"{path} and {keys[key]} give the same runs-sheet key {key!r}; rename one")
        keys[key] = path
        truth = found[0] if found else None
        if truth is not None:
            check_pair(path, truth)
        rows.append(
            {
                "tomo": key,
                "source": "local",
                "path": str(path.resolve()),
                "truth": "local" if truth else "none",
                "truth_path": str(truth.resolve()) if truth else "",
                "split": split,
            }
        )
    return rows
