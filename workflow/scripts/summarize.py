import pandas as pd

from tomoseg.core.runlog import log_to
from tomoseg.reporting.summary import build_summaries

log_to(snakemake.log[0])
build_summaries(
    expected=[tuple(p) for p in snakemake.params.expected],
    methods=snakemake.params.methods,
    results="results",
    runs=pd.DataFrame(snakemake.params.runs, columns=snakemake.params.run_columns).set_index(
        "tomo", drop=False
    ),
    skipped=[tuple(s) for s in snakemake.params.skipped],
    thresholds=snakemake.params.thresholds,
    benchmark_rules=dict(snakemake.params.benchmark_rules),
    method_inputs=dict(snakemake.params.method_inputs),
)
