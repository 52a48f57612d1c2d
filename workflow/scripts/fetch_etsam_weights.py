from pathlib import Path

from tomoseg.etsam.weights import fetch_weights
from tomoseg.runlog import log_to

log_to(snakemake.log[0])
fetch_weights(Path(snakemake.output.stage1).parent)
