from pathlib import Path

from tomoseg.core.runlog import log_to
from tomoseg.reporting.figures import build_figures

log_to(snakemake.log[0])
build_figures("results", snakemake.params.methods, Path(snakemake.output.figure1a_png).parent)
