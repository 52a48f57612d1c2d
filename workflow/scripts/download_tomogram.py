import logging

from tomoseg.commands.portal import download_tomogram_row
from tomoseg.runlog import log_to

log_to(snakemake.log[0])
try:
    download_tomogram_row(
        snakemake.params.row,
        snakemake.output.tomogram,
        snakemake.output.source,
        snakemake.config["download"],
    )
except Exception as err:
    logging.getLogger("tomoseg").error("%s: %s", type(err).__name__, err)
    raise
