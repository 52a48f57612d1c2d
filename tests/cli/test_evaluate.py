"""`tomoseg evaluate` by hand keeps the prediction's untrained flag (issue 15)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from tomoseg.core.io import write_json, write_volume
from tomoseg.core.provenance import provenance_record


@pytest.fixture
def masks(tmp_path):
    rng = np.random.default_rng(3)
    truth = (rng.random((4, 16, 16)) < 0.2).astype(np.uint8)
    (tmp_path / "seg").mkdir()
    write_volume(tmp_path / "seg" / "mask.mrc", truth, 10.0)
    write_volume(tmp_path / "truth.mrc", truth, 10.0)
    return tmp_path


def _evaluate(cli_main, d, *extra):
    argv = ["evaluate", "--pred", str(d / "seg" / "mask.mrc"), "--truth", str(d / "truth.mrc")]
    code = cli_main([*argv, "--json", str(d / "m.json"), *extra])
    return code, (json.loads((d / "m.json").read_text()) if code == 0 else None)


def test_untrained_flag_from_the_provenance_beside_the_mask(masks, cli_main, caplog):
    write_json(masks / "seg" / "provenance.json", provenance_record("segment", untrained=True))
    caplog.set_level(logging.INFO, logger="tomoseg")
    code, record = _evaluate(cli_main, masks)
    assert code == 0
    assert record["untrained"] is True and record["provenance"] == str(masks / "seg" / "provenance.json")
    line = next(r.getMessage() for r in caplog.records if "dice=" in r.getMessage())
    assert line.endswith("(untrained)") and str(masks / "m.json") in line


def test_given_provenance_wins_and_trained_says_nothing(masks, cli_main, caplog):
    write_json(masks / "seg" / "provenance.json", provenance_record("segment", untrained=True))
    write_json(masks / "trained.json", provenance_record("segment", untrained=False))
    caplog.set_level(logging.INFO, logger="tomoseg")
    code, record = _evaluate(cli_main, masks, "--provenance", str(masks / "trained.json"))
    assert code == 0 and record["untrained"] is False
    assert not any("(untrained)" in r.getMessage() for r in caplog.records)


def test_no_provenance_means_unknown(masks, cli_main):
    code, record = _evaluate(cli_main, masks)
    assert code == 0 and record["untrained"] is None and record["provenance"] is None


def test_a_missing_provenance_file_is_named(masks, cli_main, capsys):
    code, _ = _evaluate(cli_main, masks, "--provenance", str(masks / "nope.json"))
    assert code == 2 and "nope.json" in capsys.readouterr().err
    assert not (masks / "m.json").exists()
