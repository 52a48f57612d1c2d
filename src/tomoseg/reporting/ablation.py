"""The prompting ablation tables: Supplementary Table 4 (Stage 1 prompt modes) and Tables 5-8 (Stage 2 modes).

Each prompt-mode variant is scored by the evaluation rules as a method of its own
("ablation_stage{1,2}_{mode}"); its tables come from the variants' score histograms, mean ± sd over
tomograms, with the paper's means beside ours for the paper's default modes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tomoseg.core.io import read_json
from tomoseg.core.layout import ABLATION_FILES
from tomoseg.core.methods import UNTRAINED_MARK
from tomoseg.evaluation.metrics import ScoreHistogram, histogram_path, threshold_table
from tomoseg.evaluation.stats import METRICS
from tomoseg.reporting import tables
from tomoseg.reporting.records import load_records, mean_sd

# the paper's published numbers exist for its default modes only (etsam_threshold_sweep.csv)
PAPER_DEFAULT_MODES = {1: "grid_first", 2: "empty"}
ABLATION_COLUMNS = [
    "stage",
    "mode",
    "default",
    "threshold",
    "n",
    "n_floor_inexact",
    *(f"{m}_{q}" for m in METRICS for q in ("mean", "sd")),
    *(f"paper_{m}" for m in METRICS),
]
TITLES = {
    1: "Supplementary Table 4: Stage 1 prompt modes",
    2: "Supplementary Tables 5-8: Stage 2 prompt modes by threshold",
}

Variant = tuple[int, str, str]
"""An ablation variant: ETSAM stage, prompt mode, and the method name its metrics are recorded under."""


def ablation_rows(frame: pd.DataFrame, thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """Per tomogram and threshold: Dice/IoU/P/R of 'logit > t' from the tomogram's score histogram, and
    whether t lies below the score floor (-max logit), where the histogram merged lower logits into it."""
    rows = []
    for _, r in frame.iterrows():
        hp = histogram_path(r["_json"])
        if not hp.exists():
            continue
        floor = read_json(r["_json"]).get("score_floor_logit")
        for row in threshold_table(ScoreHistogram.load(hp), thresholds):
            inexact = floor is not None and row["threshold"] < floor
            rows.append({"tomo": r["tomo"], **row, "floor_inexact": inexact})
    return rows


def build_ablation_tables(
    variants: Sequence[Variant],
    tomos: Sequence[str],
    results: str | os.PathLike,
    stage1_threshold: float = 0.0,
    thresholds: Sequence[float] = (),
    default_modes: tuple[str, str] = ("grid_first", "empty"),
    method_inputs: dict[str, list[str]] | None = None,
) -> dict[int, pd.DataFrame]:
    """The prompting ablation tables (Supplementary Table 4: Stage 1 modes at `stage1_threshold`; Tables 5-8:
    Stage 2 modes at each of `thresholds`): mean ± sd over tomograms from the metrics histograms of each
    variant (stage, mode, metrics method name), with the paper's means beside ours where it has them."""
    results = Path(results)
    expected = [(m, t) for _, _, m in variants for t in tomos]
    frames, flags, failures = load_records(expected, results, method_inputs or {})
    untrained = {m for m, v in flags["untrained"].items() if v}
    paper = _paper_means()
    out: dict[int, pd.DataFrame] = {}
    for stage in (1, 2):
        stage_variants = [v for v in variants if v[0] == stage]
        stage_thresholds = [stage1_threshold] if stage == 1 else list(thresholds)
        rows = [
            row
            for _, mode, method in stage_variants
            if method in frames
            for row in _variant_rows(
                stage,
                mode,
                method in untrained,
                mode == default_modes[stage - 1],
                ablation_rows(frames[method], stage_thresholds),
                stage_thresholds,
                paper,
            )
        ]
        df = pd.DataFrame(rows, columns=ABLATION_COLUMNS)
        notes = _stage_notes(stage, stage_variants, untrained, failures)
        tables.write_table(df, results / ABLATION_FILES[stage], TITLES[stage], notes)
        out[stage] = df
    return out


def _paper_means() -> dict[tuple[int, float, str], float]:
    """The paper's ETSAM means by (stage, threshold, metric)."""
    return {
        (1 if p["method"] == "etsam_stage1" else 2, float(p["threshold"]), p["metric"]): float(p["paper"])
        for _, p in tables.paper_threshold_sweep().iterrows()
    }


def _variant_rows(
    stage: int,
    mode: str,
    untrained: bool,
    default: bool,
    per_tomogram: list[dict[str, Any]],
    thresholds: Sequence[float],
    paper: dict[tuple[int, float, str], float],
) -> list[dict[str, Any]]:
    """One variant's rows, one per threshold: mean ± sd over its tomograms and the paper's mean if published."""
    per = pd.DataFrame(per_tomogram)
    has_paper = mode == PAPER_DEFAULT_MODES[stage]
    rows = []
    for t in thresholds:
        sub = per[per["threshold"] == float(t)] if len(per) else per
        row: dict[str, Any] = {
            "stage": stage,
            "mode": mode + (UNTRAINED_MARK if untrained else ""),
            "default": "yes" if default else "",
            "threshold": float(t),
            "n": len(sub),
            "n_floor_inexact": int(sub["floor_inexact"].sum()) if len(sub) else 0,
        }
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_sd"] = mean_sd(sub[m].astype(float)) if len(sub) else (math.nan,) * 2
            row[f"paper_{m}"] = paper.get((stage, float(t), m), math.nan) if has_paper else math.nan
        rows.append(row)
    return rows


def _stage_notes(
    stage: int, variants: Sequence[Variant], untrained: set[str], failures: pd.DataFrame
) -> list[str]:
    """Notes under a stage's table: how it is computed, untrained variants and each failed variant/tomogram."""
    notes = [
        "mean ± sd (ddof=1) over test tomograms of 'logit > threshold', from the per-tomogram score histograms",
        "paper_*: the paper's means (etsam_threshold_sweep.csv), published for its default modes only "
        f"(Stage 1 {PAPER_DEFAULT_MODES[1]}, Stage 2 {PAPER_DEFAULT_MODES[2]})",
        "default = the configured prompt mode (etsam.prompt_stage1 / prompt_stage2)",
        "n_floor_inexact: tomograms where the threshold lies below the score floor (-max logit); there "
        "logits below the floor were merged into it and count as above the threshold",
    ]
    if stage == 2:
        notes.append("every Stage 2 variant takes the grid_first Stage 1 logits as input")
    notes += [
        f"{m}: produced with untrained weights (random/test checkpoints); numbers are not the method's"
        for m in sorted({mode for _, mode, method in variants if method in untrained})
    ]
    stage_failures = failures[failures["method"].isin([m for _, _, m in variants])]
    notes += [f"{r.method} {r.tomo}: {r.status}: {r.reason}" for r in stage_failures.itertuples()]
    return notes
