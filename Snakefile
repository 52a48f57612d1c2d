# tomoseg: ETSAM two-stage SAM2 membrane segmentation, baselines, evaluation and the paper's tables.
# Stages live in workflow/rules/*.smk; see README.md and DESIGN notes there.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/normalize.smk"
include: "workflow/rules/etsam.smk"
include: "workflow/rules/evaluation_common.smk"
include: "workflow/rules/postprocess.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/baselines.smk"


rule all:
    default_target: True
    input:
        all_targets(),
