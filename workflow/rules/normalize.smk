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
        mode=config["normalization"],
    script:
        "../scripts/normalize.py"
