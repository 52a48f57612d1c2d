# Post-processing of the ETSAM mask (method etsam_postprocessed): keep 26-connected components whose
# Z bounding-box span (stop - start) is >= postprocess.min_slices (paper: 10).


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
        min_slices=config["postprocess"]["min_slices"],
    script:
        "../scripts/postprocess.py"
