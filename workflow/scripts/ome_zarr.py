from tomoseg.core.io import copy_as_ome_zarr
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
copy_as_ome_zarr(snakemake.input[0], snakemake.output[0], mask=snakemake.params.mask)
