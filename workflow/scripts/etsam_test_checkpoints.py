from pathlib import Path

from tomoseg.commands.etsam_weights import make_test_checkpoints
from tomoseg.runlog import log_to

log_to(snakemake.log[0])
make_test_checkpoints(Path(snakemake.output.stage1).parent, snakemake.params.image_size)
