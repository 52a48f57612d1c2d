# Prompting ablation (config evaluate.ablations; Supplementary Tables 4-8 of the paper): ETSAM re-run with
# the other prompt modes, scored by evaluate.smk (as methods "ablation_stage{1,2}_{mode}"), summarized
# per mode and threshold. Variants of the configured modes reuse the main ETSAM outputs (see
# evaluation_common.smk); every Stage 2 variant takes the grid_first Stage 1 logits.


rule etsam_ablation_stage1:
    input:
        normalized="results/data/{tomo}/normalized.mrc",
        checkpoint=etsam_checkpoint(1),
    output:
        logits="results/ablation/etsam_stage1_{mode}/{tomo}/stage1_logits.mrc",
        mask="results/ablation/etsam_stage1_{mode}/{tomo}/stage1_mask.mrc",
        provenance="results/ablation/etsam_stage1_{mode}/{tomo}/stage1_provenance.json",
        gpu="results/benchmarks/etsam_ablation_stage1/{mode}/{tomo}.gpu.json",
    log:
        "results/logs/etsam_ablation_stage1/{mode}/{tomo}.log",
    benchmark:
        "results/benchmarks/etsam_ablation_stage1/{mode}/{tomo}.tsv"
    wildcard_constraints:
        mode=one_of(ablation_computed_modes(1)),
    conda:
        "../envs/tomoseg.yaml"
    threads: config["etsam"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["etsam"]["mem_mb"],
        runtime=config["etsam"]["runtime"],
    params:
        options=lambda wc: {**ETSAM_OPTIONS, "prompt_stage1": wc.mode},
    script:
        "../scripts/etsam_stage1.py"


rule etsam_ablation_stage2:
    input:
        normalized="results/data/{tomo}/normalized.mrc",
        stage1_logits=f"{ablation_dir(1, ABLATION_STAGE2_INPUT_MODE)}/stage1_logits.mrc",
        stage1_provenance=f"{ablation_dir(1, ABLATION_STAGE2_INPUT_MODE)}/stage1_provenance.json",
        checkpoint=etsam_checkpoint(2),
    output:
        logits="results/ablation/etsam_stage2_{mode}/{tomo}/stage2_logits.mrc",
        mask="results/ablation/etsam_stage2_{mode}/{tomo}/mask.mrc",
        provenance="results/ablation/etsam_stage2_{mode}/{tomo}/provenance.json",
        gpu="results/benchmarks/etsam_ablation_stage2/{mode}/{tomo}.gpu.json",
    log:
        "results/logs/etsam_ablation_stage2/{mode}/{tomo}.log",
    benchmark:
        "results/benchmarks/etsam_ablation_stage2/{mode}/{tomo}.tsv"
    wildcard_constraints:
        mode=one_of(ablation_computed_modes(2)),
    conda:
        "../envs/tomoseg.yaml"
    threads: config["etsam"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["etsam"]["mem_mb"],
        runtime=config["etsam"]["runtime"],
    params:
        options=lambda wc: {
            **ETSAM_OPTIONS,
            "prompt_stage1": ABLATION_STAGE2_INPUT_MODE,
            "prompt_stage2": wc.mode,
        },
    script:
        "../scripts/etsam_stage2.py"


rule ablation_summary:
    input:
        metrics=ablation_metrics(),
    output:
        **{
            f"stage{i}_html": report(
                path.replace(".csv", ".html"),
                caption="../report/ablation.rst",
                category="Tables",
                labels={"table": title, "CSV": path},
            )
            for i, (path, title) in enumerate(
                zip(
                    ABLATION_TABLES,
                    [
                        "Supp. Table 4: Stage 1 prompts",
                        "Supp. Tables 5-8: Stage 2 prompts",
                    ],
                ),
                start=1,
            )
        },
        stage1=ABLATION_TABLES[0],
        stage2=ABLATION_TABLES[1],
        markdown=[p.replace(".csv", ".md") for p in ABLATION_TABLES],
    log:
        "results/logs/ablation_summary/ablation_summary.log",
    conda:
        "../envs/tomoseg.yaml"
    params:
        variants=ablation_variants(),
        tomos=tomos(with_truth=True),
        default_modes=[
            SETTINGS["etsam"]["prompt_stage1"],
            SETTINGS["etsam"]["prompt_stage2"],
        ],
        stage1_threshold=SETTINGS["etsam"]["stage1_threshold"],
        thresholds=config["evaluate"]["thresholds"],
        method_inputs={m: method_files(m) for _, _, m in ablation_variants()},
    script:
        "../scripts/ablation_summary.py"
