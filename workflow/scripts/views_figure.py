from pathlib import Path

from tomoseg.core.runlog import log_to
from tomoseg.reporting.views import build_views_figure

log_to(snakemake.log[0])
build_views_figure(
    snakemake.wildcards.figure,
    snakemake.params.rows,
    Path(snakemake.output.png).with_suffix(""),
    snakemake.params.methods,
    snakemake.params.provenance,
)
