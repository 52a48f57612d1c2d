import functools
import os
import re
import types
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The only package imports at parse time: the method registry, the results-tree layout, the presets and
# the runs sheet (light modules).
from tomoseg.core import layout, planning, presets, runsheet
from tomoseg.core.errors import InputError
from tomoseg.core.methods import METHODS

# The conda environments' post-deploy scripts (workflow/envs/*.post-deploy.sh) install tomoseg from
# $TOMOSEG_SOURCE: this checkout, unless the user named another source (a deployed workflow has none).
CHECKOUT = Path(workflow.basedir).parent
if (CHECKOUT / "pyproject.toml").exists():
    os.environ.setdefault("TOMOSEG_SOURCE", str(CHECKOUT))

try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as err:
    raise WorkflowError(
        "invalid configuration (checked against workflow/schemas/config.schema.yaml)",
        err,
    )

if config["etsam"]["checkpoints"] == "paths":
    _unset = [
        f"etsam.{key}"
        for key in ("stage1_checkpoint", "stage2_checkpoint")
        if not config["etsam"].get(key)
    ]
    if _unset:
        raise WorkflowError(
            f"invalid configuration: etsam.checkpoints is 'paths' but {' and '.join(_unset)} "
            f"{'are' if len(_unset) > 1 else 'is'} not set; give both checkpoint paths, or use checkpoints: zenodo (the published "
            "weights) or test (tiny untrained ones)"
        )

RUNS_COLUMNS = layout.RUNS_COLUMNS


def read_runs_sheet(sheet):
    """The runs sheet as strings (tomoseg.core.runsheet); a sheet it refuses stops the workflow naming it."""
    try:
        return runsheet.read_runs_sheet(sheet)
    except InputError as err:
        raise WorkflowError(str(err))


# What etsam.preset decides, with every key the config sets explicitly (not null) over it: the
# normalization, the ETSAM options and the post-processing of the etsam* methods (tomoseg.core.presets).
PRESET = config["etsam"].get("preset") or "paper"
SETTINGS = presets.resolve(
    PRESET,
    {
        "normalization": config.get("normalization"),
        "etsam": config["etsam"],
        "postprocess": config.get("postprocess") or {},
    },
)

# The report's home page (report/workflow.rst) shows what ran: each preset-decided value as resolved, and
# whether the preset or the config decided it (a null in the config means the preset's).
config["resolved"] = {
    "preset": PRESET,
    **{k: SETTINGS[k] for k in ("normalization", "postprocess")},
    "etsam": {k: SETTINGS["etsam"][k] for k in presets.ETSAM_PRESET_KEYS},
}

runs = read_runs_sheet(config["runs"])
try:
    # No defaults to fill (every column is required above); filling them costs ~1 ms per row.
    validate(runs, schema="../schemas/runs.schema.yaml", set_default=False)
except WorkflowError as err:
    raise WorkflowError(
        f"{config['runs']}: invalid runs sheet (rows counted from 0 after the header; "
        "checked against workflow/schemas/runs.schema.yaml)",
        err,
    )
runsheet.check_unique_keys(runs, config["runs"])
runs = runs.set_index("tomo", drop=False)
# Rows selected for this invocation: the splits named in the config.
selected = runs[runs["split"].isin(config["splits"])]
# The selected rows by key, read once: input functions and params look a key up here, in O(1) per job
# (planning must stay linear in the number of runs; see benchmarks/dag_scaling.py).
SELECTED = selected.to_dict("index")
_TOMOS = {}

# The train/val rows of the training sheet (training.runs; training.smk). Their data files come from the
# same data rules as the selected runs' (phantoms, portal downloads, copick imports under
# results/data/{tomo}/); local rows are used in place.
TRAINING = config.get("training") or {}
TRAIN_ROWS = {}
if TRAINING.get("runs"):
    _train_sheet = read_runs_sheet(TRAINING["runs"])
    TRAIN_ROWS = (
        _train_sheet[_train_sheet["split"].isin(["train", "val"])]
        .set_index("tomo", drop=False)
        .to_dict("index")
    )
for _tomo in TRAIN_ROWS.keys() & SELECTED.keys():
    if TRAIN_ROWS[_tomo] != SELECTED[_tomo]:
        raise WorkflowError(
            f"{_tomo!r} is a row of both {config['runs']} and {TRAINING['runs']} (training.runs) with "
            "different fields; give one of them another key"
        )
# Every row whose data files the data rules may make, by key.
DATA_ROWS = {**TRAIN_ROWS, **SELECTED}


def tomos(source=None, with_truth=None):
    """Keys of the selected runs, optionally of one source or only those with ground truth (computed once per filter)."""
    if (source, with_truth) not in _TOMOS:
        rows = selected
        if source is not None:
            rows = rows[rows["source"] == source]
        if with_truth is not None:
            rows = rows[(rows["truth"] != "none") == with_truth]
        _TOMOS[source, with_truth] = tuple(rows["tomo"])
    return list(_TOMOS[source, with_truth])


TRUTH_KEYS = frozenset(tomos(with_truth=True))

# Sharded planning (shards.smk, docs/scaling.md): above shards.above selected runs, one job per shard of
# shards.size runs and stage instead of one per run and step. Shards are runs in key order, s00000, s00001, ...
SHARDED = len(SELECTED) > config["shards"]["above"]
_keys = sorted(SELECTED)
_size = config["shards"]["size"]
SHARDS = {
    f"s{i // _size:05d}": _keys[i : i + _size] for i in range(0, len(_keys), _size)
}


SHARD_STATUS = "results/shards/status.tsv"


def shard_markers(stage):
    """Every shard's record of `stage`."""
    return [layout.shard_record(stage, shard) for shard in SHARDS]


# Wildcard constraints. {tomo} is one path component; rules check their keys in input functions (a dict
# lookup) instead of listing every key in a regular expression, which Snakemake would rescan for every
# job (quadratic planning). Method and prompt-mode names are a few fixed words and are listed.
wildcard_constraints:
    tomo=r"[^/]+",


NEVER = "(?!x)x"


def one_of(names):
    """A wildcard constraint matching exactly one of a few fixed names (never matching when empty)."""
    return "|".join(re.escape(n) for n in names) if names else NEVER


# Which rule makes a row's tomogram and ground truth, by the row's source and truth columns.
SOURCE_TRUTHS = {
    "phantom": ("phantom",),
    "local": ("local",),
    "cdp": ("dataverse", "cdp"),
    "copick": ("copick",),
}


def _made_by(row, source, truth):
    """Whether a runs-sheet row's files come from the rule of `source` (and, with `truth`, its truth rule)."""
    return row["source"] == source and (
        not truth or row["truth"] in SOURCE_TRUTHS[source]
    )


def source_pattern(source, truth=False):
    """{tomo} constraint for the rules of one source's tomograms (or, with truth, its ground truth).

    Any key when a selected row needs the rule, none otherwise: a workflow with one source (the paper's
    portal rows, the demo's phantoms, a nightly batch) then has one candidate rule per data file.
    """
    needed = any(_made_by(row, source, truth) for row in DATA_ROWS.values())
    return r"[^/]+" if needed else NEVER


def selected_row(tomo):
    """The selected runs-sheet row of `tomo` (a dict); an unknown key is an error naming the sheet."""
    row = SELECTED.get(tomo)
    if row is None:
        raise WorkflowError(
            f"{tomo!r} is not a row of {config['runs']} in the selected splits {config['splits']}"
        )
    return row


def data_row(tomo):
    """The row whose data files `{tomo}` names: a selected run's or a training row's (the data rules')."""
    row = DATA_ROWS.get(tomo)
    if row is None:
        # the error that names the runs sheet and the selected splits
        selected_row(tomo)
    return row


def source_check(source, truth=False, **columns):
    """Input function for the rules of one source's files (or, with truth, its ground truth).

    For a row of that source: the files named by `columns` (input name -> runs-sheet column), often none.
    For a row of another source: a file nothing makes, so that Snakemake discards this rule and takes
    the rule of the row's own source (several sources in one sheet). An unknown key is an error.
    """

    def inputs(wildcards):
        row = data_row(wildcards.tomo)
        if _made_by(row, source, truth):
            return {name: row[column] for name, column in columns.items()}
        return {
            "other_source": f"(runs sheet: {wildcards.tomo} has source {row['source']}, truth {row['truth']})"
        }

    return inputs


def run_row(wildcards):
    """The runs-sheet row of `{tomo}` as a plain dict."""
    return data_row(wildcards.tomo)


# The checkpoint file of stage 1 or 2 that the config selects (tomoseg.core.planning).
etsam_checkpoint = functools.partial(planning.etsam_checkpoint, config["etsam"])


# Engine options of the etsam* methods (tomoseg.core.planning.etsam_options): the params of their rules.
ETSAM_OPTIONS = planning.etsam_options(SETTINGS["etsam"])


# Upstream ETSAM variants (methods etsam_upstream*, tomoseg.core.presets.VARIANTS): each configured one
# runs ETSAM under results/{run}/{tomo}/ with its preset and option; a post-processed variant reads its
# base run's mask. Only the engine keys (device, dtype, ...) come from the config.
VARIANTS = {m: presets.VARIANTS[m] for m in config["methods"] if m in presets.VARIANTS}
VARIANT_RUNS = sorted({v.run for v in VARIANTS.values()})
POSTPROCESSED_VARIANTS = {v.run: v for v in VARIANTS.values() if v.base}


def variant_settings(run):
    """The resolved settings (normalization, etsam, postprocess) of a variant's run."""
    return presets.VARIANTS[run].settings()


def variant_normalized(wildcards):
    """The normalized tomogram a variant's run reads."""
    mode = variant_settings(wildcards.variant)["normalization"]
    return normalized_input(mode).format(tomo=wildcards.tomo)


def normalized_input(mode):
    """The normalized tomogram (with {tomo}) for a normalization: the main one when it is the configured one."""
    if mode == SETTINGS["normalization"]:
        return "results/data/{tomo}/normalized.mrc"
    return f"results/data/{{tomo}}/normalized_{mode}.mrc"


OTHER_NORMALIZATIONS = sorted(
    {variant_settings(r)["normalization"] for r in VARIANT_RUNS}
    - {SETTINGS["normalization"]}
)


# Which rules' benchmark records make up each method's cost: the registry's, evaluate.benchmark_rules over
# them; BENCHMARK_RULES adds the rules of each configured upstream variant.
METHOD_BENCHMARK_RULES = planning.method_benchmark_rules(
    config["evaluate"].get("benchmark_rules")
)
BENCHMARK_RULES = planning.benchmark_rules(
    config["evaluate"].get("benchmark_rules"), VARIANTS
)


# The folder holding workflow/: relative tool paths in the config (e.g. venvs/) start here.
PROJECT_DIR = Path(workflow.basedir).parent


def tool_python(tool):
    """The configured Python of a baseline tool's environment ('' = the rule's own env, e.g. --sdm conda)."""
    python = config["baselines"][tool]["python"]
    if not python:
        return ""
    return str(python if Path(python).is_absolute() else PROJECT_DIR / python)


def checkpoint_input(tool):
    """Snakemake input for a tool's checkpoint: declared when it exists or a rule makes it.

    A missing real checkpoint is left out of the DAG on purpose, so that the job starts and fails at
    once with the message saying where the weights are published (instead of a bare MissingInput).
    """
    options = config["baselines"][tool]
    if options["make_untrained_checkpoint"] or Path(options["checkpoint"]).exists():
        return {"checkpoint": options["checkpoint"]}
    return {}


def local_truth_path(tomo):
    """The local ground truth of `tomo` ('' when its truth is not a local file)."""
    row = runs.loc[tomo]
    return row["truth_path"] if row["truth"] == "local" else ""


def portal_row(wildcards):
    """The runs-sheet fields a download depends on (other columns, e.g. split, must not trigger reruns).

    With download.format ome-zarr the format and ome_zarr.voxel_size join them (they change the file);
    with the default, mrc, the params stay as before, so existing downloads are not redone.
    """
    row = data_row(wildcards.tomo)
    keys = ("tomo", "source", "dataset_id", "run_id", "tomogram_id", "truth")
    fields = {key: row[key] for key in keys}
    if config["download"].get("format", "mrc") == "ome-zarr":
        fields["format"] = "ome-zarr"
        fields["zarr_voxel_size"] = config.get("ome_zarr", {}).get("voxel_size")
    return fields


# copick rows (source copick; copick.smk): `path` is the project's config file, `run_id` the run's name.
COPICK = config["copick"]
COPICK_TRUTH = planning.copick_truth(COPICK)
COPICK_SEGMENTATION = planning.copick_segmentation(COPICK)
if tomos(source="copick") and not COPICK.get("voxel_spacing"):
    raise WorkflowError(
        f"invalid configuration: {config['runs']} has copick rows but copick.voxel_spacing is not set; "
        "give the voxel spacing (Angstrom) of the runs' tomograms to segment (config/README.md)"
    )


COPICK_METHODS = []
if COPICK_SEGMENTATION["write"]:
    COPICK_METHODS = [
        m
        for m in config["methods"]
        if COPICK_SEGMENTATION["methods"] is None or m in COPICK_SEGMENTATION["methods"]
    ]
    _ids = [
        tuple(planning.copick_ids(m, COPICK_SEGMENTATION).values())
        for m in COPICK_METHODS
    ]
    if len(set(_ids)) < len(_ids):
        raise WorkflowError(
            "invalid configuration: copick.segmentation gives several methods the same name, user id and "
            f"session id ({COPICK_SEGMENTATION['name']}, {COPICK_SEGMENTATION['user_id']}, "
            f"{COPICK_SEGMENTATION['session_id']}); put {{method}} into one of them"
        )
# tomoseg's own user ids: a copick ground truth is never one of them (masks written back by an earlier run).
TOMOSEG_USER_IDS = sorted(
    {planning.copick_ids(m, COPICK_SEGMENTATION)["user_id"] for m in METHODS}
)


def copick_row(wildcards):
    """The copick fields of `{tomo}`'s row (a copick row; rules of other sources never ask)."""
    row = data_row(wildcards.tomo)
    return {"config": row["path"], "run": row["run_id"]}


def copick_truth_input(wildcards):
    """Inputs of import_copick_truth: the project's config and the imported tomogram (shape and placement)."""
    inputs = source_check("copick", truth=True, project="path")(wildcards)
    if "project" in inputs:
        inputs["tomogram"] = f"results/data/{wildcards.tomo}/tomogram.mrc"
    return inputs


def copick_export_input(wildcards):
    """Inputs of copick_export: the method's mask of a copick row and the project's config."""
    inputs = source_check("copick", project="path")(wildcards)
    if "project" in inputs:
        inputs["mask"] = METHODS[wildcards.method].mask_path(wildcards.tomo)
    return inputs


# output_format ome-zarr or both: each configured method's mask and scores also as OME-Zarr (rule ome_zarr).
OME_ZARR_OUT = config["output_format"] != "mrc"
MASK_FILES = sorted({METHODS[m].mask for m in METHODS})
SCORE_FILES = sorted({METHODS[m].scores for m in METHODS if METHODS[m].scores})


# instances.write: labelled components of each configured ETSAM method's mask (rule instances).
INSTANCE_METHODS = [
    m
    for m in config["methods"]
    if config["instances"]["write"] and not METHODS[m].baseline
]


def format_targets():
    """Masks written into copick projects (copick.segmentation.write) and OME-Zarr copies (output_format)."""
    targets = [
        f"results/copick/{m}/{t}.json"
        for m in COPICK_METHODS
        for t in tomos(source="copick")
    ]
    for m in INSTANCE_METHODS:
        targets += expand(
            METHODS[m].mask_path().removesuffix(".mrc") + "_instances.mrc", tomo=tomos()
        )
    if OME_ZARR_OUT:
        for m in config["methods"]:
            files = [METHODS[m].mask_path(), METHODS[m].scores_path()]
            targets += expand(
                [f.removesuffix(".mrc") + ".zarr" for f in files if f], tomo=tomos()
            )
    return targets


def all_targets():
    """Everything `rule all` builds; each stage adds its outputs here as it lands."""
    if SHARDED:
        return shard_targets()
    if config["targets"]["scope"] == "runs":
        return run_targets() + format_targets()
    targets = expand("results/data/{tomo}/normalized.mrc", tomo=tomos())
    targets += expand(
        "results/data/{tomo}/groundtruth.mrc", tomo=tomos(with_truth=True)
    )
    if "etsam" in config["methods"]:
        targets += expand(
            "results/etsam/{tomo}/{name}",
            tomo=tomos(),
            name=["mask.mrc", "provenance.json"],
        )
    if "etsam_stage1" in config["methods"]:
        targets += expand("results/etsam/{tomo}/stage1_mask.mrc", tomo=tomos())
    for name in VARIANTS:
        m = METHODS[name]
        targets += expand([m.mask_path(), m.provenance_path()], tomo=tomos())
    for method in ("membrain", "tardis"):
        if method in config["methods"]:
            targets += expand(
                [
                    f"results/{method}/{{tomo}}/mask.mrc",
                    f"results/{method}/{{tomo}}/provenance.json",
                    f"results/benchmarks/{method}/{{tomo}}.gpu.json",
                ],
                tomo=tomos(),
            )
    if "etsam_trained" in config["methods"]:
        targets.append("results/figures/training_curves.png")
    targets += evaluation_targets()
    targets += format_targets()
    return targets


def run_targets():
    """targets scope runs: each selected run's own files (normalized, truth, masks, metrics), nothing shared."""
    metrics = config["targets"].get("metrics", True)
    return [
        path
        for tomo in tomos()
        for path in layout.run_targets(
            tomo, tomo in TRUTH_KEYS, config["methods"], metrics
        )
    ]


def summary_targets():
    """The tables and figures made from every run's metrics: Table 1 and figures, and the ablation tables."""
    if not (config["methods"] and TRUTH_KEYS):
        return []
    targets = ["results/tables/table1.csv", "results/figures/figure1b.png"]
    if ABLATIONS:
        targets += ABLATION_TABLES
    return targets


def theta_map_targets():
    """The ground truth's θ map of every run with ground truth (evaluate.theta_wise; for viewing)."""
    return expand(
        "results/theta/{tomo}/groundtruth_theta.mrc", tomo=tomos(with_truth=True)
    )


def evaluation_targets():
    """Metrics, summary tables, figures and overlays for the configured methods (evaluate.smk etc.)."""
    targets = []
    if not config["methods"]:
        return targets
    if not config["evaluate"]["allow_missing"]:
        targets += [
            f"results/metrics/{m}/{t}.json"
            for m in config["methods"]
            for t in tomos(with_truth=True)
        ]
    targets += summary_targets()
    if config["evaluate"]["theta_wise"]:
        targets += theta_map_targets()
    targets += expand("results/figures/{figure}.png", figure=VIEW_FIGURES)
    if config["evaluate"]["overlays"]:
        targets += expand("results/figures/overlays/{tomo}.png", tomo=tomos())
        targets += expand("results/report/tomograms/{tomo}.html", tomo=tomos())
    return targets
