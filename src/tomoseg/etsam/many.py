"""Many tomograms in one process (`tomoseg segment A B ...`, `tomoseg segment FOLDER`): the models built and
each checkpoint read once, each tomogram into its own folder, finished tomograms skipped on a rerun."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tomoseg.core.io import InputError, read_header, volume_name
from tomoseg.core.omezarr import zarr_target_voxel_size
from tomoseg.etsam.options import EtsamOptions
from tomoseg.etsam.pipeline import (
    STALE_LOGITS,
    ModelCache,
    option_parameters,
    run_segment,
    segment_parameters,
)

log = logging.getLogger(__name__)


def segment_finished(
    tomogram: Path, out_dir: Path, opts: EtsamOptions, store_logits: bool, extra: dict[str, Any]
) -> bool:
    """True when `out_dir` holds a finished `run_segment` of `tomogram` with these settings: its provenance
    names the same input, parameters and checkpoints, and every output is there and newer than the input.

    Lets a many-tomogram run that was killed redo only the tomograms it had not finished.
    """
    names = ("mask.mrc", "provenance.json") + (STALE_LOGITS if store_logits else ())
    outputs = [out_dir / name for name in names]
    if not all(p.is_file() for p in outputs):
        return False
    try:
        record = json.loads((out_dir / "provenance.json").read_text())
        since = min(p.stat().st_mtime for p in outputs)
        newer = since >= Path(tomogram).stat().st_mtime
    except (OSError, ValueError):
        return False
    wanted = json.loads(
        json.dumps({**option_parameters(opts), **extra})
    )  # as JSON stores it (tuples -> lists)
    checkpoints = {k: v.get("path") for k, v in (record.get("checkpoints") or {}).items()}
    return (
        newer
        and record.get("inputs") == {"tomogram": str(tomogram)}
        and record.get("parameters") == wanted
        and checkpoints == {"stage1": opts.stage1_checkpoint, "stage2": opts.stage2_checkpoint}
    )


def segment_many(
    tomograms: list[Path],
    out_dir: Path,
    opts: EtsamOptions,
    normalized: bool = False,
    normalization: str = "max_positive",
    store_logits: bool = False,
    preset: str | None = None,
    voxel_size: float | None = None,
    level: int | None = None,
) -> list[Path]:
    """`tomoseg segment A B ...`: each tomogram into `out_dir/<name>/`, the models built and loaded once.

    OME-Zarr inputs are read at `level` (an index) or at the level nearest `voxel_size` (Angstrom).

    Every input's header and the output names are checked before the first tomogram runs; tomograms whose
    folder already holds a finished run with the same settings (`segment_finished`) are skipped, so a run
    killed midway redoes only what it had not finished. Returns the output folders, in input order.
    """
    folders = [Path(out_dir) / volume_name(t) for t in tomograms]
    seen: dict[Path, Path] = {}
    for tomogram, folder in zip(tomograms, folders, strict=True):
        if folder in seen:
            raise InputError(
                f"{tomogram}: its output folder {folder} is also {seen[folder]}'s; rename one of them"
            )
        seen[folder] = tomogram
    targets = [zarr_target_voxel_size(t, voxel_size, level) for t in tomograms]
    for tomogram, target in zip(tomograms, targets, strict=True):
        read_header(tomogram, target)  # an unreadable input fails before any tomogram runs
    models = ModelCache(opts)
    todo = [
        (t, f, target) for t, f, target in zip(tomograms, folders, targets, strict=True)
        if not segment_finished(
            t, f, opts, store_logits, segment_parameters(normalized, normalization, preset, target)
        )
    ]  # fmt: skip
    if len(todo) < len(tomograms):
        log.info(
            "%d of %d tomograms already segmented with these settings: skipped",
            len(tomograms) - len(todo),
            len(tomograms),
        )
    for i, (tomogram, folder, target) in enumerate(todo, 1):
        log.info("tomogram %d of %d: %s -> %s", i, len(todo), tomogram, folder)
        run_segment(tomogram, folder, opts, normalized, normalization, store_logits, preset, models, target)
    return folders
