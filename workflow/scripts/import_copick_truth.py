from tomoseg.acquisition.copick import import_copick_truth
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
truth = snakemake.params.truth
import_copick_truth(
    snakemake.input.project,
    snakemake.params.row["run"],
    snakemake.params.voxel_spacing,
    truth["name"],
    snakemake.output[0],
    user_id=truth["user_id"],
    session_id=truth["session_id"],
    exclude_user_ids=tuple(snakemake.params.exclude_user_ids),
    tomogram=snakemake.input.tomogram,
)
