# Outputs in other formats (config output_format): each method's mask and scores copied from MRC into a
# multiscale OME-Zarr image beside it, with the MRC's voxel size and origin. The stages themselves write
# MRC (and read it); this rule converts afterwards, so no writer needs to know about OME-Zarr.


rule ome_zarr:
    input:
        "results/{folder}/{tomo}/{name}.mrc",
    output:
        directory("results/{folder}/{tomo}/{name}.zarr"),
    log:
        "results/logs/ome_zarr/{folder}/{tomo}/{name}.log",
    wildcard_constraints:
        folder=one_of(
            sorted({m.folder for m in METHODS.values()}) if OME_ZARR_OUT else []
        ),
        name=one_of([f.removesuffix(".mrc") for f in MASK_FILES + SCORE_FILES]),
    conda:
        "../envs/tomoseg.yaml"
    params:
        mask=lambda wc: f"{wc.name}.mrc" in MASK_FILES,
    script:
        "../scripts/ome_zarr.py"
