from pathlib import Path

from tomoseg.figures import overlay_files
from tomoseg.provenance_flags import untrained_methods
from tomoseg.runlog import log_to

log_to(snakemake.log[0])
overlay_files(
    snakemake.input.tomogram,
    snakemake.params.masks,
    Path(snakemake.output.png).with_suffix(""),
    truth=snakemake.input.get("truth"),
    title=snakemake.wildcards.tomo,
    untrained=untrained_methods(snakemake.params.provenance),
)
