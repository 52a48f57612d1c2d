# Shared definitions of the evaluation stages (evaluate, stats, figures): per-method inputs,
# expected (method, tomo) pairs, allow_missing handling. Functions only; rules are in the stage files.
import os

# Per method (from the registry, tomoseg.core.methods): mask, scores (None = mask only) and how to
# read the scores (see docs/evaluation.md); and the provenance record that says whether it is untrained.
EVAL_INPUTS = {
    name: (m.mask_path(), m.scores_path(), m.score_kind) for name, m in METHODS.items()
}
PROVENANCE = {name: m.provenance_path() for name, m in METHODS.items()}
# Prompting ablation (evaluate.ablations; Supplementary Tables 4-8): ETSAM re-run with each prompt mode.
# Variant "ablation_stage{1,2}_{mode}" is scored like a method; the variant of the configured (default)
# mode reuses the main ETSAM outputs (and their metrics when that method is configured), the others
# are made by the rules in ablation.smk under results/ablation/etsam_stage{1,2}_{mode}/{tomo}/.
# Every Stage 2 variant takes the grid_first Stage 1 logits as input.
ABLATION_MODES = {
    1: ["grid_first", "grid_every_n"],
    2: ["grid_first", "grid_every_n", "empty", "stage1_mask_every_n"],
}
ABLATION_STAGE2_INPUT_MODE = "grid_first"
ABLATIONS = bool(config["evaluate"].get("ablations")) and "etsam" in config["methods"]


def ablation_reuses_main(stage, mode):
    """Whether the variant is the configured ETSAM run itself (so its outputs are reused)."""
    e = SETTINGS["etsam"]
    if stage == 1:
        return mode == e["prompt_stage1"]
    return (
        mode == e["prompt_stage2"] and e["prompt_stage1"] == ABLATION_STAGE2_INPUT_MODE
    )


def ablation_dir(stage, mode):
    """Folder (with {tomo}) of a variant's outputs: the main ETSAM folder when reused."""
    if ablation_reuses_main(stage, mode):
        return "results/etsam/{tomo}"
    return f"results/ablation/etsam_stage{stage}_{mode}/{{tomo}}"


def ablation_computed_modes(stage):
    """Modes of `stage` that the ablation rules compute (not reused from the main run)."""
    return [m for m in ABLATION_MODES[stage] if not ablation_reuses_main(stage, m)]


def ablation_metrics_method(stage, mode):
    """Name under results/metrics/ of a variant's scores (the main method's when it is reused and scored)."""
    main = {1: "etsam_stage1", 2: "etsam"}[stage]
    if ablation_reuses_main(stage, mode) and main in config["methods"]:
        return main
    return f"ablation_stage{stage}_{mode}"


for _stage, _modes in ABLATION_MODES.items():
    for _mode in _modes:
        _dir = ablation_dir(_stage, _mode)
        _name = f"ablation_stage{_stage}_{_mode}"
        if _stage == 1:
            EVAL_INPUTS[_name] = (
                f"{_dir}/stage1_mask.mrc",
                f"{_dir}/stage1_logits.mrc",
                "etsam-logits",
            )
            PROVENANCE[_name] = f"{_dir}/stage1_provenance.json"
        else:
            EVAL_INPUTS[_name] = (
                f"{_dir}/mask.mrc",
                f"{_dir}/stage2_logits.mrc",
                "etsam-logits",
            )
            PROVENANCE[_name] = f"{_dir}/provenance.json"


def ablation_variants():
    """(stage, mode, metrics method) of every variant in the ablation tables (none when disabled)."""
    if not ABLATIONS:
        return []
    return [
        (stage, mode, ablation_metrics_method(stage, mode))
        for stage, modes in ABLATION_MODES.items()
        for mode in modes
    ]


ABLATION_SCORED = sorted(
    {m for _, _, m in ablation_variants()} - set(config["methods"])
)
SCORED_METHODS = [m for m in config["methods"] if EVAL_INPUTS[m][1]] + ABLATION_SCORED
MASK_ONLY_METHODS = [m for m in config["methods"] if not EVAL_INPUTS[m][1]]
ALLOW_MISSING = config["evaluate"]["allow_missing"]
# Plane-wise and theta-wise metrics (evaluate.plane_wise, evaluate.theta_wise): the configured methods only.
EXTENDED_KEYS = ("plane_wise", "plane_empty", "theta_wise", "theta_bins", "theta_k")


def truth_theta(wildcards):
    """Input of an evaluate rule: the ground truth's θ map (rule theta_map) when theta-wise metrics are on."""
    if config["evaluate"]["theta_wise"] and wildcards.method in config["methods"]:
        return f"results/theta/{wildcards.tomo}/groundtruth_theta.mrc"
    return []


def extended_metrics(wildcards):
    """Params of an evaluate rule: the plane-/theta-wise settings for a configured method, none for ablations."""
    if wildcards.method not in config["methods"]:
        return {}
    return {key: config["evaluate"][key] for key in EXTENDED_KEYS}


def method_files(method):
    """Files a method's scoring needs that other stages make (templates with {tomo});
    etsam_postprocessed (and a post-processed variant) is made here from the ETSAM mask (its base run's),
    so that mask is what must exist.
    """
    if method == "etsam_postprocessed":
        return [EVAL_INPUTS["etsam"][0]]
    if method in VARIANTS and VARIANTS[method].base:
        return [EVAL_INPUTS[VARIANTS[method].base][0]]
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


SUMMARY_TABLES = [layout.results_path(f) for f in layout.TABLE_FILES.values()]
# Tables that also go into `snakemake --report` (the others are listed there by path).
REPORTED_TABLES = [
    layout.results_path(layout.TABLE_FILES[key]) for key in layout.REPORTED_TABLES
]
UNREPORTED_TABLES = [p for p in SUMMARY_TABLES if p not in REPORTED_TABLES]
ABLATION_TABLES = [layout.results_path(f) for f in layout.ABLATION_FILES.values()]


def ablation_metrics():
    """Metrics files of the ablation tables: all (strict) or those that exist or can be made (allow_missing).

    Sharded, the status of all shards stands for them (the table reads the metrics files): a strict run
    stops there, listing the failed runs.
    """
    if SHARDED:
        return [SHARD_STATUS]
    pairs = [(m, t) for _, _, m in ablation_variants() for t in tomos(with_truth=True)]
    if ALLOW_MISSING:
        pairs = [(m, t) for m, t in pairs if evaluable(m, t)]
    return [metrics_json(m, t) for m, t in pairs]


def summary_metrics():
    """Strict: every expected metrics file. allow_missing: those whose inputs exist now (the rest are listed).

    Sharded, the status of all shards stands for them (the summary reads the metrics files): a strict run
    stops there, listing the failed runs.
    """
    if SHARDED:
        return [SHARD_STATUS]
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
    """Inputs of a tomogram's overlay: the tomogram, the masks drawn, and its ground truth when it has one."""
    selected_row(wildcards.tomo)  # an unknown key is an error naming the runs sheet
    masks = list(overlay_masks(wildcards).values())
    inputs = {"tomogram": f"results/data/{wildcards.tomo}/tomogram.mrc", "masks": masks}
    if wildcards.tomo in TRUTH_KEYS:
        inputs["truth"] = f"results/data/{wildcards.tomo}/groundtruth.mrc"
    return inputs


def page_metrics(wildcards):
    """Metrics records shown on a tomogram's page: every configured method (allow_missing: those that exist or can be made)."""
    if wildcards.tomo not in TRUTH_KEYS:
        return {}
    return {
        m: metrics_json(m, wildcards.tomo)
        for m in config["methods"]
        if not ALLOW_MISSING or evaluable(m, wildcards.tomo)
    }


# The 3-D views figures (Figures 2, 3, 5; evaluate.views_figures): their tomograms, planned in the package.
VIEW_FIGURES = (
    planning.view_figure_tomograms(
        config["evaluate"]["views"],
        tomos(),
        TRUTH_KEYS,
        config["methods"],
    )
    if config["evaluate"]["views_figures"] and config["methods"]
    else {}
)


def views_rows(wildcards):
    """Per tomogram of a views figure: its tomogram, the masks drawn by column, and (Figure 5) the metrics."""
    figure = wildcards.figure
    return planning.view_figure_rows(
        figure,
        VIEW_FIGURES[figure],
        {t: overlay_masks(types.SimpleNamespace(tomo=t)) for t in VIEW_FIGURES[figure]},
        TRUTH_KEYS,
    )
