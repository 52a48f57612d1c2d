# Shared definitions of the evaluation stages (evaluate, stats, figures): per-method inputs,
# expected (method, tomo) pairs, allow_missing handling. Functions only; rules are in the stage files.
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
# Provenance record that says whether a method's output is untrained (the stage-1 rule writes its own).
PROVENANCE = {
    "etsam": "results/etsam/{tomo}/provenance.json",
    "etsam_stage1": "results/etsam/{tomo}/stage1_provenance.json",
    "etsam_postprocessed": "results/etsam/{tomo}/provenance.json",
    "membrain": "results/membrain/{tomo}/provenance.json",
    "tardis": "results/tardis/{tomo}/provenance.json",
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
    return PROVENANCE[wildcards.method].format(tomo=wildcards.tomo)


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


SUMMARY_TABLES = [
    "results/tables/table1.csv",
    "results/stats/ttests.csv",
    "results/tables/supp_table1_per_tomogram.csv",
    "results/tables/supp_table2_postprocessed.csv",
    "results/tables/supp_table3_runtime.csv",
    "results/tables/runtime_per_tomogram.csv",
    "results/tables/thresholds.csv",
    "results/tables/calibration.csv",
    "results/tables/auprc.csv",
    "results/tables/stages.csv",
    "results/tables/paper_comparison.csv",
    "results/tables/failures.csv",
]

# Tables that also go into `snakemake --report` (the others are listed there by path).
REPORTED_TABLES = [
    "results/tables/table1.csv",
    "results/tables/failures.csv",
    "results/tables/paper_comparison.csv",
]
UNREPORTED_TABLES = [p for p in SUMMARY_TABLES if p not in REPORTED_TABLES]


def summary_metrics():
    """Strict: every expected metrics file. allow_missing: those whose inputs exist now (the rest are listed)."""
    pairs = expected_metrics()
    if ALLOW_MISSING:
        pairs = [(m, t) for m, t in pairs if evaluable(m, t)]
    return [metrics_json(m, t) for m, t in pairs]


OVERLAY_MASKS = {m: EVAL_INPUTS[m][0] for m in config["methods"]}


def overlay_masks(wildcards):
    """Masks drawn for a tomogram: all configured (strict) or those whose inputs exist (allow_missing)."""
    return {
        m: p.format(tomo=wildcards.tomo)
        for m, p in OVERLAY_MASKS.items()
        if not ALLOW_MISSING
        or all(os.path.exists(f.format(tomo=wildcards.tomo)) for f in method_files(m))
    }


def overlay_inputs(wildcards):
    masks = list(overlay_masks(wildcards).values())
    inputs = {"tomogram": f"results/data/{wildcards.tomo}/tomogram.mrc", "masks": masks}
    if wildcards.tomo in tomos(with_truth=True):
        inputs["truth"] = f"results/data/{wildcards.tomo}/groundtruth.mrc"
    return inputs
