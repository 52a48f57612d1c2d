from pathlib import Path

from tomoseg.core.runlog import log_to
from tomoseg.preprocess import normalize_file

log_to(snakemake.log[0])
normalize_file(Path(snakemake.input[0]), Path(snakemake.output.volume), snakemake.params.mode)
