from pathlib import Path

from tomoseg.commands.postprocess import run_postprocess
from tomoseg.runlog import log_to

log_to(snakemake.log[0])
run_postprocess(
    Path(snakemake.input[0]),
    Path(snakemake.output.mask),
    snakemake.params.min_slices,
    provenance=Path(snakemake.output.provenance),
)
