"""Every command says what it wrote: one INFO line per output file (issue 15)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tomoseg.reporting.tables import paper_per_tomogram_paths


def _written(caplog) -> set[Path]:
    return {
        Path(r.getMessage().split()[1].rstrip(":"))
        for r in caplog.records
        if r.levelno == logging.INFO and r.getMessage().startswith("wrote ")
    }


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_stats_names_every_file_it_wrote(tmp_path, cli_main, caplog):
    caplog.set_level(logging.INFO, logger="tomoseg")
    methods = [f"--method={name}={path}" for name, path in paper_per_tomogram_paths().items()]
    assert cli_main(["stats", *methods, "--out", str(tmp_path / "stats")]) == 0
    files = _files(tmp_path / "stats")
    assert files and _written(caplog) == files


def test_make_test_checkpoints_names_every_file_it_wrote(tmp_path, cli_main, caplog):
    pytest.importorskip("sam2")
    caplog.set_level(logging.INFO, logger="tomoseg")
    assert cli_main(["make-test-checkpoints", "--out", str(tmp_path / "ck"), "--image-size", "64"]) == 0
    files = _files(tmp_path / "ck")
    assert len(files) >= 2 and _written(caplog) == files


def test_phantom_and_normalize_name_their_outputs(tmp_path, cli_main, caplog):
    caplog.set_level(logging.INFO, logger="tomoseg")
    ph = tmp_path / "ph"
    assert cli_main(["phantom", "--out", str(ph), "--seed", "1", "--shape", "16", "32", "32"]) == 0
    assert cli_main(["normalize", str(ph / "tomogram.mrc"), "--out", str(tmp_path / "n" / "n.mrc")]) == 0
    assert _written(caplog) == _files(ph) | _files(tmp_path / "n")
