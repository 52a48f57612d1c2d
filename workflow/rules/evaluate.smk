# Scoring of every method's mask (and scores) against the ground truth, per tomogram.
# Outputs: results/metrics/{method}/{tomo}.json (+ .hist.npz for methods with scores); with
# evaluate.theta_wise, the ground truth's θ map per tomogram (rule theta_map), which every method's
# evaluation reads instead of recomputing the truth's normals, and which is there for viewing.
# Per method: mask, scores (None = mask only) and how to read the scores (see docs/evaluation.md).
# Inputs per method and helpers: evaluation_common.smk.


rule evaluate_scored:
    input:
        pred=lambda wc: EVAL_INPUTS[wc.method][0].format(tomo=wc.tomo),
        scores=lambda wc: EVAL_INPUTS[wc.method][1].format(tomo=wc.tomo),
        truth="results/data/{tomo}/groundtruth.mrc",
        truth_theta=truth_theta,
    output:
        json="results/metrics/{method}/{tomo}.json",
        histogram="results/metrics/{method}/{tomo}.hist.npz",
    log:
        "results/logs/evaluate/{method}/{tomo}.log",
    benchmark:
        "results/benchmarks/evaluate/{method}/{tomo}.tsv"
    wildcard_constraints:
        method=one_of(SCORED_METHODS),
    conda:
        "../envs/tomoseg.yaml"
    params:
        score_kind=lambda wc: EVAL_INPUTS[wc.method][2],
        thresholds=config["evaluate"]["thresholds"],
        provenance=provenance_of,
        record_failures=ALLOW_MISSING,
        extended=extended_metrics,
    script:
        "../scripts/evaluate.py"


rule evaluate_mask:
    input:
        pred=lambda wc: EVAL_INPUTS[wc.method][0].format(tomo=wc.tomo),
        truth="results/data/{tomo}/groundtruth.mrc",
        truth_theta=truth_theta,
    output:
        json="results/metrics/{method}/{tomo}.json",
    log:
        "results/logs/evaluate/{method}/{tomo}.log",
    benchmark:
        "results/benchmarks/evaluate/{method}/{tomo}.tsv"
    wildcard_constraints:
        method=one_of(MASK_ONLY_METHODS),
    conda:
        "../envs/tomoseg.yaml"
    params:
        score_kind=None,
        thresholds=config["evaluate"]["thresholds"],
        provenance=provenance_of,
        record_failures=ALLOW_MISSING,
        extended=extended_metrics,
    script:
        "../scripts/evaluate.py"


rule theta_map:
    input:
        truth="results/data/{tomo}/groundtruth.mrc",
    output:
        theta="results/theta/{tomo}/groundtruth_theta.mrc",
    log:
        "results/logs/theta_map/{tomo}.log",
    benchmark:
        "results/benchmarks/theta_map/{tomo}.tsv"
    conda:
        "../envs/tomoseg.yaml"
    params:
        k=config["evaluate"]["theta_k"],
    script:
        "../scripts/theta_map.py"
