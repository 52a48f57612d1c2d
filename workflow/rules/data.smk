# Tomograms and ground truth enter the workflow here: synthetic phantoms or a user's local files.
# (Portal downloads live in download.smk.)


rule phantom:
    output:
        tomogram="results/data/{tomo}/tomogram.mrc",
        truth="results/data/{tomo}/groundtruth.mrc",
    log:
        "results/logs/phantom/{tomo}.log",
    wildcard_constraints:
        tomo=key_pattern(tomos(source="phantom")),
    conda:
        "../envs/tomoseg.yaml"
    params:
        row=run_row,
        phantom=config["phantom"],
    script:
        "../scripts/phantom.py"


rule import_local_tomogram:
    input:
        lambda wc: runs.loc[wc.tomo, "path"],
    output:
        "results/data/{tomo}/tomogram.mrc",
    log:
        "results/logs/import_local_tomogram/{tomo}.log",
    wildcard_constraints:
        tomo=key_pattern(tomos(source="local")),
    conda:
        "../envs/tomoseg.yaml"
    params:
        # its ground truth's shape is checked here, before any job segments the tomogram
        counterpart=lambda wc: local_truth_path(wc.tomo),
    script:
        "../scripts/import_local.py"


rule import_local_truth:
    input:
        lambda wc: runs.loc[wc.tomo, "truth_path"],
    output:
        "results/data/{tomo}/groundtruth.mrc",
    log:
        "results/logs/import_local_truth/{tomo}.log",
    wildcard_constraints:
        tomo=key_pattern(
            [t for t in tomos(source="local") if runs.loc[t, "truth"] == "local"]
        ),
    conda:
        "../envs/tomoseg.yaml"
    params:
        binarize=True,
        counterpart=lambda wc: runs.loc[wc.tomo, "path"],
    script:
        "../scripts/import_local.py"
