"""What the workflow plans from its config: checkpoints, engine options, post-processing params, the
methods' benchmark rules, copick ids and the tomograms of the 3-D views figures, as plain functions of
config sections and the registries.

The workflow's rules (workflow/rules/common.smk) call these at parse time, so the module stays light
(presets, the method registry and the results layout only) and each value is computed here, once, with tests, instead of in
a `.smk` file that no linter or type checker reads. The params they return are the ones the rules always
had: Snakemake reruns a job whose params change.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from tomoseg.core import layout, presets
from tomoseg.core.methods import METHODS

ENGINE_KEYS: tuple[str, ...] = ("model_config", "device", "dtype", "encoder_batch")
"""Engine options that say how to run, not what to compute: a variant takes them from the config."""

COPICK_SEGMENTATION_DEFAULTS: dict[str, Any] = {
    "write": False,
    "methods": None,
    "name": "membrane",
    "user_id": "tomoseg-{method}",
    "session_id": "0",
}
"""How masks are written into a copick project (config `copick.segmentation` goes over these)."""

COPICK_TRUTH_DEFAULTS: dict[str, Any] = {"name": "membrane", "user_id": None, "session_id": None}
"""Which copick segmentation is the ground truth (config `copick.truth` goes over these)."""


def etsam_checkpoint(etsam: Mapping[str, Any], stage: int) -> str:
    """The checkpoint file of `stage` (1 or 2) that the config's `etsam:` section selects."""
    source = etsam["checkpoints"]
    if source == "test":
        return f"resources/etsam/test/etsam_stage{stage}_test.pt"
    if source == "zenodo":
        return f"resources/etsam/etsam_stage{stage}_v1.pt"
    return str(etsam[f"stage{stage}_checkpoint"])


def etsam_options(etsam: Mapping[str, Any]) -> dict[str, Any]:
    """Engine options of the etsam* methods from the resolved `etsam` settings (no checkpoints, resources).

    Without split processing the split keys are left out, so that the paper's jobs keep the params they
    had before split processing existed.
    """
    keys = ["model_config", "device", "dtype", *presets.ETSAM_PRESET_KEYS]
    keys += ["encoder_batch", "keep_aspect", "bin", "bidirectional"]  # the order they always had
    if etsam["split"] == 1:
        keys = [k for k in keys if not k.startswith("split")]
    return {k: etsam[k] for k in keys if etsam.get(k) is not None}


def variant_options(run: str, etsam_config: Mapping[str, Any]) -> dict[str, Any]:
    """Engine options of an upstream variant's run: its preset and option, the config's engine keys."""
    e = presets.VARIANTS[run].settings()["etsam"]
    options = {k: e[k] for k in presets.ETSAM_PRESET_KEYS}
    options.update({k: etsam_config[k] for k in ENGINE_KEYS if etsam_config.get(k) is not None})
    return options


def variant_labels(run: str) -> dict[str, str]:
    """Recorded in a variant's provenance: which variant and preset made it."""
    return {"preset": presets.VARIANTS[run].preset, "variant": run}


def postprocess_params(postprocess: Mapping[str, Any]) -> dict[str, Any]:
    """Params of the postprocess rule: min_slices alone for the paper's thin_noise step, all settings otherwise."""
    if postprocess["steps"] == ["thin_noise"]:
        return {"min_slices": postprocess["min_slices"]}
    return {"settings": postprocess}


def method_benchmark_rules(configured: Mapping[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Which rules' benchmark records make up each method's runtime and memory: its GPU rules and CPU
    rules in the method registry, with `evaluate.benchmark_rules` (when set) over them, per method."""
    rules = {
        name: [*m.gpu_rules, *m.cpu_rules] for name, m in METHODS.items() if name not in presets.VARIANTS
    }
    return {**rules, **dict(configured or {})}


def benchmark_rules(
    configured: Mapping[str, list[str]] | None, variants: Mapping[str, presets.Variant]
) -> dict[str, list[str]]:
    """`method_benchmark_rules`, plus the rules of each configured variant not listed there."""
    rules = method_benchmark_rules(configured)
    for name, v in variants.items():
        own = [f"etsam_variant_stage1/{v.run}", f"etsam_variant_stage2/{v.run}"]
        rules.setdefault(name, own + ([f"postprocess_variant/{v.run}"] if v.base else []))
    return rules


def copick_segmentation(copick: Mapping[str, Any]) -> dict[str, Any]:
    """The config's `copick.segmentation` over its defaults."""
    return {**COPICK_SEGMENTATION_DEFAULTS, **(copick.get("segmentation") or {})}


def copick_truth(copick: Mapping[str, Any]) -> dict[str, Any]:
    """The config's `copick.truth` over its defaults."""
    return {**COPICK_TRUTH_DEFAULTS, **(copick.get("truth") or {})}


def copick_ids(method: str, segmentation: Mapping[str, Any]) -> dict[str, str]:
    """Name, user id and session id of `method`'s copick segmentation ({method} filled in; copick names have no `_`)."""
    fill = method.replace("_", "-")
    return {
        key: str(segmentation[key]).replace("{method}", fill) for key in ("name", "user_id", "session_id")
    }


VIEW_FIGURE_SIZES: dict[str, int] = {"figure2": 3, "figure3": 5, "figure5": 1}
"""How many tomograms each 3-D views figure shows (the paper's Figures 2, 3 and 5)."""


def view_figure_tomograms(
    views: Mapping[str, Sequence[str]],
    selected: Sequence[str],
    with_truth: Collection[str],
    methods: Sequence[str],
) -> dict[str, list[str]]:
    """The tomograms of each 3-D views figure: the configured ones among the selected runs, else the first
    selected runs that fit (Figures 2 and 5 with ground truth, Figure 3 without: the unseen organisms).

    A figure with no tomogram is not made, nor Figure 5 unless both etsam and etsam_postprocessed run.
    """
    fits = {
        "figure2": [t for t in selected if t in with_truth],
        "figure3": [t for t in selected if t not in with_truth],
        "figure5": [t for t in selected if t in with_truth],
    }
    plan = {}
    for figure, size in VIEW_FIGURE_SIZES.items():
        chosen = [t for t in views.get(figure, []) if t in fits[figure]]
        chosen = (chosen or fits[figure])[:size]
        if figure == "figure5" and not {"etsam", "etsam_postprocessed"} <= set(methods):
            chosen = []
        if chosen:
            plan[figure] = chosen
    return plan


def view_figure_rows(
    figure: str,
    tomos: Sequence[str],
    masks: Mapping[str, Mapping[str, str]],
    with_truth: Collection[str],
) -> dict[str, dict[str, Any]]:
    """Per tomogram of a views figure: its tomogram, the masks drawn by column (ground truth first where there is
    one; Figure 5 only etsam and etsam_postprocessed, with their metrics records), from each tomogram's masks by
    method (those the run draws)."""
    shown = ("etsam", "etsam_postprocessed") if figure == "figure5" else None
    rows = {}
    for tomo in tomos:
        drawn = {m: p for m, p in masks[tomo].items() if shown is None or m in shown}
        truth = {"ground truth": layout.data_path(tomo, "groundtruth.mrc")} if tomo in with_truth else {}
        rows[tomo] = {
            "tomogram": layout.data_path(tomo, "tomogram.mrc"),
            "masks": {**truth, **drawn},
            "metrics": {m: layout.metrics_path(m, tomo) for m in drawn} if shown else {},
        }
    return rows


def view_figure_files(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every file a views figure reads (`view_figure_rows`)."""
    return [
        path
        for row in rows.values()
        for path in [row["tomogram"], *row["masks"].values(), *row["metrics"].values()]
    ]
