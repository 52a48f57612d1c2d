from pathlib import Path

from tomoseg.core.runlog import log_to
from tomoseg.reporting.training_figure import training_curves

log_to(snakemake.log[0])
training_curves(snakemake.input.record, Path(snakemake.output.png).with_suffix(""))
