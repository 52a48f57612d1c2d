"""The workflow's summary step: every table of the paper from the per-tomogram metrics records.

Reads `results/metrics/{method}/{tomo}.json` (+ `.hist.npz`), the rules' benchmark records and the
runs sheet; writes Table 1, the paired tests, Supplementary Tables 1-3, threshold/calibration/AUPRC
tables, single- vs two-stage, the paper comparison and the failures table, plus the pooled PR curves
that Figure 1c draws. Every table marks untrained methods and lists missing tomograms with the reason.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tomoseg.core.io import read_json, write_json
from tomoseg.core.layout import ABLATION_FILES, METHODS_JSON, PR_CURVES, TABLE_FILES
from tomoseg.core.methods import PAPER_METHODS, UNTRAINED_MARK, label
from tomoseg.evaluation.metrics import (
    ScoreHistogram,
    average_precision,
    dice_at_edges,
    histogram_path,
    pr_curve,
    threshold_table,
)
from tomoseg.evaluation.stats import METRICS, TTEST_COLUMNS, paired_tests, summary_table
from tomoseg.reporting import tables

log = logging.getLogger(__name__)



def _last_error_line(log_path: Path) -> str | None:
    if not log_path.exists():
        return None
    lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "error" in ln.lower() or "exception" in ln.lower():
            return ln[-300:]
    return lines[-1][-300:] if lines else None


def load_records(
    expected: Sequence[tuple[str, str]],
    results: Path,
    method_inputs: dict[str, list[str]],
) -> tuple[dict[str, pd.DataFrame], dict[str, Any], pd.DataFrame]:
    """Per-method frames of the metrics that exist, untrained flags, and a failures table for the rest."""
    rows: dict[str, list[dict[str, Any]]] = {}
    untrained: dict[str, set[bool | None]] = {}
    failures = []
    for method, tomo in expected:
        path = results / "metrics" / method / f"{tomo}.json"
        if not path.exists():
            missing_inputs = [p.format(tomo=tomo) for p in method_inputs.get(method, [])]
            missing_inputs = [p for p in missing_inputs if not (results.parent / p).exists()]
            err = _last_error_line(results / "logs" / "evaluate" / method / f"{tomo}.log")
            if missing_inputs:
                reason = "method output missing (the method failed or was not run): " + ", ".join(missing_inputs)
            elif err:
                reason = f"evaluation failed: {err}"
            else:
                reason = "metrics not computed (no record, no log)"
            failures.append({"tomo": tomo, "method": method, "status": "missing", "reason": reason})
            continue
        rec = read_json(path)
        if rec.get("status") not in (None, "ok"):
            failures.append({"tomo": tomo, "method": method, "status": rec["status"], "reason": rec.get("reason", "")})
            continue
        for metric, why in (rec.get("undefined") or {}).items():
            failures.append({"tomo": tomo, "method": method, "status": f"{metric} undefined", "reason": why})
        untrained.setdefault(method, set()).add(rec.get("untrained"))
        rows.setdefault(method, []).append(
            {
                "tomo": tomo,
                **{m: rec.get(m, math.nan) for m in (*METRICS, "auprc")},
                "best_threshold": (rec.get("best_threshold") or {}).get("threshold", math.nan),
                "best_threshold_dice": (rec.get("best_threshold") or {}).get("dice", math.nan),
                "untrained": rec.get("untrained"),
                "_json": str(path),
            }
        )
    frames = {m: pd.DataFrame(r).set_index("tomo", drop=False) for m, r in rows.items()}
    flags = {m: (True in v) for m, v in untrained.items()}
    unknown = {m for m, v in untrained.items() if None in v}
    return frames, {"untrained": flags, "unknown": unknown}, pd.DataFrame(
        failures, columns=["tomo", "method", "status", "reason"]
    )


def runtime_records(
    methods: Sequence[str], tomos: Sequence[str], results: Path, benchmark_rules: dict[str, list[str]]
) -> pd.DataFrame:
    """Per method and tomogram: summed runtime, max CPU RSS and max GPU memory over the method's rules."""
    rows = []
    for method in methods:
        rules = benchmark_rules.get(method, [])
        for tomo in tomos:
            seconds, rss, gpu, devices, found = 0.0, math.nan, math.nan, set(), []
            for rule in rules:
                tsv = results / "benchmarks" / rule / f"{tomo}.tsv"
                if not tsv.exists():
                    continue
                found.append(rule)
                bench = pd.read_csv(tsv, sep="\t")
                seconds += float(bench["s"].iloc[-1])
                rss = np.nanmax([rss, float(bench["max_rss"].iloc[-1])]) if "max_rss" in bench else rss
                gj = tsv.with_suffix(".gpu.json")
                if gj.exists():
                    g = read_json(gj)
                    devices.add(str(g.get("gpu_name") or g.get("device")))
                    if g.get("peak_gpu_memory_mb") is not None:
                        gpu = np.nanmax([gpu, float(g["peak_gpu_memory_mb"])])
            if not rules or len(found) != len(rules):
                continue
            rows.append(
                {
                    "method": method,
                    "tomo": tomo,
                    "runtime_s": seconds,
                    "cpu_mem_mb": rss,
                    "gpu_mem_mb": gpu,
                    "device": ";".join(sorted(devices)) or "unknown",
                    "rules": "+".join(rules),
                }
            )
    return pd.DataFrame(rows, columns=["method", "tomo", "runtime_s", "cpu_mem_mb", "gpu_mem_mb", "device", "rules"])


def _mean_sd(values: pd.Series) -> tuple[float, float]:
    v = values.dropna()
    return (float(v.mean()) if len(v) else math.nan, float(v.std(ddof=1)) if len(v) > 1 else math.nan)


def _histograms(frame: pd.DataFrame):
    for _, row in frame.iterrows():
        hp = histogram_path(row["_json"])
        if hp.exists():
            yield row["tomo"], ScoreHistogram.load(hp)


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
    frames = {m: frames[m] for m in methods if m in frames}
    out: dict[str, pd.DataFrame] = {}
    skipped_rows = pd.DataFrame([{"tomo": t, "method": "all", "status": "skipped", "reason": r} for t, r in skipped])
    failures = pd.concat([failures, skipped_rows], ignore_index=True) if len(skipped_rows) else failures
    common_notes = [f"{m}: produced with untrained weights (random/test checkpoints); numbers are not the method's" for m in sorted(untrained)]
    common_notes += [f"{m}: untrained status unknown (no provenance.json)" for m in sorted(flags["unknown"])]
    if len(failures):
        common_notes.append(f"{len(failures)} tomogram/method entries missing, skipped or undefined: see tables/failures.md")

    def write(key: str, df: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> None:
        out[key] = df
        tables.write_table(df, results / TABLE_FILES[key], title, [*notes, *common_notes])

    # pooled histograms, AUPRC, PR curves and calibration (one histogram in memory at a time per method)
    auprc_rows, calib_rows, curves = [], [], {}
    for method, frame in frames.items():
        pooled, dice_sum, n_dice = None, None, 0
        for tomo, hist in _histograms(frame):
            pooled = hist if pooled is None else pooled + hist
            edges, dice = dice_at_edges(hist)
            if np.isfinite(dice).any():
                dice_sum = np.nan_to_num(dice) if dice_sum is None else dice_sum + np.nan_to_num(dice)
                n_dice += 1
            calib_rows.append(
                {"method": method, "scope": "tomogram", "tomo": tomo,
                 "best_threshold": frame.loc[tomo, "best_threshold"], "dice": frame.loc[tomo, "best_threshold_dice"]}
            )
        if pooled is None:
            continue
        per = frame["auprc"].astype(float)
        mean, sd = _mean_sd(per)
        auprc_rows.append(
            {"method": label(method, untrained), "pooled_auprc": average_precision(pooled),
             "mean_auprc": mean, "sd_auprc": sd, "n": int(per.notna().sum())}
        )
        curves[method] = {**pr_curve(pooled), "auprc": average_precision(pooled), "untrained": method in untrained}
        if dice_sum is not None:
            k = int(np.argmax(dice_sum))
            calib_rows.append({"method": method, "scope": "overall (max mean per-tomogram Dice)", "tomo": "",
                               "best_threshold": float(edges[k]), "dice": float(dice_sum[k] / n_dice)})
        pe, pd_ = dice_at_edges(pooled)
        if np.isfinite(pd_).any():
            k = int(np.nanargmax(pd_))
            calib_rows.append({"method": method, "scope": "overall (max pooled Dice)", "tomo": "",
                               "best_threshold": float(pe[k]), "dice": float(pd_[k])})
    auprc = pd.DataFrame(auprc_rows, columns=["method", "pooled_auprc", "mean_auprc", "sd_auprc", "n"])
    write("auprc", auprc, "AUPRC", ["pooled: one PR curve over all voxels of all tomograms (the paper's number); "
                                   "mean: mean ± sd of per-tomogram AUPRC"])
    calib = pd.DataFrame(calib_rows, columns=["method", "scope", "tomo", "best_threshold", "dice"])
    calib["method"] = [label(m, untrained) for m in calib["method"]]
    write("calibration", calib, "Calibration: best logit threshold (Dice)",
          ["thresholds on the histogram's bin edges (2^-15 logit units); for probabilities, p > sigmoid(threshold)",
           "choosing the threshold on the test set (as the paper did for -0.25) is optimistic"])
    write_json(results / PR_CURVES, curves)

    # Table 1 and the paired tests: the paper's three methods
    main = {m: frames[m] for m in PAPER_METHODS if m in frames}
    summary = summary_table(main)
    t1 = tables.table1(summary, METRICS, untrained)
    if len(t1):
        pooled_by = {r["method"]: r for r in auprc_rows}
        t1["pooled_auprc"] = [tables.fmt(pooled_by.get(lbl, {}).get("pooled_auprc", math.nan)) for lbl in t1["method"]]
    write("table1", t1, "Table 1: mean ± sd over test tomograms", ["sd with ddof=1"])
    tests, unpaired = paired_tests(main) if len(main) >= 2 else (pd.DataFrame(columns=TTEST_COLUMNS), [])
    notes = [f"unpaired: {r.method_a} only {r.only_a}, {r.method_b} only {r.only_b}" for r in unpaired]
    write("ttests", tests, "Paired tests (Bonferroni alpha = 0.05 / number of pairs; markers on raw p)", notes)

    # Supplementary Table 1: per tomogram, every method
    key_cols = [c for c in ("dataset_id", "run_id") if c in runs.columns]
    per_rows = []
    for method, frame in frames.items():
        for _, r in frame.iterrows():
            extra = {c: runs.loc[r["tomo"], c] for c in key_cols} if r["tomo"] in runs.index else {}
            per_rows.append({"tomo": r["tomo"], **extra, "method": label(method, untrained),
                             **{m: r[m] for m in (*METRICS, "auprc")}})
    write("supp_table1", pd.DataFrame(per_rows), "Supplementary Table 1: per tomogram")
    for method in methods:
        frame = frames.get(method, pd.DataFrame(columns=["tomo", *METRICS, "auprc"]))
        per = frame[["tomo", *METRICS, "auprc"]].copy()
        for c in key_cols:
            per[c] = [runs.loc[t, c] if t in runs.index else "" for t in per["tomo"]]
        tables.write_table(per, results / "tables" / "per_tomogram" / f"{method}.csv", f"{method}: per tomogram")

    # Supplementary Table 2 (post-processed) and single vs two stage
    write("supp_table2", _pair_table(frames, "etsam", "etsam_postprocessed", untrained),
          "Supplementary Table 2: ETSAM before and after post-processing")
    write("stages", _pair_table(frames, "etsam", "etsam_stage1", untrained), "Single (Stage 1) vs two-stage ETSAM")

    # thresholds: mean ± sd over tomograms of the per-tomogram threshold tables
    th_rows = []
    for method, frame in frames.items():
        per_t: dict[float, list[dict]] = {}
        for path in frame["_json"]:
            record = read_json(path)
            floor = record.get("score_floor_logit")
            for row in record.get("thresholds", []):
                inexact = floor is not None and float(row["threshold"]) < floor
                per_t.setdefault(float(row["threshold"]), []).append({**row, "floor_inexact": inexact})
        for t in sorted(per_t):
            df = pd.DataFrame(per_t[t])
            row = {
                "method": label(method, untrained),
                "threshold": t,
                "n": len(df),
                "n_floor_inexact": int(df["floor_inexact"].sum()),
            }
            for m in METRICS:
                row[f"{m}_mean"], row[f"{m}_sd"] = _mean_sd(df[m].astype(float))
            th_rows.append(row)
    write("thresholds", pd.DataFrame(th_rows), "Threshold ablation (from the score histograms)",
          [f"configured thresholds: {list(thresholds)} (logit units)",
           "n_floor_inexact: tomograms where the threshold lies below the score floor (-max logit); the "
           "histogram merged all lower logits into the floor, so those rows count them as predicted membrane",
           "prompt-mode ablation: tables/supp_table4_stage1_prompts, supp_tables5-8_stage2_prompts "
           "(config evaluate.ablations)"])

    # Supplementary Table 3: runtime and memory
    rt = runtime_records(list(frames) or list(methods), sorted({t for _, t in expected}), results, benchmark_rules or {})
    write("runtime_per_tomogram", rt, "Runtime and memory per tomogram")
    s3 = []
    for method in methods:
        sub = rt[rt["method"] == method]
        if sub.empty:
            continue
        row = {"method": label(method, untrained), "n": len(sub), "device": ";".join(sorted(set(sub["device"])))}
        for q in ("runtime_s", "cpu_mem_mb", "gpu_mem_mb"):
            row[f"{q}_mean"], row[f"{q}_sd"] = _mean_sd(sub[q].astype(float))
        s3.append(row)
    s3df = pd.DataFrame(s3, columns=["method", "n", "device", "runtime_s_mean", "runtime_s_sd", "cpu_mem_mb_mean",
                                     "cpu_mem_mb_sd", "gpu_mem_mb_mean", "gpu_mem_mb_sd"])
    write("supp_table3", s3df, "Supplementary Table 3: runtime, CPU and GPU memory (mean ± sd over tomograms)",
          ["from Snakemake benchmark records (wall-clock s, max RSS MB) and the GPU rules' .gpu.json",
           "runtime sums the method's rules (evaluate: benchmark_rules); memory is the maximum over them"])

    # paper comparison
    ours = []
    for method in PAPER_METHODS:
        if method not in frames:
            continue
        row: dict[str, Any] = {"method": method}
        for m in METRICS:
            row[m] = _mean_sd(frames[method][m].astype(float))[0]
        match = auprc[auprc["method"] == label(method, untrained)]
        row["auprc"] = float(match["pooled_auprc"].iloc[0]) if len(match) else math.nan
        srow = s3df[s3df["method"] == label(method, untrained)]
        for q in ("runtime_s_mean", "runtime_s_sd", "cpu_mem_mb_mean", "cpu_mem_mb_sd", "gpu_mem_mb_mean", "gpu_mem_mb_sd"):
            row[q] = float(srow[q].iloc[0]) if len(srow) else math.nan
        ours.append(row)
    comp = tables.paper_comparison(pd.DataFrame(ours, columns=["method"] if not ours else None))
    comp = pd.concat([comp, _paper_threshold_rows(frames, th_rows, untrained)], ignore_index=True)
    comp["method"] = [label(m, untrained) for m in comp["method"]]
    scored = sorted({str(t) for f in frames.values() if "tomo" in f for t in f["tomo"]})
    write("paper_comparison", comp, "Ours vs the paper (Table 1, AUPRC, Supplementary Table 3)",
          ["difference = ours - paper; paper hardware: Intel i7-14700K, 32 GB, RTX 4070 12 GB",
           f"ours: the {len(scored)} tomograms of this run ({', '.join(scored)}); the paper: its ten experimental "
           "test tomograms. The numbers are comparable only for a run of the default config's test set "
           "with the published checkpoints"])

    write("failures", failures, "Failed, missing, skipped or undefined tomograms")
    write_json(
        results / METHODS_JSON,
        {m: {"untrained": m in untrained, "untrained_unknown": m in flags["unknown"], "n": len(frames.get(m, []))}
         for m in methods},
    )
    return out


# the paper's published numbers exist for its default modes only (etsam_threshold_sweep.csv)
PAPER_DEFAULT_MODES = {1: "grid_first", 2: "empty"}


def ablation_rows(
    frame: pd.DataFrame, thresholds: Sequence[float]
) -> list[dict[str, Any]]:
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
    variants: Sequence[tuple[int, str, str]],
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
    paper = tables.paper_threshold_sweep()
    paper_by = {
        (1 if p["method"] == "etsam_stage1" else 2, float(p["threshold"]), p["metric"]): float(p["paper"])
        for _, p in paper.iterrows()
    }
    cols = ["stage", "mode", "default", "threshold", "n", "n_floor_inexact"]
    cols += [f"{m}_{q}" for m in METRICS for q in ("mean", "sd")] + [f"paper_{m}" for m in METRICS]
    out: dict[int, pd.DataFrame] = {}
    for stage in (1, 2):
        stage_thresholds = [stage1_threshold] if stage == 1 else list(thresholds)
        rows = []
        for st, mode, method in variants:
            if st != stage or method not in frames:
                continue
            per = pd.DataFrame(ablation_rows(frames[method], stage_thresholds))
            for t in stage_thresholds:
                sub = per[per["threshold"] == float(t)] if len(per) else per
                row: dict[str, Any] = {
                    "stage": stage,
                    "mode": mode + (UNTRAINED_MARK if method in untrained else ""),
                    "default": "yes" if mode == default_modes[stage - 1] else "",
                    "threshold": float(t),
                    "n": len(sub),
                    "n_floor_inexact": int(sub["floor_inexact"].sum()) if len(sub) else 0,
                }
                for m in METRICS:
                    row[f"{m}_mean"], row[f"{m}_sd"] = _mean_sd(sub[m].astype(float)) if len(sub) else (math.nan,) * 2
                    has_paper = mode == PAPER_DEFAULT_MODES[stage]
                    row[f"paper_{m}"] = paper_by.get((stage, float(t), m), math.nan) if has_paper else math.nan
                rows.append(row)
        df = pd.DataFrame(rows, columns=cols)
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
        notes += [f"{m}: produced with untrained weights (random/test checkpoints); numbers are not the method's"
                  for m in sorted({mode for st, mode, meth in variants if st == stage and meth in untrained})]
        stage_failures = failures[failures["method"].isin([m for st, _, m in variants if st == stage])]
        notes += [f"{r.method} {r.tomo}: {r.status}: {r.reason}" for r in stage_failures.itertuples()]
        title = ("Supplementary Table 4: Stage 1 prompt modes" if stage == 1
                 else "Supplementary Tables 5-8: Stage 2 prompt modes by threshold")
        tables.write_table(df, results / ABLATION_FILES[stage], title, notes)
        out[stage] = df
    return out


def build_figures(results: str | os.PathLike, methods: Sequence[str], out_dir: str | os.PathLike) -> list[Path]:
    """Figures 1a-1d and 4 from the summary tables (a figure without data says so on its canvas)."""
    from tomoseg.core.io import read_json
    from tomoseg.reporting import figures

    results, out_dir = Path(results), Path(out_dir)
    info = read_json(results / METHODS_JSON)
    untrained = [m for m, v in info.items() if v["untrained"]]
    frames = {}
    for m in methods:
        path = results / "tables" / "per_tomogram" / f"{m}.csv"
        if path.exists() and info.get(m, {}).get("n"):
            frames[m] = pd.read_csv(path, dtype={"tomo": str}).set_index("tomo", drop=False)
    written: list[Path] = []
    main = {m: frames[m] for m in PAPER_METHODS if m in frames}
    if main:
        written += figures.per_tomogram_bars(main, ["dice", "iou"], out_dir / "figure1a", untrained)
        tests = pd.read_csv(results / TABLE_FILES["ttests"])
        written += figures.box_plots(main, tests, list(METRICS), out_dir / "figure1b", untrained)
    else:
        written += figures.placeholder("no etsam/membrain/tardis metrics", out_dir / "figure1a")
        written += figures.placeholder("no etsam/membrain/tardis metrics", out_dir / "figure1b")
    curves = read_json(results / PR_CURVES)
    if curves:
        written += figures.pr_curves(
            {m: c for m, c in curves.items()}, {m: c["auprc"] for m, c in curves.items()}, out_dir / "figure1c", untrained
        )
    else:
        written += figures.placeholder("no score histograms", out_dir / "figure1c")
    s3 = pd.read_csv(results / TABLE_FILES["supp_table3"])
    if len(s3):
        s3["method"] = s3["method"].str.replace(UNTRAINED_MARK, "", regex=False)
        written += figures.runtime_memory(s3, out_dir / "figure1d", untrained)
    else:
        written += figures.placeholder("no benchmark records", out_dir / "figure1d")
    if "etsam" in frames and "etsam_postprocessed" in frames:
        written += figures.postprocess_effect(
            frames["etsam"], frames["etsam_postprocessed"], list(METRICS), out_dir / "figure4", untrained
        )
    else:
        written += figures.placeholder("etsam and etsam_postprocessed not both evaluated", out_dir / "figure4")
    return written


def _pair_table(frames: dict[str, pd.DataFrame], a: str, b: str, untrained: set[str]) -> pd.DataFrame:
    cols = ["metric", "method_a", "mean_a", "sd_a", "method_b", "mean_b", "sd_b", "mean_difference",
            "percent_change_of_mean", "n", "ttest_p", "marker", "shapiro_p", "wilcoxon_p"]
    if a not in frames or b not in frames:
        return pd.DataFrame(columns=cols)
    tests, _ = paired_tests({a: frames[a], b: frames[b]})
    rows = []
    for _, t in tests.iterrows():
        ma, sa = _mean_sd(frames[a][t["metric"]].astype(float))
        mb, sb = _mean_sd(frames[b][t["metric"]].astype(float))
        rows.append({"metric": t["metric"], "method_a": label(a, untrained), "mean_a": ma, "sd_a": sa,
                     "method_b": label(b, untrained), "mean_b": mb, "sd_b": sb,
                     "mean_difference": mb - ma, "percent_change_of_mean": 100 * (mb - ma) / ma if ma else math.nan,
                     "n": t["n"], "ttest_p": t["ttest_p"], "marker": t["marker"], "shapiro_p": t["shapiro_p"],
                     "wilcoxon_p": t["wilcoxon_p"]})
    return pd.DataFrame(rows, columns=cols)


def _paper_threshold_rows(frames: dict[str, pd.DataFrame], th_rows: list[dict], untrained: set[str]) -> pd.DataFrame:
    """Paper comparison rows for the ETSAM threshold sweep (Stage 2 at each threshold we tabulate) and Stage 1."""
    paper = tables.paper_threshold_sweep()
    ours = {(r["method"], r["threshold"]): r for r in th_rows}
    rows = []
    for _, p in paper.iterrows():
        method = p["method"]
        if method not in frames:
            continue
        if method == "etsam_stage1":  # the paper's Stage 1 numbers are of the stage-1 mask itself
            value = _mean_sd(frames[method][p["metric"]].astype(float))[0]
            quantity = f"{p['metric']} (stage 1 mask)"
        else:
            r = ours.get((label(method, untrained), p["threshold"]))
            if r is None:
                continue
            value = r[f"{p['metric']}_mean"]
            quantity = f"{p['metric']} at logit > {p['threshold']:g}"
        rows.append({"method": method, "quantity": quantity, "paper": p["paper"], "ours": value,
                     "difference": value - p["paper"]})
    out = pd.DataFrame(rows, columns=["method", "quantity", "paper", "ours", "difference"])
    out["method"] = [label(m, untrained) for m in out["method"]]
    return out
