"""The night's report: per-run statistics, figures and pages, `report.tsv`, `report.md` and `index.html`.

What the nightly batch (`tomoseg.batch.nightly`) publishes for the runs of one night (docs/nightly.md).
Portal run names and error lines are data: report.md shows them as text (no Markdown or HTML of theirs
runs), and report.tsv writes cells that a spreadsheet would take for a formula as text.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.core.io import InputError, atomic_path, read_json
from tomoseg.core.layout import data_path, metrics_path
from tomoseg.core.methods import method
from tomoseg.core.provenance import untrained_methods

log = logging.getLogger(__name__)


def _fraction(path: Path) -> float | None:
    """Foreground voxels / all voxels of a mask, read in slabs so a large mask is never fully in memory."""
    if not path.exists():
        return None
    from tomoseg.core.io import open_volume

    with open_volume(path) as (data, _voxel):
        total = sum(int(np.count_nonzero(data[z : z + 16])) for z in range(0, data.shape[0], 16))
        return total / data.size


def run_statistics(workdir: Path, tomo: str, methods: list[str], truth: bool) -> dict[str, Any]:
    """Mask statistics (foreground fraction), the chosen tomogram and metrics of one processed run."""
    stats: dict[str, Any] = {}
    source = workdir / "results" / "data" / tomo / "tomogram.source.json"
    if source.exists():
        src = read_json(source)
        stats.update(
            tomogram_id=src.get("tomogram_id"),
            shape="x".join(map(str, src.get("shape_zyx", []))),
            voxel_spacing=src.get("voxel_spacing"),
        )
    if truth:
        stats["truth_fraction"] = _fraction(workdir / "results" / "data" / tomo / "groundtruth.mrc")
    untrained = untrained_methods({m: workdir / method(m).provenance_path(tomo) for m in methods})
    stats["untrained"] = ", ".join(untrained)
    for name in methods:
        stats[f"{name}_fraction"] = _fraction(workdir / method(name).mask_path(tomo))
        metric_file = workdir / metrics_path(name, tomo)
        if metric_file.exists():
            record = read_json(metric_file)
            values = record if "dice" in record else record.get("metrics", {})
            for metric in ("dice", "iou"):
                if isinstance(values.get(metric), int | float):
                    stats[f"{name}_{metric}"] = float(values[metric])
    return stats


def run_figure(
    workdir: Path,
    tomo: str,
    methods: list[str],
    out: Path,
    dice_z: Path | None = None,
    stats_json: Path | None = None,
) -> str | None:
    """The report's picture of a run: slices of the normalized tomogram with the truth and each mask.

    Drawn by the reporting layer's slice overlays (PNG only), optionally with the Dice-along-Z plot and the
    mask statistics a tomogram page reads; None when there is no tomogram or a mask does not match it, since
    a missing picture must not fail the night.
    """
    normalized = workdir / data_path(tomo, "normalized.mrc")
    if not normalized.exists():
        return None
    # imported here: the CLI loads this module for every command, and matplotlib is slow to import
    from tomoseg.reporting.overlays import overlay_files

    truth = workdir / data_path(tomo, "groundtruth.mrc")
    masks = {m: workdir / method(m).mask_path(tomo) for m in methods}
    untrained = untrained_methods({m: workdir / method(m).provenance_path(tomo) for m in methods})
    try:
        overlay_files(
            normalized,
            {m: p for m, p in masks.items() if p.exists()},
            out.with_suffix(""),
            truth=truth if truth.exists() else None,
            title=tomo,
            untrained=untrained,
            formats=("png",),
            dice_z_stem=dice_z.with_suffix("") if dice_z is not None else None,
            stats_json=stats_json,
        )
    except InputError as err:
        log.warning("no figure for %s: %s", tomo, err)
        return None
    return str(out)


def run_page(
    workdir: Path,
    tomo: str,
    methods: list[str],
    night_dir: Path,
    run: dict[str, Any] | None = None,
    benchmark_rules: dict[str, list[str]] | None = None,
) -> dict[str, str | None]:
    """A processed run's figure and its page in the night's folder: {"figure": ..., "page": ...}.

    The page is the workflow report's per-tomogram page (`tomoseg.reporting.pages.tomogram_page`: overlays
    with TP/FP/FN where there is truth, Dice along Z, mask fractions, metrics, runtime, provenance), written
    to `pages/<tomo>.html`; its figures go to `figures/` (`<tomo>.png`, `<tomo>_dice_z.png` and .pdf,
    `<tomo>.json`). None for what could not be drawn.
    """
    figures = night_dir / "figures"
    overlay, dice_z, stats = figures / f"{tomo}.png", figures / f"{tomo}_dice_z.png", figures / f"{tomo}.json"
    figure = run_figure(workdir, tomo, methods, overlay, dice_z=dice_z, stats_json=stats)
    if figure is None:
        return {"figure": None, "page": None}
    from tomoseg.reporting.pages import tomogram_page

    provenance = {m: workdir / method(m).provenance_path(tomo) for m in methods}
    metrics = {m: workdir / metrics_path(m, tomo) for m in methods}
    try:
        page = tomogram_page(
            tomo,
            night_dir / "pages" / f"{tomo}.html",
            methods=methods,
            stats_json=stats,
            overlay_png=overlay,
            dice_z_png=dice_z,
            metrics={m: p for m, p in metrics.items() if p.exists()},
            provenance=provenance,
            untrained=untrained_methods(provenance),
            results=workdir / "results",
            benchmark_rules=benchmark_rules or {},
            run=_sheet_row(run) if run is not None else None,
        )
    except (InputError, OSError, ValueError) as err:  # a missing page must not fail the night either
        log.warning("no page for %s: %s", tomo, err)
        return {"figure": figure, "page": None}
    return {"figure": figure, "page": str(page.relative_to(night_dir))}


def _sheet_row(run: dict[str, Any]) -> dict[str, Any]:
    """What a tomogram page shows of a portal run (as the workflow's page shows its runs-sheet row)."""
    return {
        "source": "cdp",
        "dataset_id": run.get("dataset_id"),
        "run_id": run.get("run_id"),
        "name": run.get("name"),
        "truth": "cdp" if run.get("has_membrane") else "none",
    }


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet cell a formula (OWASP's CSV-injection list)."""

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()!|~])")
"""Characters with an inline meaning in a Markdown table cell (emphasis, code, links, images, cells)."""


def sheet_cell(value: Any) -> Any:
    """A report.tsv cell that a spreadsheet shows as text: a string starting like a formula gets a `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def md_text(value: Any) -> str:
    """Text for a report.md table cell shown as itself: HTML escaped, Markdown syntax backslashed, one line."""
    import html

    text = " ".join(str(value).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=True))


def report_columns(methods: list[str]) -> list[str]:
    """The columns of report.tsv: the run, its tomogram, truth and each method's statistics, then its fate."""
    columns = ["tomo", "dataset_id", "run_id", "name", "status", "has_membrane", "tomogram_id", "shape"]
    columns += ["voxel_spacing", "truth_fraction"]
    for m in methods:
        columns += [f"{m}_fraction", f"{m}_dice", f"{m}_iou"]
    return columns + ["untrained", "gpu_hours", "figure", "attempts", "retry_after", "reason"]


def write_report_tsv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> Path:
    """report.tsv: one line per run of the night (formula-like text cells written as text)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=columns, delimiter="\t", lineterminator="\n", extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows({k: sheet_cell(v) for k, v in row.items()} for row in rows)
    return path


def _fmt(value: Any) -> str:
    """A report.md cell: numbers to 4 significant digits, a dash for nothing, other values as text."""
    if value is None or value == "":
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else md_text(value)


def _processed_table(done: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """report.md's table of processed runs: the columns some run has a value in, and the run's figure."""
    shown = [
        c
        for c in columns
        if c not in ("figure", "attempts", "retry_after", "reason", "status")
        and any(r.get(c) not in (None, "") for r in done)
    ]
    lines = ["## Processed", "", "| " + " | ".join(shown) + " | figure |", "|" + "---|" * (len(shown) + 1)]
    for r in done:
        tomo = md_text(r["tomo"])
        figure = f"![{tomo}](figures/{r['tomo']}.png)" if r.get("figure") else "–"
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in shown) + f" | {figure} |")
    return [*lines, ""]


def _failed_table(failed: list[dict[str, Any]]) -> list[str]:
    """report.md's table of failed runs: attempts, the next try and the reason."""
    lines = [
        "## Failed",
        "",
        "| tomo | dataset | run | attempts | next try | reason |",
        "|---|---|---|---|---|---|",
    ]
    for r in failed:
        retry = r.get("retry_after") or "given up"
        cells = (r["tomo"], r["dataset_id"], r["name"], r["attempts"], retry, r["reason"])
        lines.append("| " + " | ".join(md_text(c) for c in cells) + " |")
    return [*lines, ""]


def report_markdown(
    night_id: str,
    since: str,
    rows: list[dict[str, Any]],
    pending: int,
    columns: list[str],
    backlog: dict[str, Any] | None = None,
) -> str:
    """report.md's text: the night's counts, the untrained warning, the backlog, processed and failed runs."""
    done = [r for r in rows if r["status"] == "processed"]
    failed = [r for r in rows if r["status"] == "failed"]
    lines = [
        f"# Night {md_text(night_id)}",
        "",
        f"Runs released or modified since {md_text(since)}: {len(rows)} in this batch, "
        f"{len(done)} processed, {len(failed)} failed, {pending} still pending.",
        "",
    ]
    untrained = sorted({m for r in done for m in str(r.get("untrained") or "").split(", ") if m})
    if untrained:
        lines += [
            f"**Untrained**: the outputs of {', '.join(untrained)} come from randomly initialised weights "
            "(demo/test checkpoints); their masks and metrics are meaningless (column `untrained`).",
            "",
        ]
    if backlog:
        lines += ["## Backlog", "", backlog_sentence(backlog), ""]
    if done:
        lines += _processed_table(done, columns)
    if failed:
        lines += _failed_table(failed)
    lines.append(
        "Fractions are foreground voxels / all voxels; dice and iou come from results/metrics where ground truth exists."
    )
    return "\n".join(lines) + "\n"


def write_report(
    night_dir: Path,
    night_id: str,
    since: str,
    rows: list[dict[str, Any]],
    pending: int,
    methods: list[str],
    backlog: dict[str, Any] | None = None,
) -> Path:
    """The night's report: a TSV of every run and a Markdown summary (processed, failures, the backlog)."""
    columns = report_columns(methods)
    write_report_tsv(night_dir / "report.tsv", rows, columns)
    report = night_dir / "report.md"
    with atomic_path(report) as tmp:
        tmp.write_text(report_markdown(night_id, since, rows, pending, columns, backlog))
    return report


def backlog_sentence(backlog: dict[str, Any]) -> str:
    """The report's line on the backlog: what is pending, the rate, how many nights it takes, its GPU time."""
    text = f"{backlog['pending']:,} runs pending ({backlog['new']:,} new, {backlog['retrying']:,} waiting to retry). "
    nights = backlog["rate_nights"]
    rate = f"{backlog['rate']:g} runs a night (mean of the last {nights} night{'s' if nights != 1 else ''})"
    if not backlog["pending"]:
        text += f"Nothing left; the current rate is {rate}."
    elif backlog["nights"] is None:
        text += f"No run was processed recently ({rate}): at this rate the backlog does not drain."
    else:
        text += f"At the current rate of {rate} it takes about {backlog['nights']:,} more nights."
    if backlog["gpu_hours_per_run"] > 0:
        source = {"measured": "measured on recent runs", "assumed": "assumed, nothing measured yet"}
        text += (
            f" GPU time: {backlog['gpu_hours_per_run']:.3g} h a run "
            f"({source.get(backlog['cost_source'], backlog['cost_source'])}), "
            f"{backlog['gpu_hours']:,.1f} h for the backlog."
        )
    return text


def publish_night(
    night_dir: Path,
    night_id: str,
    status: str,
    since: str,
    rows: list[dict[str, Any]],
    pending: int,
    methods: list[str],
    backlog: dict[str, Any] | None = None,
) -> Path:
    """Write the night's report.tsv, report.md and index.html; returns report.md."""
    from tomoseg.reporting.pages import write_index

    report = write_report(night_dir, night_id, since, rows, pending, methods, backlog)
    sentence = backlog_sentence(backlog) if backlog else None
    write_index(night_dir, night_id, status, since, rows, pending, methods, sentence)
    return report
