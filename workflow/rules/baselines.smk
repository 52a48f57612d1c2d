# Baselines: Membrain-Seg and TARDIS, each run by tomoseg.baselines as a subprocess of its own
# environment (venvs from `make setup`, selected by `baselines: <tool>: python:`; or, with
# `--sdm conda` and `python: null`, the rule's own conda env). See docs/baselines.md.

# Tiny random checkpoints (demo/ci only): a rule exists only for a tool whose config asks for one,
# so a missing real checkpoint is never replaced by random weights.
if config["baselines"]["membrain"]["make_untrained_checkpoint"]:

    rule membrain_checkpoint:
        output:
            config["baselines"]["membrain"]["checkpoint"],
        log:
            "results/logs/membrain_checkpoint/tiny.log",
        conda:
            "../envs/membrain.yaml"
        params:
            tool="membrain",
            python=tool_python("membrain"),
        script:
            "../scripts/baseline_checkpoint.py"


if config["baselines"]["tardis"]["make_untrained_checkpoint"]:

    rule tardis_checkpoint:
        output:
            config["baselines"]["tardis"]["checkpoint"],
        log:
            "results/logs/tardis_checkpoint/tiny.log",
        conda:
            "../envs/tardis.yaml"
        params:
            tool="tardis",
            python=tool_python("tardis"),
        script:
            "../scripts/baseline_checkpoint.py"


rule membrain:
    input:
        unpack(lambda wc: checkpoint_input("membrain")),
        tomogram="results/data/{tomo}/tomogram.mrc",
    output:
        scores="results/membrain/{tomo}/scores.mrc",
        mask="results/membrain/{tomo}/mask.mrc",
        provenance="results/membrain/{tomo}/provenance.json",
        gpu="results/benchmarks/membrain/{tomo}.gpu.json",
    log:
        "results/logs/membrain/{tomo}.log",
    benchmark:
        "results/benchmarks/membrain/{tomo}.tsv"
    conda:
        "../envs/membrain.yaml"
    resources:
        gpu=1,
        mem_mb=config["baselines"]["membrain"]["mem_mb"],
        runtime=config["baselines"]["membrain"]["runtime"],
    params:
        python=tool_python("membrain"),
        options=config["baselines"]["membrain"],
    script:
        "../scripts/membrain.py"


rule tardis:
    input:
        unpack(lambda wc: checkpoint_input("tardis")),
        tomogram="results/data/{tomo}/tomogram.mrc",
    output:
        probabilities="results/tardis/{tomo}/probabilities.mrc",
        mask="results/tardis/{tomo}/mask.mrc",
        provenance="results/tardis/{tomo}/provenance.json",
        gpu="results/benchmarks/tardis/{tomo}.gpu.json",
    log:
        "results/logs/tardis/{tomo}.log",
    benchmark:
        "results/benchmarks/tardis/{tomo}.tsv"
    conda:
        "../envs/tardis.yaml"
    resources:
        gpu=1,
        mem_mb=config["baselines"]["tardis"]["mem_mb"],
        runtime=config["baselines"]["tardis"]["runtime"],
    params:
        python=tool_python("tardis"),
        options=config["baselines"]["tardis"],
    script:
        "../scripts/tardis.py"
