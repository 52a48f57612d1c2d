"""The workflow's summary step: every table of the paper from the per-tomogram metrics records.

Reads `results/metrics/{method}/{tomo}.json` (+ `.hist.npz`), the rules' benchmark records and the
runs sheet; writes Table 1, the paired tests, Supplementary Tables 1-3, threshold/calibration/AUPRC
tables, single- vs two-stage, the paper comparison and the failures table, plus the pooled PR curves
that Figure 1c draws. Every table marks untrained methods and lists missing tomograms with the reason.
The prompting ablation tables are in `tomoseg.reporting.ablation`, the figures in `tomoseg.reporting.figures`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tomoseg.core.io import read_json, write_json
from tomoseg.core.layout import METHODS_JSON, PR_CURVES, TABLE_FILES
from tomoseg.core.methods import METHODS, PAPER_METHODS, label, method_marks
from tomoseg.evaluation.metrics import (
    ScoreHistogram,
    average_precision,
    dice_at_edges,
    histogram_path,
    pr_curve,
)
from tomoseg.evaluation.stats import METRICS, TTEST_COLUMNS, paired_tests, summary_table
from tomoseg.reporting import planes, tables
from tomoseg.reporting.records import load_records, mean_sd
from tomoseg.reporting.runtime import runtime_records

log = logging.getLogger(__name__)

SUPP_TABLE3_COLUMNS = [
    "method",
    "n",
    "device",
    "runtime_s_mean",
    "runtime_s_sd",
    "cpu_mem_mb_mean",
    "cpu_mem_mb_sd",
    "gpu_mem_mb_mean",
    "gpu_mem_mb_sd",
]
PAIR_COLUMNS = [
    "metric",
    "method_a",
    "mean_a",
    "sd_a",
    "method_b",
    "mean_b",
    "sd_b",
    "mean_difference",
    "percent_change_of_mean",
    "n",
    "ttest_p",
    "marker",
    "shapiro_p",
    "wilcoxon_p",
]


def _histograms(frame: pd.DataFrame) -> Iterator[tuple[str, ScoreHistogram]]:
    """The score histograms of a method's tomograms, loaded one at a time to bound memory."""
    for _, row in frame.iterrows():
        hp = histogram_path(row["_json"])
        if hp.exists():
            yield row["tomo"], ScoreHistogram.load(hp)


# ---------------------------------------------------------------- the summary


@dataclass
class _Summary:
    """What the tables of one summary share: where they go, the scored methods and the notes common to all."""

    results: Path
    frames: dict[str, pd.DataFrame]
    untrained: set[str]
    trained_on: dict[str, str]  # methods whose weights were trained here: what on
    notes: list[str]
    written: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def marks(self) -> dict[str, str]:
        """Label marks: untrained, or what a model trained here learned from."""
        return method_marks(self.untrained, self.trained_on)

    def label(self, method: str) -> str:
        """The method's display name, marked when untrained or trained here."""
        return label(method, self.marks)

    def write(self, key: str, df: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> None:
        """Write table `key` (CSV + Markdown) with its own notes followed by the common ones."""
        self.written[key] = df
        tables.write_table(df, self.results / TABLE_FILES[key], title, [*notes, *self.notes])


def build_summaries(
    expected: Sequence[tuple[str, str]],
    methods: Sequence[str],
    results: str | os.PathLike,
    runs: pd.DataFrame,
    skipped: Sequence[tuple[str, str]] = (),
    thresholds: Sequence[float] = (),
    benchmark_rules: dict[str, list[str]] | None = None,
    method_inputs: dict[str, list[str]] | None = None,
) -> dict[str, pd.DataFrame]:
    """Write every summary table under `results` (see TABLE_FILES) and return them."""
    results = Path(results)
    frames, flags, failures = load_records(expected, results, method_inputs or {})
    untrained = {m for m, v in flags["untrained"].items() if v}
    failures = _with_skipped(failures, skipped)
    summary = _Summary(
        results,
        {m: frames[m] for m in methods if m in frames},
        untrained,
        flags["trained_on"],
        _common_notes(untrained, flags["unknown"], failures, flags["trained_on"]),
    )
    auprc = _write_scores(summary)
    _write_table1_and_tests(summary, auprc)
    _write_per_tomogram(summary, methods, runs)
    _write_stage_pairs(summary)
    planes.write_tables(summary)
    th_rows = _write_thresholds(summary, thresholds)
    s3 = _write_runtime(summary, methods, sorted({t for _, t in expected}), benchmark_rules or {})
    _write_paper_comparison(summary, auprc, s3, th_rows)
    summary.write("failures", failures, "Failed, missing, skipped or undefined tomograms")
    write_json(
        results / METHODS_JSON,
        {
            m: {
                "untrained": m in untrained,
                "untrained_unknown": m in flags["unknown"],
                "trained_on": flags["trained_on"].get(m),
                "n": len(summary.frames.get(m, [])),
            }
            for m in methods
        },
    )
    return summary.written


def _with_skipped(failures: pd.DataFrame, skipped: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """The failures table with a row per tomogram the workflow skipped for every method."""
    rows = pd.DataFrame([{"tomo": t, "method": "all", "status": "skipped", "reason": r} for t, r in skipped])
    return pd.concat([failures, rows], ignore_index=True) if len(rows) else failures


def _common_notes(
    untrained: set[str], unknown: set[str], failures: pd.DataFrame, trained_on: dict[str, str] | None = None
) -> list[str]:
    """Notes under every table: which methods are untrained, trained here or unknown, and missing entries."""
    notes = [
        f"{m}: produced with untrained weights (random/test checkpoints); numbers are not the method's"
        for m in sorted(untrained)
    ]
    notes += [
        f"{m}: weights trained here (tomoseg train) on {what}; see its training record (training.json)"
        for m, what in sorted((trained_on or {}).items())
        if m not in untrained
    ]
    notes += [f"{m}: untrained status unknown (no provenance.json)" for m in sorted(unknown)]
    if len(failures):
        notes.append(
            f"{len(failures)} tomogram/method entries missing, skipped or undefined: see tables/failures.md"
        )
    return notes


# ---------------------------------------------------------------- AUPRC, PR curves, calibration


def _write_scores(summary: _Summary) -> pd.DataFrame:
    """AUPRC and calibration tables and the pooled PR curves (Figure 1c); returns the AUPRC table."""
    auprc_rows, calib_rows, curves = [], [], {}
    for method, frame in summary.frames.items():
        row, calib, curve = _method_scores(method, frame, summary.marks)
        calib_rows += calib
        if row is not None:
            auprc_rows.append(row)
            curves[method] = curve
    auprc = pd.DataFrame(auprc_rows, columns=["method", "pooled_auprc", "mean_auprc", "sd_auprc", "n"])
    summary.write(
        "auprc",
        auprc,
        "AUPRC",
        [
            "pooled: one PR curve over all voxels of all tomograms (the paper's "
            "number); mean: mean ± sd of per-tomogram AUPRC"
        ],
    )
    calib = pd.DataFrame(calib_rows, columns=["method", "scope", "tomo", "best_threshold", "dice"])
    calib["method"] = [summary.label(m) for m in calib["method"]]
    summary.write(
        "calibration",
        calib,
        "Calibration: best logit threshold (Dice)",
        [
            "thresholds on the histogram's bin edges (2^-15 logit units); "
            "for probabilities, p > sigmoid(threshold)",
            "choosing the threshold on the test set (as the paper did for -0.25) is optimistic",
        ],
    )
    write_json(summary.results / PR_CURVES, curves)
    return auprc


def _method_scores(
    method: str, frame: pd.DataFrame, untrained: dict[str, str]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, Any] | None]:
    """One method's AUPRC row, calibration rows and pooled PR curve (None without histograms)."""
    pooled, dice_sum, n_dice, edges = None, None, 0, None
    calib = []
    for tomo, hist in _histograms(frame):
        pooled = hist if pooled is None else pooled + hist
        edges, dice = dice_at_edges(hist)
        if np.isfinite(dice).any():
            dice_sum = np.nan_to_num(dice) if dice_sum is None else dice_sum + np.nan_to_num(dice)
            n_dice += 1
        calib.append(
            {
                "method": method,
                "scope": "tomogram",
                "tomo": tomo,
                "best_threshold": frame.loc[tomo, "best_threshold"],
                "dice": frame.loc[tomo, "best_threshold_dice"],
            }
        )
    if pooled is None:
        return None, calib, None
    ap = average_precision(pooled)
    mean, sd = mean_sd(frame["auprc"].astype(float))
    row = {
        "method": label(method, untrained),
        "pooled_auprc": ap,
        "mean_auprc": mean,
        "sd_auprc": sd,
        "n": int(frame["auprc"].astype(float).notna().sum()),
    }
    calib += _overall_calibration(method, pooled, edges, dice_sum, n_dice)
    return row, calib, {**pr_curve(pooled), "auprc": ap, "untrained": method in untrained}


def _overall_calibration(
    method: str, pooled: ScoreHistogram, edges: np.ndarray, dice_sum: np.ndarray | None, n_dice: int
) -> list[dict[str, Any]]:
    """The best overall threshold two ways: by mean per-tomogram Dice and by pooled Dice."""
    rows = []
    if dice_sum is not None:
        k = int(np.argmax(dice_sum))
        rows.append(
            {
                "method": method,
                "scope": "overall (max mean per-tomogram Dice)",
                "tomo": "",
                "best_threshold": float(edges[k]),
                "dice": float(dice_sum[k] / n_dice),
            }
        )
    pooled_edges, pooled_dice = dice_at_edges(pooled)
    if np.isfinite(pooled_dice).any():
        k = int(np.nanargmax(pooled_dice))
        rows.append(
            {
                "method": method,
                "scope": "overall (max pooled Dice)",
                "tomo": "",
                "best_threshold": float(pooled_edges[k]),
                "dice": float(pooled_dice[k]),
            }
        )
    return rows


# ---------------------------------------------------------------- Table 1 and the paired tests


def _write_table1_and_tests(summary: _Summary, auprc: pd.DataFrame) -> None:
    """Table 1 (with the pooled AUPRC) and the paired tests of the paper's three methods; a model trained here
    gets its row in Table 1 beside them, outside the paper's tests (their Bonferroni alpha stays the paper's)."""
    main = {m: summary.frames[m] for m in PAPER_METHODS if m in summary.frames}
    trained = {m: f for m, f in summary.frames.items() if m in summary.trained_on and m not in main}
    t1 = tables.table1(summary_table({**main, **trained}), METRICS, summary.marks)
    if len(t1):
        pooled_by = dict(zip(auprc["method"], auprc["pooled_auprc"], strict=True))
        t1["pooled_auprc"] = [tables.fmt(pooled_by.get(lbl, math.nan)) for lbl in t1["method"]]
    summary.write("table1", t1, "Table 1: mean ± sd over test tomograms", ["sd with ddof=1"])
    tests, unpaired = paired_tests(main) if len(main) >= 2 else (pd.DataFrame(columns=TTEST_COLUMNS), [])
    notes = [f"unpaired: {r.method_a} only {r.only_a}, {r.method_b} only {r.only_b}" for r in unpaired]
    summary.write(
        "ttests", tests, "Paired tests (Bonferroni alpha = 0.05 / number of pairs; markers on raw p)", notes
    )


# ---------------------------------------------------------------- Supplementary Table 1, per-tomogram tables


def _write_per_tomogram(summary: _Summary, methods: Sequence[str], runs: pd.DataFrame) -> None:
    """Supplementary Table 1 (every method, per tomogram) and each method's per-tomogram table (the figures read them)."""
    key_cols = [c for c in ("dataset_id", "run_id") if c in runs.columns]
    rows = []
    for method, frame in summary.frames.items():
        for _, r in frame.iterrows():
            extra = {c: runs.loc[r["tomo"], c] for c in key_cols} if r["tomo"] in runs.index else {}
            rows.append(
                {
                    "tomo": r["tomo"],
                    **extra,
                    "method": summary.label(method),
                    **{m: r[m] for m in (*METRICS, "auprc")},
                }
            )
    summary.write("supp_table1", pd.DataFrame(rows), "Supplementary Table 1: per tomogram")
    for method in methods:
        frame = summary.frames.get(method, pd.DataFrame(columns=["tomo", *METRICS, "auprc"]))
        per = frame[["tomo", *METRICS, "auprc"]].copy()
        for c in key_cols:
            per[c] = [runs.loc[t, c] if t in runs.index else "" for t in per["tomo"]]
        path = summary.results / "tables" / "per_tomogram" / f"{method}.csv"
        tables.write_table(per, path, f"{method}: per tomogram")


# ---------------------------------------------------------------- Supplementary Table 2 and the stages


def _write_stage_pairs(summary: _Summary) -> None:
    """Supplementary Table 2 (ETSAM before/after post-processing), single- vs two-stage ETSAM, and the
    upstream variants against their references (tomoseg.core.methods: compare_with)."""
    summary.write(
        "supp_table2",
        _pair_table(summary, "etsam", "etsam_postprocessed"),
        "Supplementary Table 2: ETSAM before and after post-processing",
    )
    summary.write(
        "stages", _pair_table(summary, "etsam", "etsam_stage1"), "Single (Stage 1) vs two-stage ETSAM"
    )
    pairs = [
        _pair_table(summary, m.compare_with, m.name)
        for m in METHODS.values()
        if m.compare_with and m.name in summary.frames and m.compare_with in summary.frames
    ]
    summary.write(
        "variants",
        pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame(columns=PAIR_COLUMNS),
        "Upstream ETSAM variants: each against its reference (what the preset or the option changes)",
        [
            "method_a: the reference (etsam for etsam_upstream, else etsam_upstream); method_b: the variant",
            "variants: upstream ETSAM's current defaults (preset upstream) with one upstream option each "
            "(docs/etsam.md)",
        ],
    )


def _pair_table(summary: _Summary, a: str, b: str) -> pd.DataFrame:
    """Method `a` against `b` per metric: means, sds, their difference and the paired tests."""
    frames = summary.frames
    if a not in frames or b not in frames:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    tests, _ = paired_tests({a: frames[a], b: frames[b]})
    rows = []
    for _, t in tests.iterrows():
        ma, sa = mean_sd(frames[a][t["metric"]].astype(float))
        mb, sb = mean_sd(frames[b][t["metric"]].astype(float))
        rows.append(
            {
                "metric": t["metric"],
                "method_a": summary.label(a),
                "mean_a": ma,
                "sd_a": sa,
                "method_b": summary.label(b),
                "mean_b": mb,
                "sd_b": sb,
                "mean_difference": mb - ma,
                "percent_change_of_mean": 100 * (mb - ma) / ma if ma else math.nan,
                "n": t["n"],
                "ttest_p": t["ttest_p"],
                "marker": t["marker"],
                "shapiro_p": t["shapiro_p"],
                "wilcoxon_p": t["wilcoxon_p"],
            }
        )
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


# ---------------------------------------------------------------- thresholds


def _write_thresholds(summary: _Summary, thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """The threshold ablation: mean ± sd over tomograms of each record's threshold table; returns its rows."""
    rows = [
        row
        for method, frame in summary.frames.items()
        for row in _threshold_rows(summary.label(method), frame)
    ]
    summary.write(
        "thresholds",
        pd.DataFrame(rows),
        "Threshold ablation (from the score histograms)",
        [
            f"configured thresholds: {list(thresholds)} (logit units)",
            "n_floor_inexact: tomograms where the threshold lies below the score floor (-max logit); the "
            "histogram merged all lower logits into the floor, so those rows count them as predicted membrane",
            "prompt-mode ablation: tables/supp_table4_stage1_prompts, supp_tables5-8_stage2_prompts "
            "(config evaluate.ablations)",
        ],
    )
    return rows


def _threshold_rows(method_label: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One method's rows of the threshold ablation, a row per threshold in ascending order."""
    per_t: dict[float, list[dict]] = {}
    for path in frame["_json"]:
        record = read_json(path)
        floor = record.get("score_floor_logit")
        for row in record.get("thresholds", []):
            inexact = floor is not None and float(row["threshold"]) < floor
            per_t.setdefault(float(row["threshold"]), []).append({**row, "floor_inexact": inexact})
    rows = []
    for t in sorted(per_t):
        df = pd.DataFrame(per_t[t])
        row = {
            "method": method_label,
            "threshold": t,
            "n": len(df),
            "n_floor_inexact": int(df["floor_inexact"].sum()),
        }
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_sd"] = mean_sd(df[m].astype(float))
        rows.append(row)
    return rows


# ---------------------------------------------------------------- runtime and Supplementary Table 3


def _write_runtime(
    summary: _Summary, methods: Sequence[str], tomos: Sequence[str], benchmark_rules: dict[str, list[str]]
) -> pd.DataFrame:
    """Runtime and memory per tomogram and Supplementary Table 3 (their mean ± sd); returns the latter."""
    rt = runtime_records(list(summary.frames) or list(methods), tomos, summary.results, benchmark_rules)
    summary.write("runtime_per_tomogram", rt, "Runtime and memory per tomogram")
    rows = []
    for method in methods:
        sub = rt[rt["method"] == method]
        if sub.empty:
            continue
        row = {"method": summary.label(method), "n": len(sub), "device": ";".join(sorted(set(sub["device"])))}
        for q in ("runtime_s", "cpu_mem_mb", "gpu_mem_mb"):
            row[f"{q}_mean"], row[f"{q}_sd"] = mean_sd(sub[q].astype(float))
        rows.append(row)
    s3 = pd.DataFrame(rows, columns=SUPP_TABLE3_COLUMNS)
    summary.write(
        "supp_table3",
        s3,
        "Supplementary Table 3: runtime, CPU and GPU memory (mean ± sd over tomograms)",
        [
            "from Snakemake benchmark records (wall-clock s, max RSS MB) and the GPU rules' .gpu.json",
            "runtime sums the method's rules (evaluate: benchmark_rules); memory is the maximum over them",
        ],
    )
    return s3


# ---------------------------------------------------------------- the paper comparison


def _write_paper_comparison(
    summary: _Summary, auprc: pd.DataFrame, s3: pd.DataFrame, th_rows: list[dict[str, Any]]
) -> None:
    """Ours next to the paper's Table 1, AUPRC, Supplementary Table 3 and ETSAM threshold sweep."""
    ours = _paper_quantities(summary, auprc, s3)
    comp = tables.paper_comparison(pd.DataFrame(ours, columns=["method"] if not ours else None))
    comp = pd.concat([comp, _paper_threshold_rows(summary, th_rows)], ignore_index=True)
    comp["method"] = [summary.label(m) for m in comp["method"]]
    scored = sorted({str(t) for f in summary.frames.values() if "tomo" in f for t in f["tomo"]})
    summary.write(
        "paper_comparison",
        comp,
        "Ours vs the paper (Table 1, AUPRC, Supplementary Table 3)",
        [
            "difference = ours - paper; paper hardware: Intel i7-14700K, 32 GB, RTX 4070 12 GB",
            f"ours: the {len(scored)} tomograms of this run ({', '.join(scored)}); the paper: its ten "
            "experimental test tomograms. The numbers are comparable only for a run of the default config's "
            "test set with the published checkpoints",
        ],
    )


def _paper_quantities(summary: _Summary, auprc: pd.DataFrame, s3: pd.DataFrame) -> list[dict[str, Any]]:
    """Our value of each quantity the paper publishes per method (metric means, pooled AUPRC, runtime, memory)."""
    ours = []
    for method in PAPER_METHODS:
        if method not in summary.frames:
            continue
        row: dict[str, Any] = {"method": method}
        for m in METRICS:
            row[m] = mean_sd(summary.frames[method][m].astype(float))[0]
        match = auprc[auprc["method"] == summary.label(method)]
        row["auprc"] = float(match["pooled_auprc"].iloc[0]) if len(match) else math.nan
        srow = s3[s3["method"] == summary.label(method)]
        for q in SUPP_TABLE3_COLUMNS[3:]:
            row[q] = float(srow[q].iloc[0]) if len(srow) else math.nan
        ours.append(row)
    return ours


def _paper_threshold_rows(summary: _Summary, th_rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Paper comparison rows for the ETSAM threshold sweep (Stage 2 at each threshold we tabulate) and Stage 1."""
    ours = {(r["method"], r["threshold"]): r for r in th_rows}
    rows = []
    for _, p in tables.paper_threshold_sweep().iterrows():
        method = p["method"]
        if method not in summary.frames:
            continue
        if method == "etsam_stage1":  # the paper's Stage 1 numbers are of the stage-1 mask itself
            value = mean_sd(summary.frames[method][p["metric"]].astype(float))[0]
            quantity = f"{p['metric']} (stage 1 mask)"
        else:
            r = ours.get((summary.label(method), p["threshold"]))
            if r is None:
                continue
            value = r[f"{p['metric']}_mean"]
            quantity = f"{p['metric']} at logit > {p['threshold']:g}"
        rows.append(
            {
                "method": method,
                "quantity": quantity,
                "paper": p["paper"],
                "ours": value,
                "difference": value - p["paper"],
            }
        )
    out = pd.DataFrame(rows, columns=["method", "quantity", "paper", "ours", "difference"])
    out["method"] = [summary.label(m) for m in out["method"]]
    return out
