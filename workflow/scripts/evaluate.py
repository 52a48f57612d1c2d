from tomoseg.core.runlog import log_to
from tomoseg.evaluation.metrics import evaluate_method_output, extended_options

log_to(snakemake.log[0])
planes, orientation = extended_options(
    **snakemake.params.extended, truth_theta=snakemake.input.get("truth_theta") or None
)
evaluate_method_output(
    pred=snakemake.input.pred,
    truth=snakemake.input.truth,
    json_out=snakemake.output.json,
    scores=snakemake.input.get("scores"),
    score_kind=snakemake.params.score_kind,
    method=snakemake.wildcards.method,
    tomo=snakemake.wildcards.tomo,
    thresholds=snakemake.params.thresholds,
    provenance=snakemake.params.provenance,
    record_failures=snakemake.params.record_failures,
    planes=planes,
    orientation=orientation,
)
