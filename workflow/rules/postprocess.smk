# Post-processing of the ETSAM mask (method etsam_postprocessed): the steps of postprocess.steps (or the
# preset's): thin_noise keeps 26-connected components whose Z bounding-box span (stop - start) is
# >= min_slices (paper: 10); rungs cuts short skeleton bridges between parallel membranes (upstream).
# A post-processed upstream variant post-processes its base run's mask with the upstream preset's steps.


rule postprocess:
    input:
        "results/etsam/{tomo}/mask.mrc",
    output:
        mask="results/etsam/{tomo}/mask_postprocessed.mrc",
        provenance="results/etsam/{tomo}/mask_postprocessed.json",
    log:
        "results/logs/postprocess/{tomo}.log",
    benchmark:
        "results/benchmarks/postprocess/{tomo}.tsv"
    conda:
        "../envs/tomoseg.yaml"
    params:
        **planning.postprocess_params(SETTINGS["postprocess"]),
    script:
        "../scripts/postprocess.py"


rule postprocess_variant:
    input:
        "results/{variant}/{tomo}/mask.mrc",
    output:
        mask="results/{variant}/{tomo}/mask_postprocessed.mrc",
        provenance="results/{variant}/{tomo}/mask_postprocessed.json",
    log:
        "results/logs/postprocess_variant/{variant}/{tomo}.log",
    benchmark:
        "results/benchmarks/postprocess_variant/{variant}/{tomo}.tsv"
    wildcard_constraints:
        variant=one_of(sorted(POSTPROCESSED_VARIANTS)),
    conda:
        "../envs/tomoseg.yaml"
    params:
        settings=lambda wc: POSTPROCESSED_VARIANTS[wc.variant].settings()["postprocess"],
    script:
        "../scripts/postprocess.py"


# instances.write: labelled 26-connected components of an ETSAM method's mask (1 = largest), size-filtered.
rule instances:
    input:
        "results/{folder}/{tomo}/{mask}.mrc",
    output:
        labels="results/{folder}/{tomo}/{mask}_instances.mrc",
        provenance="results/{folder}/{tomo}/{mask}_instances.provenance.json",
    log:
        "results/logs/instances/{folder}/{tomo}/{mask}.log",
    benchmark:
        "results/benchmarks/instances/{folder}/{tomo}/{mask}.tsv"
    wildcard_constraints:
        folder=one_of(sorted({METHODS[m].folder for m in METHODS})),
        mask=one_of(sorted({METHODS[m].mask.removesuffix(".mrc") for m in METHODS})),
    conda:
        "../envs/tomoseg.yaml"
    params:
        min_voxels=config["instances"]["min_voxels"],
    script:
        "../scripts/instances.py"
