"""The runs sheet as one concept (tomoseg.core.runsheet): written, read back, checked and selected."""

from __future__ import annotations

import pytest

from tomoseg.core.errors import InputError
from tomoseg.core.layout import RUNS_COLUMNS
from tomoseg.core.runsheet import check_unique_keys, read_runs_sheet, selected_rows, write_runs_sheet

HEADER = "\t".join(RUNS_COLUMNS) + "\n"
ROWS = [
    {"tomo": "cdp-1-2", "source": "cdp", "dataset_id": 1, "run_id": 2, "truth": "cdp", "split": "test"},
    {"tomo": "p1", "source": "phantom", "run_id": "1", "truth": "phantom", "split": "robustness"},
]


def test_a_written_sheet_reads_back_as_strings_with_every_column(tmp_path):
    sheet = write_runs_sheet(tmp_path / "runs.tsv", ROWS)
    assert sheet.read_text().splitlines()[0] == HEADER.rstrip("\n")
    table = read_runs_sheet(sheet)
    assert list(table.columns) == list(RUNS_COLUMNS)
    assert table.to_dict("records")[0] == {
        **dict.fromkeys(RUNS_COLUMNS, ""),
        **{k: str(v) for k, v in ROWS[0].items()},
    }
    assert list(selected_rows(table, ["test"])) == ["cdp-1-2"]
    assert list(selected_rows(table, ["test", "robustness"])) == ["cdp-1-2", "p1"]
    check_unique_keys(table, sheet)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (None, "runs sheet not found"),
        ("", "the runs sheet has no rows"),
        (HEADER, "the runs sheet has no rows"),
        (
            HEADER.replace("\n", "\tnotes\n") + "p1\tphantom\t\t1\t\t\t\tphantom\ttest\tx\n",
            "unknown: ['notes']",
        ),
        (HEADER + "p1\tphantom\t\t1\t\t\t\tphantom\ttest\tstray\n", "line 2 has 10 fields but the header 9"),
    ],
    ids=["missing", "empty", "header-only", "extra-column", "ragged-row"],
)
def test_a_sheet_that_cannot_be_used_is_refused_naming_it(tmp_path, text, needle):
    sheet = tmp_path / "runs.tsv"
    if text is not None:
        sheet.write_text(text)
    with pytest.raises(InputError) as err:
        read_runs_sheet(sheet)
    assert str(err.value).startswith(f"{sheet}: ") and needle in str(err.value)


def test_duplicate_keys_are_refused(tmp_path):
    sheet = write_runs_sheet(tmp_path / "runs.tsv", [ROWS[1], ROWS[1]])
    with pytest.raises(InputError, match=r"duplicate tomo keys \['p1'\]"):
        check_unique_keys(read_runs_sheet(sheet), sheet)
