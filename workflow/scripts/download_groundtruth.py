import logging

from tomoseg.commands.portal import download_groundtruth_row
from tomoseg.runlog import log_to

log_to(snakemake.log[0])
try:
    download_groundtruth_row(
        snakemake.params.row,
        snakemake.input.tomogram,
        snakemake.input.source,
        snakemake.output.truth,
        snakemake.output.source,
        snakemake.config["download"],
    )
except Exception as err:
    logging.getLogger("tomoseg").error("%s: %s", type(err).__name__, err)
    raise
