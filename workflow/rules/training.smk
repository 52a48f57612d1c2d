# Training ETSAM (tomoseg.training, docs/training.md): `snakemake train` trains both stages on the train/val
# rows of the training sheet (config training.runs), and the method etsam_trained segments the selected runs
# with the result, labelled with what it was trained on. The rows' files come from the data rules (phantoms,
# portal downloads, copick imports under results/data/{tomo}/); local rows use their files. The training
# job is one job on training.gpus GPUs (one DDP process each); it resumes from its last checkpoint when rerun.


rule train_etsam:
    input:
        unpack(training_inputs),
    output:
        stage1=f"{TRAIN_DIR}/etsam_stage1.pt",
        stage2=f"{TRAIN_DIR}/etsam_stage2.pt",
        sidecars=multiext(f"{TRAIN_DIR}/etsam_stage", "1.json", "2.json"),
        record=f"{TRAIN_DIR}/training.json",
    log:
        "results/logs/train_etsam/train_etsam.log",
    benchmark:
        "results/benchmarks/train_etsam/train_etsam.tsv"
    conda:
        "../envs/tomoseg.yaml"
    threads: config["etsam"]["threads"]
    resources:
        gpu=TRAINING.get("gpus", 1),
        mem_mb=TRAINING.get("mem_mb", 32000),
        runtime=TRAINING.get("runtime", 2880),
    params:
        data="results/data",
        preset=TRAINING.get("preset", "paper"),
        device=TRAINING.get("device", "cuda"),
        epochs_stage1=TRAINING.get("epochs_stage1"),
        epochs_stage2=TRAINING.get("epochs_stage2"),
        batch_size=TRAINING.get("batch_size"),
        processes=TRAINING.get("gpus", 1),
    script:
        "../scripts/train_etsam.py"


rule train:
    input:
        rules.train_etsam.output,


rule etsam_trained_stage1:
    input:
        normalized="results/data/{tomo}/normalized.mrc",
        checkpoint=f"{TRAIN_DIR}/etsam_stage1.pt",
        record=f"{TRAIN_DIR}/training.json",
    output:
        logits="results/etsam_trained/{tomo}/stage1_logits.mrc",
        mask="results/etsam_trained/{tomo}/stage1_mask.mrc",
        provenance="results/etsam_trained/{tomo}/stage1_provenance.json",
        gpu="results/benchmarks/etsam_trained_stage1/{tomo}.gpu.json",
    log:
        "results/logs/etsam_trained_stage1/{tomo}.log",
    benchmark:
        "results/benchmarks/etsam_trained_stage1/{tomo}.tsv"
    conda:
        "../envs/tomoseg.yaml"
    threads: config["etsam"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["etsam"]["mem_mb"],
        runtime=config["etsam"]["runtime"],
    params:
        options={k: v for k, v in ETSAM_OPTIONS.items() if k != "model_config"},
    script:
        "../scripts/etsam_stage1.py"


rule etsam_trained_stage2:
    input:
        normalized="results/data/{tomo}/normalized.mrc",
        stage1_logits="results/etsam_trained/{tomo}/stage1_logits.mrc",
        stage1_provenance="results/etsam_trained/{tomo}/stage1_provenance.json",
        checkpoint=f"{TRAIN_DIR}/etsam_stage2.pt",
        record=f"{TRAIN_DIR}/training.json",
    output:
        logits="results/etsam_trained/{tomo}/stage2_logits.mrc",
        mask="results/etsam_trained/{tomo}/mask.mrc",
        provenance="results/etsam_trained/{tomo}/provenance.json",
        gpu="results/benchmarks/etsam_trained_stage2/{tomo}.gpu.json",
    log:
        "results/logs/etsam_trained_stage2/{tomo}.log",
    benchmark:
        "results/benchmarks/etsam_trained_stage2/{tomo}.tsv"
    conda:
        "../envs/tomoseg.yaml"
    threads: config["etsam"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["etsam"]["mem_mb"],
        runtime=config["etsam"]["runtime"],
    params:
        options={k: v for k, v in ETSAM_OPTIONS.items() if k != "model_config"},
        method="etsam_trained",
    script:
        "../scripts/etsam_stage2.py"


rule training_curves:
    input:
        record=f"{TRAIN_DIR}/training.json",
    output:
        png=report(
            "results/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Figures",
            labels={"figure": "training: loss and validation Dice"},
        ),
        pdf="results/figures/training_curves.pdf",
    log:
        "results/logs/training_curves/training_curves.log",
    conda:
        "../envs/tomoseg.yaml"
    script:
        "../scripts/training_curves.py"
