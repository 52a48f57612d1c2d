# ETSAM: two-stage SAM2 membrane segmentation (tomoseg.etsam). Stage 1 propagates a grid-dot mask prompt
# through the normalized tomogram; Stage 2 propagates through normalized + min-max(Stage 1 logits).
# Checkpoints: config etsam.checkpoints = test (tiny untrained, made here), zenodo (fetched), or paths.


# Fetching weights needs the internet: on a cluster it runs where Snakemake runs (login node).
localrules:
    fetch_etsam_weights,


rule etsam_test_checkpoints:
    output:
        stage1="resources/etsam/test/etsam_stage1_test.pt",
        stage2="resources/etsam/test/etsam_stage2_test.pt",
        sidecars=multiext(
            "resources/etsam/test/etsam_stage", "1_test.json", "2_test.json"
        ),
    log:
        "results/logs/etsam_test_checkpoints/etsam_test_checkpoints.log",
    conda:
        "../envs/tomoseg.yaml"
    params:
        image_size=config["etsam"]["test_image_size"],
    script:
        "../scripts/etsam_test_checkpoints.py"


rule fetch_etsam_weights:
    output:
        stage1="resources/etsam/etsam_stage1_v1.pt",
        stage2="resources/etsam/etsam_stage2_v1.pt",
        record="resources/etsam/weights.json",
    log:
        "results/logs/fetch_etsam_weights/fetch_etsam_weights.log",
    conda:
        "../envs/tomoseg.yaml"
    script:
        "../scripts/fetch_etsam_weights.py"


rule etsam_stage1:
    input:
        normalized="results/data/{tomo}/normalized.mrc",
        checkpoint=etsam_checkpoint(1),
    output:
        logits="results/etsam/{tomo}/stage1_logits.mrc",
        mask="results/etsam/{tomo}/stage1_mask.mrc",
        provenance="results/etsam/{tomo}/stage1_provenance.json",
        gpu="results/benchmarks/etsam_stage1/{tomo}.gpu.json",
    log:
        "results/logs/etsam_stage1/{tomo}.log",
    benchmark:
        "results/benchmarks/etsam_stage1/{tomo}.tsv"
    conda:
        "../envs/tomoseg.yaml"
    threads: config["etsam"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["etsam"]["mem_mb"],
        runtime=config["etsam"]["runtime"],
    params:
        options=ETSAM_OPTIONS,
    script:
        "../scripts/etsam_stage1.py"


rule etsam_stage2:
    input:
        normalized="results/data/{tomo}/normalized.mrc",
        stage1_logits="results/etsam/{tomo}/stage1_logits.mrc",
        stage1_provenance="results/etsam/{tomo}/stage1_provenance.json",
        checkpoint=etsam_checkpoint(2),
    output:
        logits="results/etsam/{tomo}/stage2_logits.mrc",
        mask="results/etsam/{tomo}/mask.mrc",
        provenance="results/etsam/{tomo}/provenance.json",
        gpu="results/benchmarks/etsam_stage2/{tomo}.gpu.json",
    log:
        "results/logs/etsam_stage2/{tomo}.log",
    benchmark:
        "results/benchmarks/etsam_stage2/{tomo}.tsv"
    conda:
        "../envs/tomoseg.yaml"
    threads: config["etsam"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["etsam"]["mem_mb"],
        runtime=config["etsam"]["runtime"],
    params:
        options=ETSAM_OPTIONS,
    script:
        "../scripts/etsam_stage2.py"


# Upstream ETSAM variants (methods etsam_upstream*, see common.smk): the same two stages under
# results/{variant}/{tomo}/ with the variant's preset and option (e.g. split processing).
rule etsam_variant_stage1:
    input:
        normalized=lambda wc: variant_normalized(wc),
        checkpoint=etsam_checkpoint(1),
    output:
        logits="results/{variant}/{tomo}/stage1_logits.mrc",
        mask="results/{variant}/{tomo}/stage1_mask.mrc",
        provenance="results/{variant}/{tomo}/stage1_provenance.json",
        gpu="results/benchmarks/etsam_variant_stage1/{variant}/{tomo}.gpu.json",
    log:
        "results/logs/etsam_variant_stage1/{variant}/{tomo}.log",
    benchmark:
        "results/benchmarks/etsam_variant_stage1/{variant}/{tomo}.tsv"
    wildcard_constraints:
        variant=one_of(VARIANT_RUNS),
    conda:
        "../envs/tomoseg.yaml"
    threads: config["etsam"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["etsam"]["mem_mb"],
        runtime=config["etsam"]["runtime"],
    params:
        options=lambda wc: planning.variant_options(wc.variant, config["etsam"]),
        labels=lambda wc: planning.variant_labels(wc.variant),
    script:
        "../scripts/etsam_stage1.py"


rule etsam_variant_stage2:
    input:
        normalized=lambda wc: variant_normalized(wc),
        stage1_logits="results/{variant}/{tomo}/stage1_logits.mrc",
        stage1_provenance="results/{variant}/{tomo}/stage1_provenance.json",
        checkpoint=etsam_checkpoint(2),
    output:
        logits="results/{variant}/{tomo}/stage2_logits.mrc",
        mask="results/{variant}/{tomo}/mask.mrc",
        provenance="results/{variant}/{tomo}/provenance.json",
        gpu="results/benchmarks/etsam_variant_stage2/{variant}/{tomo}.gpu.json",
    log:
        "results/logs/etsam_variant_stage2/{variant}/{tomo}.log",
    benchmark:
        "results/benchmarks/etsam_variant_stage2/{variant}/{tomo}.tsv"
    wildcard_constraints:
        variant=one_of(VARIANT_RUNS),
    conda:
        "../envs/tomoseg.yaml"
    threads: config["etsam"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["etsam"]["mem_mb"],
        runtime=config["etsam"]["runtime"],
    params:
        options=lambda wc: planning.variant_options(wc.variant, config["etsam"]),
        labels=lambda wc: planning.variant_labels(wc.variant),
        method=lambda wc: wc.variant,
    script:
        "../scripts/etsam_stage2.py"
