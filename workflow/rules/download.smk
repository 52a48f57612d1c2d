# CryoET Data Portal tomograms and their ground truth (Harvard Dataverse or the portal's membrane
# annotations). Planning never touches the network: every input comes from the runs sheet.
# With download.local_rules the two rules run on the submitting host (e.g. a cluster login node).
# The scripts read config["download"] themselves (not as params): changing a timeout must not make
# Snakemake download every tomogram again. download.format ome-zarr (and ome_zarr.voxel_size, the level)
# do change the file: portal_row adds them to params.row.


if config["download"]["local_rules"]:

    localrules:
        download_tomogram,
        download_groundtruth,


rule download_tomogram:
    input:
        unpack(source_check("cdp")),
    output:
        tomogram="results/data/{tomo}/tomogram.mrc",
        source="results/data/{tomo}/tomogram.source.json",
    log:
        "results/logs/download_tomogram/{tomo}.log",
    wildcard_constraints:
        tomo=source_pattern("cdp"),
    conda:
        "../envs/tomoseg.yaml"
    params:
        row=portal_row,
    script:
        "../scripts/download_tomogram.py"


rule download_groundtruth:
    input:
        unpack(source_check("cdp", truth=True)),
        tomogram="results/data/{tomo}/tomogram.mrc",
        source="results/data/{tomo}/tomogram.source.json",
    output:
        truth="results/data/{tomo}/groundtruth.mrc",
        source="results/data/{tomo}/groundtruth.source.json",
    log:
        "results/logs/download_groundtruth/{tomo}.log",
    wildcard_constraints:
        tomo=source_pattern("cdp", truth=True),
    conda:
        "../envs/tomoseg.yaml"
    params:
        row=portal_row,
    script:
        "../scripts/download_groundtruth.py"
