"""Command outputs in other formats (`--out-format`): the MRC a command wrote, copied to or replaced by a
multiscale OME-Zarr image with `core.io.copy_as_ome_zarr` (the workflow's converter too)."""

from __future__ import annotations

import logging
from pathlib import Path

from tomoseg.core.errors import InputError
from tomoseg.core.io import copy_as_ome_zarr

log = logging.getLogger(__name__)

OUT_FORMATS = ("mrc", "ome-zarr", "both")
OUT_FORMAT_HELP = (
    "mrc (default), ome-zarr (each output MRC replaced by a multiscale OME-Zarr image NAME.zarr, same voxel "
    "size and origin) or both"
)


def convert_outputs(outputs: dict[Path, bool], out_format: str) -> list[Path]:
    """A command's MRC outputs in the format asked for (`--out-format`): as written (mrc), with an OME-Zarr
    copy beside each (both: NAME.zarr), or replaced by it (ome-zarr). `outputs` maps each MRC to whether it is
    a mask; missing ones are skipped. Returns the OME-Zarr images written."""
    if out_format not in OUT_FORMATS:
        raise InputError(f"output format {out_format!r} unknown; choose one of {OUT_FORMATS}")
    if out_format == "mrc":
        return []
    written = []
    for mrc, mask in outputs.items():
        if not mrc.is_file():
            continue
        zarr = mrc.with_suffix(".zarr")
        copy_as_ome_zarr(mrc, zarr, mask=mask)
        log.info("wrote %s", zarr)
        written.append(zarr)
        if out_format == "ome-zarr":
            mrc.unlink()
    return written
