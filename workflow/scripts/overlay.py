from pathlib import Path

from tomoseg.core.provenance import provenance_marks
from tomoseg.core.runlog import log_to
from tomoseg.reporting.overlays import overlay_files

log_to(snakemake.log[0])
overlay_files(
    snakemake.input.tomogram,
    snakemake.params.masks,
    Path(snakemake.output.png).with_suffix(""),
    truth=snakemake.input.get("truth"),
    title=snakemake.wildcards.tomo,
    untrained=provenance_marks(snakemake.params.provenance),
    dice_z_stem=Path(snakemake.output.dice_z_png).with_suffix(""),
    stats_json=snakemake.output.stats,
)
