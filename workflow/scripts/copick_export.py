from tomoseg.acquisition.copick import export_mask
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
ids = snakemake.params.ids
export_mask(
    snakemake.input.project,
    snakemake.params.row["run"],
    snakemake.input.mask,
    ids["name"],
    ids["user_id"],
    ids["session_id"],
    record=snakemake.output[0],
)
