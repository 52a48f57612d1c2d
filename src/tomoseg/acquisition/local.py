"""Bringing a user's own MRC files into the workflow: validated copies with provenance."""

from __future__ import annotations

import logging
from pathlib import Path

from tomoseg.core.io import read_mask, read_placement, read_volume, sha256sum, write_json, write_volume
from tomoseg.core.provenance import provenance_record

log = logging.getLogger(__name__)


def import_local(source: Path, out: Path, binarize: bool = False) -> None:
    """Copy a local tomogram (or ground truth, binarized > 0 to uint8) into the results tree."""
    volume, voxel_size = read_mask(source) if binarize else read_volume(source)
    if binarize:
        log.info("%s: ground truth binarized (> 0), %d foreground voxels", source, int(volume.sum()))
    write_volume(out, volume, voxel_size, placement=read_placement(source))
    write_json(
        out.with_name(out.stem + ".source.json"),
        provenance_record(
            "import_local",
            {"binarize": binarize},
            {"path": str(Path(source).resolve())},
            sha256=sha256sum(source),
            size_bytes=Path(source).stat().st_size,
            shape=list(volume.shape),
            voxel_size=list(voxel_size),
        ),
    )
