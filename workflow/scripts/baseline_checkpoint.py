from tomoseg.baselines.checkpoints import make_baseline_checkpoint
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
make_baseline_checkpoint(snakemake.params.tool, snakemake.output[0], python=snakemake.params.python or None)
