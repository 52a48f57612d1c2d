# Tomograms and ground truth enter the workflow here: synthetic phantoms or a user's local files.
# (Portal downloads live in download.smk.)


rule phantom:
    input:
        unpack(source_check("phantom")),
    output:
        tomogram="results/data/{tomo}/tomogram.mrc",
        truth="results/data/{tomo}/groundtruth.mrc",
    log:
        "results/logs/phantom/{tomo}.log",
    wildcard_constraints:
        tomo=source_pattern("phantom"),
    conda:
        "../envs/tomoseg.yaml"
    params:
        row=run_row,
        phantom=config["phantom"],
    script:
        "../scripts/phantom.py"


rule import_local_tomogram:
    input:
        unpack(source_check("local", path="path")),
    output:
        "results/data/{tomo}/tomogram.mrc",
    log:
        "results/logs/import_local_tomogram/{tomo}.log",
    wildcard_constraints:
        tomo=source_pattern("local"),
    conda:
        "../envs/tomoseg.yaml"
    params:
        # its ground truth's shape is checked here, before any job segments the tomogram
        counterpart=lambda wc: local_truth_path(wc.tomo),
        zarr_voxel_size=config.get("ome_zarr", {}).get("voxel_size"),
    script:
        "../scripts/import_local.py"


rule import_local_truth:
    input:
        unpack(source_check("local", truth=True, path="truth_path")),
    output:
        "results/data/{tomo}/groundtruth.mrc",
    log:
        "results/logs/import_local_truth/{tomo}.log",
    wildcard_constraints:
        tomo=source_pattern("local", truth=True),
    conda:
        "../envs/tomoseg.yaml"
    params:
        binarize=True,
        counterpart=lambda wc: runs.loc[wc.tomo, "path"],
        zarr_voxel_size=config.get("ome_zarr", {}).get("voxel_size"),
    script:
        "../scripts/import_local.py"
