"""`tomoseg runs-sheet FOLDER`: one local row per tomogram, ground truth paired by name, a sheet the workflow
plans as it is; clashes and mismatches are one line and exit 2, and an existing sheet is kept."""

from __future__ import annotations

import numpy as np
import pytest
from snakemake_helpers import make_workdir, run_snakemake

from tomoseg.core.io import write_volume
from tomoseg.core.runsheet import read_runs_sheet


def _vol(path, shape=(8, 32, 32), dtype=np.float32):
    write_volume(path, np.zeros(shape, dtype), 10.0)
    return path


@pytest.fixture
def folder(tmp_path):
    tomos = tmp_path / "tomos"
    tomos.mkdir()
    _vol(tomos / "a.mrc")
    _vol(tomos / "a_gt.mrc", dtype=np.uint8)  # a's truth, beside it
    _vol(tomos / "b.rec")
    _vol(tomos / "cell 3.mrc")  # no truth; a space in the name
    (tomos / "notes.txt").write_text("not a volume")
    truths = tmp_path / "truths"
    truths.mkdir()
    _vol(truths / "b_labels.mrc", dtype=np.uint8)  # b's truth, in the truth folder
    return tomos, truths


def test_rows_pair_truth_by_name(folder, tmp_path, cli_main):
    tomos, truths = folder
    sheet = tmp_path / "runs.tsv"
    assert cli_main(["runs-sheet", str(tomos), "--truth", str(truths), "--out", str(sheet)]) == 0
    rows = read_runs_sheet(sheet).set_index("tomo").to_dict("index")
    assert sorted(rows) == ["a", "b", "cell-3"]
    assert rows["a"]["truth"] == "local" and rows["a"]["truth_path"] == str((tomos / "a_gt.mrc").resolve())
    assert rows["b"]["truth_path"] == str((truths / "b_labels.mrc").resolve())
    assert rows["cell-3"]["truth"] == "none" and rows["cell-3"]["truth_path"] == ""
    assert {r["source"] for r in rows.values()} == {"local"} and {r["split"] for r in rows.values()} == {
        "test"
    }
    assert rows["cell-3"]["path"] == str((tomos / "cell 3.mrc").resolve())
    # the workflow takes the sheet as it is: every row planned, the paired ones scored
    workdir = make_workdir(tmp_path, runs=str(sheet), methods=["etsam"])
    proc = run_snakemake(workdir, "-n", "--cores", "1")
    for tomo in ("a", "b", "cell-3"):
        assert f"results/etsam/{tomo}/mask.mrc" in proc.stdout
    assert (
        "results/metrics/etsam/a.json" in proc.stdout
        and "results/metrics/etsam/cell-3.json" not in proc.stdout
    )


def _fails(cli_main, capsys, argv) -> str:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_clashes_and_mismatches_are_one_line(folder, tmp_path, cli_main, capsys):
    tomos, truths = folder
    sheet = tmp_path / "runs.tsv"
    _vol(tomos / "a_mask.mrc", dtype=np.uint8)  # a second truth for a
    assert "several ground truths" in _fails(
        cli_main, capsys, ["runs-sheet", str(tomos), "--out", str(sheet)]
    )
    (tomos / "a_mask.mrc").unlink()
    _vol(truths / "cell 3.mrc", shape=(8, 16, 16), dtype=np.uint8)  # cell 3's truth, of another shape
    err = _fails(cli_main, capsys, ["runs-sheet", str(tomos), "--truth", str(truths), "--out", str(sheet)])
    assert "cell 3.mrc" in err and "shape" in err
    assert not sheet.exists()
    sheet.write_text("keep me\n")
    assert "--force" in _fails(cli_main, capsys, ["runs-sheet", str(tomos), "--out", str(sheet)])
    assert sheet.read_text() == "keep me\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no tomograms" in _fails(
        cli_main, capsys, ["runs-sheet", str(empty), "--out", str(tmp_path / "x.tsv")]
    )
