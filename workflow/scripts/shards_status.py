from tomoseg.batch.shards import write_status
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
write_status(snakemake.input, snakemake.output[0], snakemake.params.allow_failures)
