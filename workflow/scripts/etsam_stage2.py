from pathlib import Path

from tomoseg.core.io import read_json
from tomoseg.core.runlog import log_to
from tomoseg.etsam.pipeline import EtsamOptions, run_stage2

log_to(snakemake.log[0])
out = snakemake.output
# a model trained here (rules/training.smk): its training record says what it learned from
record = snakemake.input.get("record")
labels = {"trained_on": read_json(record)["trained_on"]} if record else snakemake.params.get("labels")
run_stage2(
    Path(snakemake.input.normalized),
    Path(snakemake.input.stage1_logits),
    Path(out.logits),
    Path(out.mask),
    Path(out.provenance),
    EtsamOptions(
        stage2_checkpoint=snakemake.input.checkpoint,
        progress=False,
        threads=snakemake.threads,
        **snakemake.params.options,
    ),
    gpu_json=Path(out.gpu),
    labels=labels,
    method=snakemake.params.get("method", "etsam"),
)
