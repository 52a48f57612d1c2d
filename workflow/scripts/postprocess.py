from pathlib import Path

from tomoseg.core.runlog import log_to
from tomoseg.evaluation.postprocess import run_postprocess

log_to(snakemake.log[0])
run_postprocess(
    Path(snakemake.input[0]),
    Path(snakemake.output.mask),
    snakemake.params.min_slices,
    provenance=Path(snakemake.output.provenance),
)
