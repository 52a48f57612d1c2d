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


def test_plane_and_theta_wise_go_into_the_json(masks, cli_main):
    from tomoseg.evaluation.orientation import theta_wise
    from tomoseg.evaluation.planewise import plane_wise

    code, plain = _evaluate(cli_main, masks)
    assert code == 0 and "plane_wise" not in plain and "theta_wise" not in plain
    theta_map = masks / "theta.mrc"
    code, record = _evaluate(
        cli_main,
        masks,
        "--plane-wise",
        "--plane-empty",
        "skip",
        "--theta-wise",
        "--theta-bins",
        "0",
        "45",
        "90",
        "--theta-k",
        "12",
        "--theta-map",
        str(theta_map),
    )
    assert code == 0
    pred, truth = masks / "seg" / "mask.mrc", masks / "truth.mrc"
    assert record["plane_wise"] == json.loads(json.dumps(plane_wise(pred, truth, "skip")))
    assert record["plane_wise_empty_slices"] == "skip"
    want = theta_wise(pred, truth, (0, 45, 90), 12)
    assert record["theta_wise"] == json.loads(json.dumps(want["bins"]))
    assert [row["bin"] for row in record["theta_wise"]] == [[0, 45], [45, 90]]
    assert set(record["theta_wise"][0]) >= {"bin", "recall", "precision", "truth_voxels", "pred_voxels"}
    assert record["theta_wise_normals"]["k"] == 12
    assert theta_map.exists()
    # the map read back instead of the truth's normals: the same bins
    code, again = _evaluate(
        cli_main,
        masks,
        "--theta-wise",
        "--theta-bins",
        "0",
        "45",
        "90",
        "--theta-k",
        "12",
        "--truth-theta",
        str(theta_map),
    )
    assert code == 0 and again["theta_wise"] == record["theta_wise"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--theta-wise", "--theta-bins", "0", "45"), "theta bins must rise strictly from 0 to 90"),
        (("--theta-map", "x.mrc"), "need --theta-wise"),
        (("--truth-theta", "x.mrc"), "need --theta-wise"),
        (("--theta-wise", "--theta-k", "2"), "k >= 3"),
        (("--theta-wise", "--truth-theta", "missing.mrc"), "missing.mrc"),
    ],
)
def test_bad_theta_options_exit_2_without_output(masks, cli_main, capsys, extra, message):
    code, _ = _evaluate(cli_main, masks, *extra)
    assert code == 2
    assert not (masks / "m.json").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
