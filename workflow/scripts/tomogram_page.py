from tomoseg.core.provenance import untrained_methods
from tomoseg.core.runlog import log_to
from tomoseg.reporting.pages import tomogram_page

log_to(snakemake.log[0])
tomogram_page(
    snakemake.wildcards.tomo,
    snakemake.output.html,
    methods=snakemake.params.methods,
    stats_json=snakemake.input.stats,
    overlay_png=snakemake.input.overlay,
    dice_z_png=snakemake.input.dice_z,
    metrics=dict(snakemake.params.metrics),
    provenance=dict(snakemake.params.provenance),
    untrained=untrained_methods(snakemake.params.provenance),
    results="results",
    benchmark_rules=dict(snakemake.params.benchmark_rules),
    run=dict(snakemake.params.run),
)
