import pandas as pd

from tomoseg.runlog import log_to
from tomoseg.summary import build_summaries

log_to(snakemake.log[0])
runs = pd.read_csv(snakemake.params.runs, sep="\t", dtype=str, keep_default_na=False, comment="#").set_index(
    "tomo", drop=False
)
build_summaries(
    expected=[tuple(p) for p in snakemake.params.expected],
    methods=snakemake.params.methods,
    results="results",
    runs=runs,
    skipped=[tuple(s) for s in snakemake.params.skipped],
    thresholds=snakemake.params.thresholds,
    benchmark_rules=dict(snakemake.params.benchmark_rules),
    method_inputs=dict(snakemake.params.method_inputs),
)
