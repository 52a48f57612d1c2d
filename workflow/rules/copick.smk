# copick projects (tomoseg.acquisition.copick): rows with source copick name a project's config file
# (`path`) and a run (`run_id`); their tomogram (copick.voxel_spacing, copick.tomo_type) and ground truth
# (truth = copick: a segmentation, copick.truth) enter the results tree as MRC, and with
# copick.segmentation.write each method's mask goes back into the run as a copick segmentation.


rule import_copick_tomogram:
    input:
        unpack(source_check("copick", project="path")),
    output:
        "results/data/{tomo}/tomogram.mrc",
    log:
        "results/logs/import_copick_tomogram/{tomo}.log",
    wildcard_constraints:
        tomo=source_pattern("copick"),
    conda:
        "../envs/tomoseg.yaml"
    params:
        row=copick_row,
        voxel_spacing=COPICK["voxel_spacing"],
        tomo_type=COPICK["tomo_type"],
    script:
        "../scripts/import_copick.py"


rule import_copick_truth:
    input:
        unpack(copick_truth_input),
    output:
        "results/data/{tomo}/groundtruth.mrc",
    log:
        "results/logs/import_copick_truth/{tomo}.log",
    wildcard_constraints:
        tomo=source_pattern("copick", truth=True),
    conda:
        "../envs/tomoseg.yaml"
    params:
        row=copick_row,
        voxel_spacing=COPICK["voxel_spacing"],
        truth=COPICK_TRUTH,
        exclude_user_ids=TOMOSEG_USER_IDS,
    script:
        "../scripts/import_copick_truth.py"


rule copick_export:
    input:
        unpack(copick_export_input),
    output:
        "results/copick/{method}/{tomo}.json",
    log:
        "results/logs/copick_export/{method}/{tomo}.log",
    wildcard_constraints:
        method=one_of(COPICK_METHODS),
        tomo=source_pattern("copick"),
    conda:
        "../envs/tomoseg.yaml"
    params:
        row=copick_row,
        ids=lambda wc: planning.copick_ids(wc.method, COPICK_SEGMENTATION),
    script:
        "../scripts/copick_export.py"
