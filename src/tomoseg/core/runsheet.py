"""The runs sheet: one row per tomogram (`RUNS_COLUMNS`), read and checked, selected, written.

The workflow reads the sheet named by the config's `runs` (workflow/rules/common.smk, which then checks
each row against workflow/schemas/runs.schema.yaml), the nightly batch writes one per night, and
`tomoseg pin-runs` writes chosen tomogram ids back into one (`tomoseg.acquisition.rows`). A sheet that
cannot be used is an InputError naming it and the problem (config/README.md describes the columns).
Light to import (the workflow imports it at parse time).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import pandas as pd

from tomoseg.core.errors import InputError
from tomoseg.core.layout import RUNS_COLUMNS


def _overlong_row(sheet: str | os.PathLike) -> tuple[int, int, int] | None:
    """(line number, fields, header fields) of the first row with more non-empty fields than the header."""
    with open(sheet, newline="", encoding="utf-8") as handle:
        lines = enumerate(csv.reader(handle, delimiter="\t"), start=1)
        rows = [(n, r) for n, r in lines if r and not r[0].startswith("#")]
    width = len(rows[0][1]) if rows else 0
    for number, row in rows[1:]:
        if any(field.strip() for field in row[width:]):
            return number, len(row), width
    return None


def read_runs_sheet(sheet: str | os.PathLike) -> pd.DataFrame:
    """The runs sheet as strings; one that is unreadable, ragged, empty or has unknown columns is refused."""
    try:
        overlong = _overlong_row(sheet)
        table = pd.read_csv(sheet, sep="\t", dtype=str, keep_default_na=False, comment="#", index_col=False)
    except FileNotFoundError:
        raise InputError(f"{sheet}: runs sheet not found (config key `runs`)") from None
    except pd.errors.EmptyDataError:
        table = pd.DataFrame(columns=list(RUNS_COLUMNS))
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(
            f"{sheet}: not a readable runs sheet (tab-separated text, a header line, then one "
            f"row per tomogram): {err}"
        ) from None
    if overlong:
        raise InputError(
            f"{sheet}: not a readable runs sheet: line {overlong[0]} has {overlong[1]} fields "
            f"but the header {overlong[2]} (a stray tab, or a column without a header?)"
        )
    unknown = [c for c in table.columns if c not in RUNS_COLUMNS]
    missing = [c for c in RUNS_COLUMNS if c not in table.columns]
    if unknown or missing:
        raise InputError(
            f"{sheet}: the runs sheet has the columns {list(RUNS_COLUMNS)}, tab-separated, in any "
            f"order; unknown: {unknown}, missing: {missing} (config/README.md)"
        )
    if table.empty:
        raise InputError(f"{sheet}: the runs sheet has no rows; add one row per tomogram (config/README.md)")
    return table


def check_unique_keys(table: pd.DataFrame, sheet: str | os.PathLike) -> None:
    """Refuse a sheet that gives two rows the same `tomo` key (every output path is keyed by it)."""
    duplicates = sorted(table["tomo"][table["tomo"].duplicated()].unique())
    if duplicates:
        raise InputError(f"{sheet}: duplicate tomo keys {duplicates}; every row needs its own key")


def selected_rows(table: pd.DataFrame, splits: Iterable[str]) -> dict[str, dict[str, str]]:
    """The rows of the given splits by key, in sheet order (looked up once per job while planning)."""
    keyed = table.set_index("tomo", drop=False)
    rows = keyed[keyed["split"].isin(list(splits))].to_dict("index")
    return cast(dict[str, dict[str, str]], rows)


def write_runs_sheet(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write rows as a runs sheet (every column, in order; a column a row lacks is empty), atomically."""
    from tomoseg.core.io import atomic_path  # here: the workflow reads sheets at parse time, without core.io

    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RUNS_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row.get(column, "") for column in RUNS_COLUMNS})
    return path
