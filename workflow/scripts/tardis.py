from pathlib import Path

from tomoseg.baselines.tardis import run_tardis
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
opts = snakemake.params.options
run_tardis(
    snakemake.input.tomogram,
    Path(snakemake.output.probabilities).parent,
    checkpoint=opts["checkpoint"],
    python=snakemake.params.python or None,
    pixel_size=opts["pixel_size"],
    patch_size=opts["patch_size"],
    rotate=opts["rotate"],
    normalize_px=opts["normalize_px"],
    threshold=opts["threshold"],
    device=opts["device"],
    settings=opts["settings"],
    untrained=opts["make_untrained_checkpoint"] or None,
    gpu_json=snakemake.output.gpu,
    allow_unverified_checkpoint=opts.get("allow_unverified_checkpoint", False),
)
