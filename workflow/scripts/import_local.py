from pathlib import Path

from tomoseg.acquisition.local import import_local
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
import_local(
    Path(snakemake.input[0]),
    Path(snakemake.output[0]),
    binarize=snakemake.params.get("binarize", False),
    counterpart=Path(snakemake.params.counterpart) if snakemake.params.get("counterpart") else None,
    target_voxel_size=snakemake.params.get("zarr_voxel_size"),
)
