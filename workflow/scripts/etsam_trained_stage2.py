from pathlib import Path

from tomoseg.core.io import read_json
from tomoseg.core.runlog import log_to
from tomoseg.etsam.pipeline import EtsamOptions, run_stage2

log_to(snakemake.log[0])
out = snakemake.output
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
    labels={"trained_on": read_json(snakemake.input.record)["trained_on"]},
    method=snakemake.params.method,
)
