# Scoring of every method's mask (and scores) against the ground truth, per tomogram.
# Outputs: results/metrics/{method}/{tomo}.json (+ .hist.npz for methods with scores).
import os

# Per method: mask, scores (None = mask only) and how to read the scores (see docs/evaluation.md).
EVAL_INPUTS = {
    "etsam": (
        "results/etsam/{tomo}/mask.mrc",
        "results/etsam/{tomo}/stage2_logits.mrc",
        "etsam-logits",
    ),
    "etsam_stage1": (
        "results/etsam/{tomo}/stage1_mask.mrc",
        "results/etsam/{tomo}/stage1_logits.mrc",
        "etsam-logits",
    ),
    "etsam_postprocessed": ("results/etsam/{tomo}/mask_postprocessed.mrc", None, None),
    "membrain": (
        "results/membrain/{tomo}/mask.mrc",
        "results/membrain/{tomo}/scores.mrc",
        "logits",
    ),
    "tardis": (
        "results/tardis/{tomo}/mask.mrc",
        "results/tardis/{tomo}/probabilities.mrc",
        "probabilities",
    ),
}
# Folder whose provenance.json says whether a method's output is untrained.
METHOD_FOLDER = {
    "etsam": "etsam",
    "etsam_stage1": "etsam",
    "etsam_postprocessed": "etsam",
    "membrain": "membrain",
    "tardis": "tardis",
}
SCORED_METHODS = [m for m in config["methods"] if EVAL_INPUTS[m][1]]
MASK_ONLY_METHODS = [m for m in config["methods"] if not EVAL_INPUTS[m][1]]
ALLOW_MISSING = config["evaluate"]["allow_missing"]


def method_files(method):
    """Files a method's scoring needs that other stages make (templates with {tomo});
    etsam_postprocessed is made here from the ETSAM mask, so that mask is what must exist.
    """
    if method == "etsam_postprocessed":
        return [EVAL_INPUTS["etsam"][0]]
    return [p for p in EVAL_INPUTS[method][:2] if p]


def provenance_of(wildcards):
    return f"results/{METHOD_FOLDER[wildcards.method]}/{wildcards.tomo}/provenance.json"


def expected_metrics():
    """(method, tomo) pairs scored in this run: configured methods x tomograms with truth."""
    return [(m, t) for m in config["methods"] for t in tomos(with_truth=True)]


def metrics_json(method, tomo):
    return f"results/metrics/{method}/{tomo}.json"


def evaluable(method, tomo):
    """Whether a method's outputs for a tomogram exist (or were already scored)."""
    paths = [p.format(tomo=tomo) for p in method_files(method)]
    paths.append(f"results/data/{tomo}/groundtruth.mrc")
    return os.path.exists(metrics_json(method, tomo)) or all(
        os.path.exists(p) for p in paths
    )


def available(paths):
    """All paths (strict), or only those that exist (evaluate.allow_missing: true)."""
    return [p for p in paths if os.path.exists(p)] if ALLOW_MISSING else list(paths)


rule evaluate_scored:
    input:
        pred=lambda wc: EVAL_INPUTS[wc.method][0].format(tomo=wc.tomo),
        scores=lambda wc: EVAL_INPUTS[wc.method][1].format(tomo=wc.tomo),
        truth="results/data/{tomo}/groundtruth.mrc",
    output:
        json="results/metrics/{method}/{tomo}.json",
        histogram="results/metrics/{method}/{tomo}.hist.npz",
    log:
        "results/logs/evaluate/{method}/{tomo}.log",
    benchmark:
        "results/benchmarks/evaluate/{method}/{tomo}.tsv"
    wildcard_constraints:
        method=key_pattern(SCORED_METHODS),
        tomo=key_pattern(tomos(with_truth=True)),
    conda:
        "../../envs/tomoseg.yaml"
    params:
        score_kind=lambda wc: EVAL_INPUTS[wc.method][2],
        thresholds=config["evaluate"]["thresholds"],
        provenance=provenance_of,
        record_failures=ALLOW_MISSING,
    script:
        "../scripts/evaluate.py"


rule evaluate_mask:
    input:
        pred=lambda wc: EVAL_INPUTS[wc.method][0].format(tomo=wc.tomo),
        truth="results/data/{tomo}/groundtruth.mrc",
    output:
        json="results/metrics/{method}/{tomo}.json",
    log:
        "results/logs/evaluate/{method}/{tomo}.log",
    benchmark:
        "results/benchmarks/evaluate/{method}/{tomo}.tsv"
    wildcard_constraints:
        method=key_pattern(MASK_ONLY_METHODS),
        tomo=key_pattern(tomos(with_truth=True)),
    conda:
        "../../envs/tomoseg.yaml"
    params:
        score_kind=None,
        thresholds=config["evaluate"]["thresholds"],
        provenance=provenance_of,
        record_failures=ALLOW_MISSING,
    script:
        "../scripts/evaluate.py"
