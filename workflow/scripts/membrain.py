from pathlib import Path

from tomoseg.baselines.membrain import run_membrain
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
opts = snakemake.params.options
run_membrain(
    snakemake.input.tomogram,
    Path(snakemake.output.scores).parent,
    checkpoint=opts["checkpoint"],
    python=snakemake.params.python or None,
    sliding_window_size=opts["sliding_window_size"],
    test_time_augmentation=opts["test_time_augmentation"],
    segmentation_threshold=opts["segmentation_threshold"],
    settings=opts["settings"],
    untrained=opts["make_untrained_checkpoint"] or None,
    gpu_json=snakemake.output.gpu,
    allow_unverified_checkpoint=opts.get("allow_unverified_checkpoint", False),
)
