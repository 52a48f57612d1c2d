from tomoseg.batch.shards import run_shard
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
run_shard(snakemake.params.runs, snakemake.output[0], snakemake.config)
