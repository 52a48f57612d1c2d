# The normalized tomogram of the etsam* methods (normalization, or the preset's) and, for upstream
# variants that use another normalization, normalized_{mode}.mrc beside it.


rule normalize:
    input:
        "results/data/{tomo}/tomogram.mrc",
    output:
        volume="results/data/{tomo}/normalized.mrc",
        provenance="results/data/{tomo}/normalized.json",
    log:
        "results/logs/normalize/{tomo}.log",
    benchmark:
        "results/benchmarks/normalize/{tomo}.tsv"
    conda:
        "../envs/tomoseg.yaml"
    params:
        mode=SETTINGS["normalization"],
    script:
        "../scripts/normalize.py"


rule normalize_other:
    input:
        "results/data/{tomo}/tomogram.mrc",
    output:
        volume="results/data/{tomo}/normalized_{mode}.mrc",
        provenance="results/data/{tomo}/normalized_{mode}.json",
    log:
        "results/logs/normalize/{tomo}.{mode}.log",
    benchmark:
        "results/benchmarks/normalize/{tomo}.{mode}.tsv"
    wildcard_constraints:
        mode=one_of(OTHER_NORMALIZATIONS),
    conda:
        "../envs/tomoseg.yaml"
    params:
        mode=lambda wc: wc.mode,
    script:
        "../scripts/normalize.py"
