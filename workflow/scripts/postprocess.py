from pathlib import Path

from tomoseg.core.runlog import log_to
from tomoseg.evaluation.postprocess import run_postprocess

log_to(snakemake.log[0])
# rule postprocess (paper steps) passes min_slices alone; otherwise every post-processing setting
settings = snakemake.params.get("settings") or {
    "min_slices": snakemake.params.min_slices,
    "steps": ["thin_noise"],
    "max_bridge_len": 5,
    "max_spur_len": 0,
}
run_postprocess(
    Path(snakemake.input[0]),
    Path(snakemake.output.mask),
    settings["min_slices"],
    provenance=Path(snakemake.output.provenance),
    steps=settings["steps"],
    max_bridge_len=settings["max_bridge_len"],
    max_spur_len=settings["max_spur_len"],
)
