"""The results tree: where every stage writes, named once for the rules, the summaries and the nightly.

Paths are relative to the workflow's working directory (`results/...`); helpers take a `{tomo}` key.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from tomoseg.core.methods import method

log = logging.getLogger(__name__)

RESULTS = "results"

RUNS_COLUMNS: tuple[str, ...] = (
    "tomo",
    "source",
    "dataset_id",
    "run_id",
    "tomogram_id",
    "path",
    "truth_path",
    "truth",
    "split",
)
"""Columns of a runs sheet, in order (workflow/schemas/runs.schema.yaml describes each; a test checks both agree)."""

# Every table the summary step writes (CSV + Markdown beside it), relative to the results folder.
TABLE_FILES: dict[str, str] = {
    "table1": "tables/table1.csv",
    "ttests": "stats/ttests.csv",
    "supp_table1": "tables/supp_table1_per_tomogram.csv",
    "supp_table2": "tables/supp_table2_postprocessed.csv",
    "supp_table3": "tables/supp_table3_runtime.csv",
    "runtime_per_tomogram": "tables/runtime_per_tomogram.csv",
    "thresholds": "tables/thresholds.csv",
    "calibration": "tables/calibration.csv",
    "auprc": "tables/auprc.csv",
    "stages": "tables/stages.csv",
    "variants": "tables/upstream_variants.csv",
    "paper_comparison": "tables/paper_comparison.csv",
    "failures": "tables/failures.csv",
    "plane_wise": "tables/plane_wise.csv",
    "plane_wise_ttests": "stats/plane_wise_ttests.csv",
    "theta_wise": "tables/theta_wise.csv",
    "theta_wise_ttests": "stats/theta_wise_ttests.csv",
}
# Tables that also go into `snakemake --report` (the others are listed there by path).
REPORTED_TABLES: tuple[str, ...] = ("table1", "failures", "paper_comparison")
# The prompting ablation tables (Supplementary Tables 4-8), by ETSAM stage.
ABLATION_FILES: dict[int, str] = {
    1: "tables/supp_table4_stage1_prompts.csv",
    2: "tables/supp_tables5-8_stage2_prompts.csv",
}
PR_CURVES = "tables/pr_curves.json"
METHODS_JSON = "tables/methods.json"
FIGURES: tuple[str, ...] = ("figure1a", "figure1b", "figure1c", "figure1d", "figure4", "figure_theta")


def results_path(relative: str) -> str:
    """`results/<relative>`: a file of the tree named relative to the results folder."""
    return f"{RESULTS}/{relative}"


def data_path(tomo: str, name: str) -> str:
    """A tomogram's input files: tomogram.mrc, normalized.mrc, groundtruth.mrc and their records."""
    return f"{RESULTS}/data/{tomo}/{name}"


def metrics_path(method: str, tomo: str) -> str:
    """The metrics record of one method on one tomogram."""
    return f"{RESULTS}/metrics/{method}/{tomo}.json"


def log_path(rule: str, tomo: str) -> str:
    """The log of one rule's job for one tomogram."""
    return f"{RESULTS}/logs/{rule}/{tomo}.log"


def run_targets(tomo: str, truth: bool, methods: Iterable[str], metrics: bool) -> list[str]:
    """The files that make one run done: normalized tomogram, ground truth, each method's mask (+ metrics).

    What `targets: {scope: runs}` builds for every selected run, and what the nightly batch checks.
    """
    targets = [data_path(tomo, "normalized.mrc")]
    if truth:
        targets.append(data_path(tomo, "groundtruth.mrc"))
    for name in methods:
        targets.append(method(name).mask_path(tomo))
        if truth and metrics:
            targets.append(metrics_path(name, tomo))
    return targets


def shard_record(stage: str, shard: str) -> str:
    """The record a shard job of `stage` writes (tomoseg.batch.shards: per run ok, failed or blocked, and why)."""
    return f"{RESULTS}/shards/{stage}/{shard}.json"


def read_shard_record(record: str | os.PathLike) -> dict[str, Any] | None:
    """A shard record as a dict, or None (with a warning naming it) when it is truncated or unreadable.

    Such a record says nothing about its runs: the shard counts as not done, never as an error that blocks
    every rerun. A missing record is None without a warning.
    """
    try:
        with open(record, encoding="utf-8") as handle:
            content = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable shard record, treated as not done (%s)", record, err)
        return None
    lists = [content.get(key, []) for key in ("failed", "blocked")] if isinstance(content, dict) else []
    if (
        not isinstance(content, dict)
        or not isinstance(content.get("runs"), dict)
        or not all(isinstance(names, list) and all(isinstance(n, str) for n in names) for names in lists)
    ):
        log.warning("%s: not a shard record (runs, failed, blocked), treated as not done", record)
        return None
    return content


def shard_failures(record: str | os.PathLike) -> list[str]:
    """Runs a shard record lists as failed or blocked ([] when there is no record or it is unreadable).

    Read while planning (a shard whose record lists failures is rerun), so plain json, nothing heavier.
    """
    content = read_shard_record(record)
    if content is None:
        return []
    return [str(t) for t in content.get("failed", []) or []] + [
        str(t) for t in content.get("blocked", []) or []
    ]


def shard_retry_token(record: str | os.PathLike, runs: Mapping[str, Iterable[Mapping[str, Any]]]) -> str:
    """A job parameter of a shard that is "" while its record stands; otherwise a token that reruns the shard.

    The shard is rerun (as Snakemake reruns a job whose output is gone) when its record lists failed or
    blocked runs, is truncated or unreadable, or when a per-run output of one of its steps (`runs`: run ->
    step dicts with "output") was deleted since. The token holds the record's mtime, so it changes from one
    such state to the next.
    """
    if not os.path.exists(record):
        return ""  # no record: Snakemake runs the shard anyway
    stamp = str(os.stat(record).st_mtime_ns)
    if read_shard_record(record) is None:
        return f"unreadable {stamp}"
    if shard_failures(record):
        return stamp
    missing = [
        str(path)
        for steps in runs.values()
        for step in steps
        for path in (step.get("output") or {}).values()
        if not os.path.exists(path)
    ]
    if missing:
        log.warning(
            "%s: %d per-run outputs are missing (e.g. %s); the shard runs again",
            record,
            len(missing),
            missing[0],
        )
        return f"missing {len(missing)} {stamp}"
    return ""
