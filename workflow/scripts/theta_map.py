from tomoseg.core.runlog import log_to
from tomoseg.evaluation.orientation import theta_map

log_to(snakemake.log[0])
theta_map(snakemake.input.truth, snakemake.output.theta, k=snakemake.params.k)
