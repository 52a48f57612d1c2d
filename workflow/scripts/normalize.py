from pathlib import Path

from tomoseg.commands.normalize import run_normalize
from tomoseg.runlog import log_to

log_to(snakemake.log[0])
run_normalize(Path(snakemake.input[0]), Path(snakemake.output.volume), snakemake.params.mode)
