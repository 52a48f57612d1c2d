from tomoseg.acquisition.rows import download_groundtruth_row
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
download_groundtruth_row(
    snakemake.params.row,
    snakemake.input.tomogram,
    snakemake.input.source,
    snakemake.output.truth,
    snakemake.output.source,
    snakemake.config["download"],
)
