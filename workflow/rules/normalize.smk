rule normalize:
    input:
        "results/data/{tomo}/tomogram.mrc",
    output:
        volume="results/data/{tomo}/normalized.mrc",
        provenance="results/data/{tomo}/normalized.json",
    params:
        mode=config["normalization"],
    log:
        "results/logs/normalize/{tomo}.log",
    benchmark:
        "results/benchmarks/normalize/{tomo}.tsv"
    conda:
        "../../envs/tomoseg.yaml"
    script:
        "../scripts/normalize.py"
