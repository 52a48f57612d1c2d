from pathlib import Path

from tomoseg.core.runlog import log_to
from tomoseg.evaluation.postprocess import run_instances

log_to(snakemake.log[0])
run_instances(
    Path(snakemake.input[0]),
    Path(snakemake.output.labels),
    snakemake.params.min_voxels,
    provenance=Path(snakemake.output.provenance),
)
