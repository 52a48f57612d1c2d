"""Issue 21, item 7: quiet mismatches speak. `evaluate` warns (with --strict-geometry refuses) when prediction
and truth differ in voxel size or origin; a compressed MRC is named as such, with the command that opens it."""

from __future__ import annotations

import bz2
import gzip
import json
import logging

import numpy as np
import pytest

import tomoseg.cli as cli
from tomoseg.core.io import Placement, write_volume

SHAPE = (6, 20, 24)


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err
    if code != 0:
        assert len([x for x in err.splitlines() if x.startswith("tomoseg ")]) == 1 and "Traceback" not in err
    return code, err


@pytest.fixture
def pair(tmp_path):
    mask = (np.random.default_rng(0).random(SHAPE) > 0.6).astype(np.uint8)
    write_volume(tmp_path / "pred.mrc", mask, 10.0, placement=Placement(origin=(0.0, 0.0, 0.0)))
    return tmp_path, mask


@pytest.mark.parametrize(
    ("voxel", "origin", "needle"),
    [
        (20.0, (0.0, 0.0, 0.0), "voxel size (10.0, 10.0, 10.0) A vs (20.0, 20.0, 20.0) A"),
        (10.0, (0.0, 50.0, 0.0), "origin (0.0, 0.0, 0.0) A vs (0.0, 50.0, 0.0) A"),
    ],
)
def test_evaluate_warns_or_refuses_on_another_voxel_size_or_origin(
    capsys, caplog, pair, voxel, origin, needle
):
    d, mask = pair
    write_volume(d / "truth.mrc", mask, voxel, placement=Placement(origin=origin))
    args = ["evaluate", "--pred", d / "pred.mrc", "--truth", d / "truth.mrc", "--json", d / "m.json"]
    with caplog.at_level(logging.WARNING):
        code, _ = run(capsys, *args)
    assert code == 0 and needle in caplog.text and "--strict-geometry" in caplog.text
    record = json.loads((d / "m.json").read_text())
    assert needle in record["geometry_warning"] and record["dice"] == 1.0
    (d / "m.json").unlink()
    code, err = run(capsys, *args, "--strict-geometry")
    assert code == 2 and needle in err and str(d / "pred.mrc") in err and not (d / "m.json").exists()


def test_evaluate_is_quiet_when_geometry_agrees(capsys, caplog, pair):
    d, mask = pair
    write_volume(d / "truth.mrc", mask, 10.0)
    with caplog.at_level(logging.WARNING):
        code, _ = run(capsys, "evaluate", "--pred", d / "pred.mrc", "--truth", d / "truth.mrc", "--json",
                      d / "m.json", "--strict-geometry")  # fmt: skip
    assert code == 0 and "differ in" not in caplog.text
    assert "geometry_warning" not in json.loads((d / "m.json").read_text())


@pytest.mark.parametrize(
    ("compress", "kind", "tool"), [(gzip.compress, "gzip", "gunzip"), (bz2.compress, "bzip2", "bunzip2")]
)
def test_a_compressed_mrc_gets_a_hint(capsys, pair, compress, kind, tool):
    d, _ = pair
    packed = d / "tomo.mrc.gz"
    packed.write_bytes(compress((d / "pred.mrc").read_bytes()))
    code, err = run(capsys, "normalize", packed, "--out", d / "n.mrc")
    assert code == 2 and f"{packed}: a {kind}-compressed file, not an MRC file" in err and tool in err
