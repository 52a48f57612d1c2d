import logging

from tomoseg.baselines import make_baseline_checkpoint
from tomoseg.runlog import log_to

log_to(snakemake.log[0])
try:
    make_baseline_checkpoint(
        snakemake.params.tool, snakemake.output[0], python=snakemake.params.python or None
    )
except Exception:
    logging.getLogger("tomoseg").exception("failed")  # into the rule's log, then fail the job
    raise
