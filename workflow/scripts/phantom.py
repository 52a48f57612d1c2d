from pathlib import Path

from tomoseg.acquisition.phantoms import write_phantom
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
write_phantom(
    Path(snakemake.output.tomogram).parent,
    seed=int(snakemake.params.row["run_id"]),
    **snakemake.params.phantom,
)
