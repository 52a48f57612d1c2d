from tomoseg.acquisition.copick import import_copick
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
import_copick(
    snakemake.input.project,
    snakemake.params.row["run"],
    snakemake.params.voxel_spacing,
    snakemake.params.tomo_type,
    snakemake.output[0],
)
