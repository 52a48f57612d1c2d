from pathlib import Path

from tomoseg.core.runlog import log_to
from tomoseg.etsam.weights import fetch_weights

log_to(snakemake.log[0])
fetch_weights(Path(snakemake.output.stage1).parent)
