from tomoseg.core.runlog import log_to
from tomoseg.reporting.ablation import build_ablation_tables

log_to(snakemake.log[0])
build_ablation_tables(
    variants=[tuple(v) for v in snakemake.params.variants],
    tomos=snakemake.params.tomos,
    results="results",
    stage1_threshold=snakemake.params.stage1_threshold,
    thresholds=snakemake.params.thresholds,
    default_modes=tuple(snakemake.params.default_modes),
    method_inputs=dict(snakemake.params.method_inputs),
)
