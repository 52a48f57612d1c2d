"""Figures: per-tomogram bars (1a), box plots with significance markers (1b), PR curves (1c),
runtime/memory (1d), post-processing before/after (4), recall and precision per θ bin, the threshold
explorer. The per-tomogram slice overlays and Dice along Z are in `tomoseg.reporting.overlays`.

`build_figures` draws Figures 1a-1d, 4 and the θ-bin figure from the tables the summary step wrote.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tomoseg.core.io import atomic_path, read_json  # noqa: E402
from tomoseg.core.layout import METHODS_JSON, PR_CURVES, TABLE_FILES  # noqa: E402
from tomoseg.core.methods import PAPER_METHODS, colour, label, method_marks, unlabel  # noqa: E402
from tomoseg.evaluation.metrics import ScoreHistogram  # noqa: E402
from tomoseg.evaluation.stats import METRICS, MIN_TEST_N, too_few_marker  # noqa: E402

log = logging.getLogger(__name__)

METRIC_LABELS = {"dice": "Dice", "iou": "IoU", "precision": "Precision", "recall": "Recall", "auprc": "AUPRC"}

plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9})


def save(fig: plt.Figure, stem: str | os.PathLike, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Save `fig` as `<stem>.png` (150 dpi) and `<stem>.pdf` (or the given `formats`), atomically; close it."""
    stem = Path(stem)
    paths = []
    for ext in formats:
        path = stem.with_suffix(f".{ext}")
        with atomic_path(path, suffix=f".part.{ext}") as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext)
        log.info("wrote %s", path)
        paths.append(path)
    plt.close(fig)
    return paths


def placeholder(message: str, stem: str | os.PathLike) -> list[Path]:
    """A figure that states why it has no data (so that every declared figure exists)."""
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, f"not available:\n{message}", ha="center", va="center")
    return save(fig, stem)


def box_plots(
    frames: dict[str, pd.DataFrame],
    tests: pd.DataFrame,
    metrics: Sequence[str],
    stem: str | os.PathLike,
    untrained: Iterable[str] = (),
    title: str | None = None,
) -> list[Path]:
    """Figure 1b: per-metric box plots of all methods with significance markers (first method vs others)."""
    methods = list(frames)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        data = [frames[m][metric].dropna().to_numpy(float) for m in methods]
        bp = ax.boxplot(data, patch_artist=True, widths=0.6, medianprops={"color": "black"}, showfliers=False)
        for patch, m in zip(bp["boxes"], methods, strict=True):
            patch.set_facecolor(colour(m, methods))
            patch.set_alpha(0.75)
        rng = np.random.default_rng(0)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=10, color="black", zorder=3)
        ax.set_xticks(
            range(1, len(methods) + 1), [label(m, untrained) for m in methods], rotation=30, ha="right"
        )
        ax.set_title(METRIC_LABELS.get(metric, metric))
        ax.set_ylim(0, 1.0 + 0.1 * max(len(methods) - 1, 1))
        ax.set_yticks(np.linspace(0, 1, 6))
        # brackets: first method against each other method
        level = 1.02
        for j, other in enumerate(methods[1:], start=2):
            row = tests[
                (tests["metric"] == metric) & (tests["method_a"] == methods[0]) & (tests["method_b"] == other)
            ]
            if row.empty:
                continue
            n = int(row.iloc[0]["n"]) if "n" in row.columns and pd.notna(row.iloc[0]["n"]) else 0
            # the paired-tests table's rule (stats.MIN_TEST_N), also for a table written before it had it
            text = row.iloc[0]["marker"] if n >= MIN_TEST_N else too_few_marker(n)
            ax.plot([1, 1, j, j], [level, level + 0.02, level + 0.02, level], color="black", lw=0.8)
            ax.text(
                (1 + j) / 2,
                level + 0.025,
                text,
                ha="center",
                va="bottom",
                fontsize=9 if n >= MIN_TEST_N else 7,
                color="black" if n >= MIN_TEST_N else "#666666",
            )
            level += 0.08
    axes[0][0].set_ylabel("score")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save(fig, stem)


def per_tomogram_bars(
    frames: dict[str, pd.DataFrame],
    metrics: Sequence[str],
    stem: str | os.PathLike,
    untrained: Iterable[str] = (),
) -> list[Path]:
    """Figure 1a: grouped bars of each metric per tomogram and method."""
    methods = list(frames)
    tomos = sorted(set().union(*(set(f.index) for f in frames.values())))
    fig, axes = plt.subplots(
        len(metrics),
        1,
        figsize=(max(6, 0.7 * len(tomos) * len(methods) / 2 + 2), 2.6 * len(metrics)),
        squeeze=False,
    )
    width = 0.8 / len(methods)
    x = np.arange(len(tomos))
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        for i, m in enumerate(methods):
            values = frames[m][metric].reindex(tomos).to_numpy(float)
            pos = x + (i - (len(methods) - 1) / 2) * width
            ax.bar(pos, values, width, color=colour(m, methods), label=label(m, untrained))
            for p, v in zip(pos, values, strict=True):
                if np.isnan(v):  # missing, failed or undefined: say so instead of an empty gap
                    ax.text(
                        p,
                        0.02,
                        "n/a",
                        ha="center",
                        va="bottom",
                        rotation=90,
                        fontsize=7,
                        color=colour(m, methods),
                    )
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_ylim(0, 1)
        ax.set_xticks(x, tomos, rotation=30, ha="right")
    axes[0, 0].legend(ncols=min(len(methods), 3), loc="lower left", bbox_to_anchor=(0, 1.02))
    fig.tight_layout()
    return save(fig, stem)


def pr_curves(
    curves: dict[str, dict[str, list[float]]],
    auprc: dict[str, float],
    stem: str | os.PathLike,
    untrained: Iterable[str] = (),
) -> list[Path]:
    """Figure 1c: pooled precision-recall curve per method with the pooled AUPRC in the legend."""
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    methods = list(curves)
    for m in methods:
        c = curves[m]
        ax.plot(
            c["recall"],
            c["precision"],
            color=colour(m, methods),
            lw=1.6,
            label=f"{label(m, untrained)} (AUPRC {auprc[m]:.4f})",
        )
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    # outside the axes, so that no curve hides behind it
    ax.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, frameon=False)
    ax.set_title("Pooled precision-recall (all voxels)")
    fig.tight_layout()
    return save(fig, stem)


def runtime_memory(table: pd.DataFrame, stem: str | os.PathLike, untrained: Iterable[str] = ()) -> list[Path]:
    """Figure 1d: runtime, CPU memory and GPU memory per method (mean ± sd over tomograms)."""
    quantities = [
        ("runtime_s", "Runtime (s)"),
        ("cpu_mem_mb", "CPU memory (MB)"),
        ("gpu_mem_mb", "GPU memory (MB)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    methods = list(table["method"])
    for ax, (q, title) in zip(axes, quantities, strict=True):
        means = table[f"{q}_mean"].to_numpy(float)
        sds = table[f"{q}_sd"].to_numpy(float)
        ax.set_title(title)
        if np.isnan(means).all():  # e.g. GPU memory of a CPU-only run: say so instead of an empty axis
            what = "GPU" if q.startswith("gpu") else ("CPU memory" if q.startswith("cpu") else "runtime")
            ax.text(0.5, 0.5, f"no {what} records", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.bar(
            range(len(methods)),
            np.nan_to_num(means),
            yerr=np.nan_to_num(sds),
            capsize=3,
            color=[colour(m, methods) for m in methods],
        )
        for i, v in enumerate(means):
            if np.isnan(v):
                ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(methods)), [label(m, untrained) for m in methods], rotation=30, ha="right")
    fig.tight_layout()
    return save(fig, stem)


def theta_bin_bars(table: pd.DataFrame, stem: str | os.PathLike, untrained: Iterable[str] = ()) -> list[Path]:
    """Recall and precision per θ bin per method: bars mean ± sd over tomograms, dots pooled over voxels."""
    methods = list(dict.fromkeys(table["method"]))
    bins = list(dict.fromkeys(table["bin"]))
    width = 0.8 / max(1, len(methods))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, metric, title in zip(
        axes,
        ("recall", "precision"),
        ("Recall (truth normals)", "Precision (prediction normals)"),
        strict=True,
    ):
        for i, method in enumerate(methods):
            rows = table[table["method"] == method].set_index("bin").reindex(bins)
            x = np.arange(len(bins)) + (i - (len(methods) - 1) / 2) * width
            ax.bar(
                x,
                np.nan_to_num(rows[f"{metric}_mean"].to_numpy(float)),
                width,
                yerr=np.nan_to_num(rows[f"{metric}_sd"].to_numpy(float)),
                capsize=2,
                color=colour(method, methods),
                label=label(method, untrained),
            )
            ax.plot(x, rows[f"pooled_{metric}"].to_numpy(float), "k.", markersize=4)
        ax.set_xticks(range(len(bins)), [f"{b}°" for b in bins])
        ax.set_xlabel("θ: membrane normal vs beam axis")
        ax.set_title(title)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("mean ± sd over tomograms (dots: pooled)")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout()
    return save(fig, stem)


def postprocess_effect(
    before: pd.DataFrame,
    after: pd.DataFrame,
    metrics: Sequence[str],
    stem: str | os.PathLike,
    untrained: Iterable[str] = (),
) -> list[Path]:
    """Figure 4: per-tomogram metric before vs after post-processing (paired points joined by lines)."""
    common = before.index.intersection(after.index, sort=False)
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        b, a = before.loc[common, metric].to_numpy(float), after.loc[common, metric].to_numpy(float)
        for yb, ya in zip(b, a, strict=True):
            ax.plot([0, 1], [yb, ya], color="#999999", lw=0.8)
        ax.scatter(np.zeros(len(b)), b, color=colour("etsam"), zorder=3, s=14)
        ax.scatter(np.ones(len(a)), a, color=colour("etsam_postprocessed"), zorder=3, s=14)
        ax.set_xticks(
            [0, 1],
            [label("etsam", untrained), label("etsam_postprocessed", untrained)],
            rotation=30,
            ha="right",
        )
        ax.set_xlim(-0.4, 1.4)
        ax.set_title(f"{METRIC_LABELS.get(metric, metric)} (mean Δ {np.nanmean(a - b):+.4f})")
    fig.tight_layout()
    return save(fig, stem)


EXPLORER_THRESHOLDS = np.round(np.arange(-4.0, 4.0001, 0.125), 6)
"""Logit thresholds of the threshold explorer (multiples of 2^-15, so exact on the histogram's bin edges)."""


def threshold_curves(
    histograms: Iterable[tuple[str, ScoreHistogram]], thresholds: Sequence[float] = tuple(EXPLORER_THRESHOLDS)
) -> dict[str, np.ndarray]:
    """Per tomogram, Dice and mask fraction of "logit > t" for each t, from stored score histograms.

    Returns arrays of shape (tomograms, thresholds): "dice" and "fraction" (the fraction of voxels marked).
    """
    dice, fraction = [], []
    for _, hist in histograms:
        pos, total = hist.n_pos, hist.n_pos + hist.n_neg
        d, f = [], []
        for t in thresholds:
            tp, fp = hist.counts_above(float(t))
            d.append(2 * tp / (tp + fp + pos) if tp + fp + pos else np.nan)
            f.append((tp + fp) / total if total else np.nan)
        dice.append(d)
        fraction.append(f)
    shape = (len(dice), len(thresholds))
    return {
        "dice": np.array(dice, float).reshape(shape),
        "fraction": np.array(fraction, float).reshape(shape),
    }


def threshold_explorer(
    curves: dict[str, dict[str, np.ndarray]],
    stem: str | os.PathLike,
    thresholds: Sequence[float] = tuple(EXPLORER_THRESHOLDS),
    untrained: Iterable[str] = (),
    defaults: dict[str, float] | None = None,
) -> list[Path]:
    """Mean Dice and mean mask fraction against the logit threshold per method (band: min-max over tomograms).

    Lets a user choose a threshold from the stored histograms without re-running anything; the dotted
    line marks each method's configured threshold where given.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
    order = list(curves)
    x = np.asarray(thresholds, float)
    for m, c in curves.items():
        for ax, key in zip(axes, ("dice", "fraction"), strict=True):
            values = c[key]
            if not len(values):
                continue
            ax.plot(x, np.nanmean(values, axis=0), color=colour(m, order), lw=1.6, label=label(m, untrained))
            if len(values) > 1:
                ax.fill_between(
                    x,
                    np.nanmin(values, axis=0),
                    np.nanmax(values, axis=0),
                    color=colour(m, order),
                    alpha=0.15,
                )
            if defaults and m in defaults:
                ax.axvline(defaults[m], color=colour(m, order), ls=":", lw=1)
    axes[0].set_ylabel("Dice (mean over tomograms)")
    axes[1].set_ylabel("fraction of voxels marked")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("logit threshold (mask = logit > t)")
        ax.set_xlim(x[0], x[-1])
    axes[0].set_ylim(0, 1)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, frameon=False)
    fig.suptitle("Threshold explorer (from the stored score histograms)")
    fig.tight_layout()
    return save(fig, stem)


# ---------------------------------------------------------------- the paper's figures from the summary tables


def build_figures(
    results: str | os.PathLike, methods: Sequence[str], out_dir: str | os.PathLike
) -> list[Path]:
    """Figures 1a-1d, 4 and the θ-bin figure from the summary tables (a figure without data says so on its canvas)."""
    results, out_dir = Path(results), Path(out_dir)
    info = read_json(results / METHODS_JSON)
    # label marks: untrained, or what a model trained here learned from
    untrained = method_marks(
        [m for m, v in info.items() if v["untrained"]], {m: v.get("trained_on") for m, v in info.items()}
    )
    frames = _per_tomogram_frames(results, methods, info)
    return [
        *_figure1ab(results, frames, out_dir, untrained),
        *_figure1c(results, out_dir, untrained),
        *_figure1d(results, out_dir, untrained),
        *_figure4(frames, out_dir, untrained),
        *_figure_theta(results, out_dir, untrained),
        *_threshold_explorer(results, frames, out_dir, untrained),
    ]


def _per_tomogram_frames(results: Path, methods: Sequence[str], info: dict) -> dict[str, pd.DataFrame]:
    """The summary's per-tomogram table of each method that scored at least one tomogram."""
    frames = {}
    for m in methods:
        path = results / "tables" / "per_tomogram" / f"{m}.csv"
        if path.exists() and info.get(m, {}).get("n"):
            frames[m] = pd.read_csv(path, dtype={"tomo": str}).set_index("tomo", drop=False)
    return frames


def _figure1ab(
    results: Path, frames: dict[str, pd.DataFrame], out_dir: Path, untrained: dict[str, str]
) -> list[Path]:
    """Figures 1a (per-tomogram bars) and 1b (box plots with the paired tests) of the paper's methods."""
    main = {m: frames[m] for m in PAPER_METHODS if m in frames}
    if not main:
        return [
            *placeholder("no etsam/membrain/tardis metrics", out_dir / "figure1a"),
            *placeholder("no etsam/membrain/tardis metrics", out_dir / "figure1b"),
        ]
    tests = pd.read_csv(results / TABLE_FILES["ttests"])
    return [
        *per_tomogram_bars(main, ["dice", "iou"], out_dir / "figure1a", untrained),
        *box_plots(main, tests, list(METRICS), out_dir / "figure1b", untrained),
    ]


def _figure1c(results: Path, out_dir: Path, untrained: dict[str, str]) -> list[Path]:
    """Figure 1c: the pooled PR curves the summary saved."""
    curves = read_json(results / PR_CURVES)
    if not curves:
        return placeholder("no score histograms", out_dir / "figure1c")
    return pr_curves(curves, {m: c["auprc"] for m, c in curves.items()}, out_dir / "figure1c", untrained)


def _figure1d(results: Path, out_dir: Path, untrained: dict[str, str]) -> list[Path]:
    """Figure 1d: runtime and memory from Supplementary Table 3."""
    s3 = pd.read_csv(results / TABLE_FILES["supp_table3"])
    if not len(s3):
        return placeholder("no benchmark records", out_dir / "figure1d")
    # the table's labels carry the marks; the figure colours by method name and marks them itself
    s3["method"] = [unlabel(m, untrained) for m in s3["method"]]
    return runtime_memory(s3, out_dir / "figure1d", untrained)


def _figure4(frames: dict[str, pd.DataFrame], out_dir: Path, untrained: dict[str, str]) -> list[Path]:
    """Figure 4: ETSAM per tomogram before and after post-processing."""
    if "etsam" not in frames or "etsam_postprocessed" not in frames:
        return placeholder("etsam and etsam_postprocessed not both evaluated", out_dir / "figure4")
    return postprocess_effect(
        frames["etsam"], frames["etsam_postprocessed"], list(METRICS), out_dir / "figure4", untrained
    )


def _figure_theta(results: Path, out_dir: Path, untrained: dict[str, str]) -> list[Path]:
    """Recall and precision per θ bin per method, from the theta-wise table."""
    table = pd.read_csv(results / TABLE_FILES["theta_wise"], dtype={"bin": str})
    if not len(table):
        return placeholder("no theta-wise metrics (evaluate.theta_wise)", out_dir / "figure_theta")
    table["method"] = [unlabel(m, untrained) for m in table["method"]]
    return theta_bin_bars(table, out_dir / "figure_theta", untrained)


def _threshold_explorer(
    results: Path, frames: dict[str, pd.DataFrame], out_dir: Path, untrained: dict[str, str]
) -> list[Path]:
    """The threshold explorer of every scored method with score histograms."""
    curves = {}
    for m, frame in frames.items():
        paths = [results / "metrics" / m / f"{t}.hist.npz" for t in frame.index]
        found = [(p.stem, ScoreHistogram.load(p)) for p in paths if p.exists()]
        if found:
            curves[m] = threshold_curves(found)
    if not curves:
        return placeholder("no score histograms", out_dir / "threshold_explorer")
    return threshold_explorer(curves, out_dir / "threshold_explorer", untrained=untrained)
