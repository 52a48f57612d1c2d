from pathlib import Path

from tomoseg.core.runlog import log_to
from tomoseg.etsam.model import make_test_checkpoints

log_to(snakemake.log[0])
make_test_checkpoints(Path(snakemake.output.stage1).parent, snakemake.params.image_size)
