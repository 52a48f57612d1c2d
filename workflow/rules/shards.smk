# Sharded planning (docs/scaling.md): one job per shard of runs and stage, each running the per-run rules'
# own scripts for every run of its shard; definitions in shards_common.smk.


# The downloads need the internet: with download.local_rules they run where Snakemake runs (login node).
if config["download"]["local_rules"]:

    localrules:
        shard_data,


localrules:
    shards_status,


rule shard_data:
    input:
        unpack(shard_inputs("data")),
    output:
        "results/shards/data/{shard}.json",
    log:
        "results/logs/shards/data/{shard}.log",
    benchmark:
        "results/benchmarks/shards/data/{shard}.tsv"
    wildcard_constraints:
        shard=SHARD_PATTERN,
    conda:
        "../envs/tomoseg.yaml"
    params:
        runs=shard_runs("data"),
        retry=shard_retry("data"),
    script:
        "../scripts/shard.py"


rule shard_normalize:
    input:
        unpack(shard_inputs("normalize")),
    output:
        "results/shards/normalize/{shard}.json",
    log:
        "results/logs/shards/normalize/{shard}.log",
    benchmark:
        "results/benchmarks/shards/normalize/{shard}.tsv"
    wildcard_constraints:
        shard=SHARD_PATTERN,
    conda:
        "../envs/tomoseg.yaml"
    params:
        runs=shard_runs("normalize"),
        retry=shard_retry("normalize"),
    script:
        "../scripts/shard.py"


rule shard_etsam:
    input:
        unpack(
            shard_inputs(
                "etsam",
                stage1_checkpoint=etsam_checkpoint(1),
                stage2_checkpoint=etsam_checkpoint(2),
            )
        ),
    output:
        "results/shards/etsam/{shard}.json",
    log:
        "results/logs/shards/etsam/{shard}.log",
    benchmark:
        "results/benchmarks/shards/etsam/{shard}.tsv"
    wildcard_constraints:
        shard=SHARD_PATTERN,
    conda:
        "../envs/tomoseg.yaml"
    threads: config["etsam"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["etsam"]["mem_mb"],
        runtime=shard_runtime(config["etsam"]["runtime"], steps=2),
    params:
        runs=shard_runs("etsam"),
        retry=shard_retry("etsam"),
    script:
        "../scripts/shard.py"


rule shard_ablation:
    input:
        unpack(
            shard_inputs(
                "ablation",
                stage1_checkpoint=etsam_checkpoint(1),
                stage2_checkpoint=etsam_checkpoint(2),
            )
        ),
    output:
        "results/shards/ablation/{shard}.json",
    log:
        "results/logs/shards/ablation/{shard}.log",
    benchmark:
        "results/benchmarks/shards/ablation/{shard}.tsv"
    wildcard_constraints:
        shard=SHARD_PATTERN,
    conda:
        "../envs/tomoseg.yaml"
    threads: config["etsam"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["etsam"]["mem_mb"],
        runtime=shard_runtime(
            config["etsam"]["runtime"],
            steps=len(ablation_computed_modes(1)) + len(ablation_computed_modes(2)),
        ),
    params:
        runs=shard_runs("ablation"),
        retry=shard_retry("ablation"),
    script:
        "../scripts/shard.py"


rule shard_postprocess:
    input:
        unpack(shard_inputs("postprocess")),
    output:
        "results/shards/postprocess/{shard}.json",
    log:
        "results/logs/shards/postprocess/{shard}.log",
    benchmark:
        "results/benchmarks/shards/postprocess/{shard}.tsv"
    wildcard_constraints:
        shard=SHARD_PATTERN,
    conda:
        "../envs/tomoseg.yaml"
    params:
        runs=shard_runs("postprocess"),
        retry=shard_retry("postprocess"),
    script:
        "../scripts/shard.py"


rule shard_membrain:
    input:
        unpack(shard_inputs("membrain", **checkpoint_input("membrain"))),
    output:
        "results/shards/membrain/{shard}.json",
    log:
        "results/logs/shards/membrain/{shard}.log",
    benchmark:
        "results/benchmarks/shards/membrain/{shard}.tsv"
    wildcard_constraints:
        shard=SHARD_PATTERN,
    conda:
        "../envs/membrain.yaml"
    resources:
        gpu=1,
        mem_mb=config["baselines"]["membrain"]["mem_mb"],
        runtime=shard_runtime(config["baselines"]["membrain"]["runtime"]),
    params:
        runs=shard_runs("membrain"),
        retry=shard_retry("membrain"),
    script:
        "../scripts/shard.py"


rule shard_tardis:
    input:
        unpack(shard_inputs("tardis", **checkpoint_input("tardis"))),
    output:
        "results/shards/tardis/{shard}.json",
    log:
        "results/logs/shards/tardis/{shard}.log",
    benchmark:
        "results/benchmarks/shards/tardis/{shard}.tsv"
    wildcard_constraints:
        shard=SHARD_PATTERN,
    conda:
        "../envs/tardis.yaml"
    resources:
        gpu=1,
        mem_mb=config["baselines"]["tardis"]["mem_mb"],
        runtime=shard_runtime(config["baselines"]["tardis"]["runtime"]),
    params:
        runs=shard_runs("tardis"),
        retry=shard_retry("tardis"),
    script:
        "../scripts/shard.py"


rule shard_evaluate:
    input:
        unpack(shard_inputs("evaluate")),
    output:
        "results/shards/evaluate/{shard}.json",
    log:
        "results/logs/shards/evaluate/{shard}.log",
    benchmark:
        "results/benchmarks/shards/evaluate/{shard}.tsv"
    wildcard_constraints:
        shard=SHARD_PATTERN,
    conda:
        "../envs/tomoseg.yaml"
    params:
        runs=shard_runs("evaluate"),
        retry=shard_retry("evaluate"),
    script:
        "../scripts/shard.py"


rule shard_overlay:
    input:
        unpack(shard_inputs("overlay")),
    output:
        "results/shards/overlay/{shard}.json",
    log:
        "results/logs/shards/overlay/{shard}.log",
    benchmark:
        "results/benchmarks/shards/overlay/{shard}.tsv"
    wildcard_constraints:
        shard=SHARD_PATTERN,
    conda:
        "../envs/tomoseg.yaml"
    params:
        runs=shard_runs("overlay"),
        retry=shard_retry("overlay"),
    script:
        "../scripts/shard.py"


rule shards_status:
    input:
        [shard_markers(stage) for stage in SHARD_STAGES] if SHARDED else [],
    output:
        SHARD_STATUS,
    log:
        "results/logs/shards/status.log",
    conda:
        "../envs/tomoseg.yaml"
    params:
        allow_failures=ALLOW_MISSING,
    script:
        "../scripts/shards_status.py"
