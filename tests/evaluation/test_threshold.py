"""`tomoseg threshold` / `rethreshold_file`: a mask from stored logits at a new threshold (issue 15)."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from tomoseg.core.io import (
    InputError,
    Placement,
    read_mask,
    read_placement,
    sha256sum,
    write_json,
    write_volume,
)
from tomoseg.core.provenance import provenance_record
from tomoseg.evaluation.threshold import rethreshold_file

PLACEMENT = Placement(origin=(30.0, -20.0, 10.0), start=(2, 3, 4))


@pytest.fixture
def logits(tmp_path):
    values = np.array([-1024.0, -2.0, -0.25, -0.2, 0.0, 0.5, 0.5, 3.0], np.float32).reshape(2, 2, 2)
    path = tmp_path / "seg" / "stage2_logits.mrc"
    write_volume(path, values, (5.0, 6.0, 7.0), placement=PLACEMENT)
    return path


def test_values_at_the_threshold_are_excluded(logits, tmp_path):
    record = rethreshold_file(logits, tmp_path / "m.mrc", -0.25)
    mask, voxel_size = read_mask(tmp_path / "m.mrc")
    assert mask.ravel().tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert record["marked"] == 5 and record["mask_fraction"] == 5 / 8
    assert voxel_size == (5.0, 6.0, 7.0) and read_placement(tmp_path / "m.mrc") == PLACEMENT
    rethreshold_file(logits, tmp_path / "m2.mrc", 0.5)
    assert read_mask(tmp_path / "m2.mrc")[0].ravel().tolist() == [0, 0, 0, 0, 0, 0, 0, 1]


def test_same_mask_as_the_engine_at_its_threshold(logits, tmp_path):
    from tomoseg.etsam.fusion import threshold

    values = np.random.default_rng(0).normal(size=(3, 16, 16)).astype(np.float32)
    write_volume(tmp_path / "l.mrc", values, 10.0)
    rethreshold_file(tmp_path / "l.mrc", tmp_path / "m.mrc", 0.1)
    assert np.array_equal(read_mask(tmp_path / "m.mrc")[0], threshold(values, 0.1))


def test_score_kinds(logits, tmp_path):
    # etsam-logits: raised to -max = -3 first, so at T = -5 the -1024 voxel is marked too
    rethreshold_file(logits, tmp_path / "e.mrc", -5.0, "etsam-logits")
    assert read_mask(tmp_path / "e.mrc")[0].all()
    rethreshold_file(logits, tmp_path / "l.mrc", -5.0, "logits")
    assert read_mask(tmp_path / "l.mrc")[0].ravel().tolist() == [0, 1, 1, 1, 1, 1, 1, 1]
    probabilities = np.array([0.0, 0.2, 0.5, 0.5, 0.6, 0.9, 1.0, 1.0], np.float32).reshape(2, 2, 2)
    write_volume(tmp_path / "p.mrc", probabilities, 10.0)
    rethreshold_file(tmp_path / "p.mrc", tmp_path / "pm.mrc", 0.0, "probabilities")  # p > 0.5
    assert read_mask(tmp_path / "pm.mrc")[0].ravel().tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_provenance_beside_the_mask(logits, tmp_path):
    write_json(logits.parent / "provenance.json", provenance_record("segment", untrained=True))
    rethreshold_file(logits, tmp_path / "out" / "mask_t0.mrc", 0.0)
    record = json.loads((tmp_path / "out" / "mask_t0.provenance.json").read_text())
    assert record["step"] == "threshold" and record["inputs"]["logits"] == str(logits)
    assert record["logits_sha256"] == sha256sum(logits) and record["parameters"]["threshold"] == 0.0
    assert record["untrained"] is True and record["logits_provenance"] == str(
        logits.parent / "provenance.json"
    )


def test_no_provenance_means_unknown(logits, tmp_path):
    assert rethreshold_file(logits, tmp_path / "m.mrc", 0.0)["untrained"] is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_threshold_is_refused(logits, tmp_path, bad):
    with pytest.raises(InputError, match="finite"):
        rethreshold_file(logits, tmp_path / "m.mrc", bad)
    assert not (tmp_path / "m.mrc").exists()


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(InputError, match="nope.mrc"):
        rethreshold_file(tmp_path / "nope.mrc", tmp_path / "m.mrc", 0.0)
    values = np.zeros((2, 4, 4), np.float32)
    values[1, 2, 2] = np.nan
    write_volume(tmp_path / "nan.mrc", values, 10.0)
    with pytest.raises(InputError, match="nan.mrc"):
        rethreshold_file(tmp_path / "nan.mrc", tmp_path / "m.mrc", 0.0)
    assert not (tmp_path / "m.mrc").exists()


def test_cli_logs_the_mask_fraction(logits, tmp_path, cli_main, caplog, capsys):
    write_json(logits.parent / "provenance.json", provenance_record("segment", untrained=True))
    caplog.set_level(logging.INFO, logger="tomoseg")
    out = tmp_path / "m.mrc"
    assert cli_main(["threshold", str(logits), "--threshold", "-0.25", "--out", str(out)]) == 0
    line = next(r.getMessage() for r in caplog.records if "mask fraction" in r.getMessage())
    assert "0.625000" in line and line.endswith("(untrained)") and str(out) in line
    assert cli_main(["threshold", str(logits), "--threshold", "nan", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "finite" in err and str(logits) in err


def test_each_threshold_keeps_its_own_provenance(logits, tmp_path):
    """The record is named after the whole output name: mask_t0.5 and mask_t0.6 do not share one."""
    rethreshold_file(logits, tmp_path / "mask_t0.5.mrc", 0.5)
    rethreshold_file(logits, tmp_path / "mask_t0.6.mrc", 0.6)
    for t in ("0.5", "0.6"):
        record = json.loads((tmp_path / f"mask_t{t}.provenance.json").read_text())
        assert record["parameters"]["threshold"] == float(t)
    assert not (tmp_path / "mask_t0.provenance.json").exists()
