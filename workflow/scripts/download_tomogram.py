from tomoseg.acquisition.rows import download_tomogram_row
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
download_tomogram_row(
    snakemake.params.row,
    snakemake.output.tomogram,
    snakemake.output.source,
    snakemake.config["download"],
    target_voxel_size=(snakemake.config.get("ome_zarr") or {}).get("voxel_size"),
)
