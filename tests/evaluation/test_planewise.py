"""Plane-wise metrics against slices whose every value is known by hand, and against the brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from tomoseg.core.io import InputError, write_volume
from tomoseg.evaluation.planewise import plane_wise
from tomoseg.testing.reference import plane_wise_reference

# A (Z=4, Y=3, X=3) pair of masks built so that every slice's counts are known:
#   truth voxels (z, y, x): (0,0,0) (0,0,1) (1,1,1);  prediction: (0,0,0) (0,1,0) (2,1,1)
# XY (fixed z): z0 tp1 fp1 fn1 -> dice 1/2, iou 1/3, precision 1/2, recall 1/2; z1 truth only (fn1) -> 0;
#               z2 prediction only (fp1) -> 0; z3 both empty.
# XZ (fixed y): y0 tp1 fn1 -> 2/3, 1/2, 1, 1/2; y1 tp0 fp2 fn1 -> 0; y2 both empty.
# YZ (fixed x): x0 tp1 fp1 -> 2/3, 1/2, 1/2, 1; x1 tp0 fp1 fn2 -> 0; x2 both empty.
TRUTH = [(0, 0, 0), (0, 0, 1), (1, 1, 1)]
PRED = [(0, 0, 0), (0, 1, 0), (2, 1, 1)]
# (dice, iou, precision, recall) per plane and convention: the sum over non-empty slices divided by
# 4 (XY) or 3 (XZ, YZ) slices ("zero"), by the non-empty ones ("skip"), or with the empty slice as 1 ("one").
EXPECTED = {
    "zero": {
        "xy": (0.5 / 4, (1 / 3) / 4, 0.5 / 4, 0.5 / 4),
        "xz": ((2 / 3) / 3, 0.5 / 3, 1 / 3, 0.5 / 3),
        "yz": ((2 / 3) / 3, 0.5 / 3, 0.5 / 3, 1 / 3),
    },
    "skip": {
        "xy": (0.5 / 3, (1 / 3) / 3, 0.5 / 3, 0.5 / 3),
        "xz": ((2 / 3) / 2, 0.5 / 2, 1 / 2, 0.5 / 2),
        "yz": ((2 / 3) / 2, 0.5 / 2, 0.5 / 2, 1 / 2),
    },
    "one": {
        "xy": (1.5 / 4, (4 / 3) / 4, 1.5 / 4, 1.5 / 4),
        "xz": ((5 / 3) / 3, 1.5 / 3, 2 / 3, 1.5 / 3),
        "yz": ((5 / 3) / 3, 1.5 / 3, 1.5 / 3, 2 / 3),
    },
}


def _volume(voxels, shape=(4, 3, 3)):
    v = np.zeros(shape, np.uint8)
    for zyx in voxels:
        v[zyx] = 1
    return v


@pytest.fixture
def hand_made(tmp_path):
    write_volume(tmp_path / "pred.mrc", _volume(PRED), 1.0)
    write_volume(tmp_path / "truth.mrc", _volume(TRUTH), 1.0)
    return tmp_path / "pred.mrc", tmp_path / "truth.mrc"


@pytest.mark.parametrize("empty", ["zero", "skip", "one"])
@pytest.mark.parametrize("chunk_voxels", [1, 1 << 22])
def test_every_slice_known_by_hand(hand_made, empty, chunk_voxels):
    got = plane_wise(*hand_made, empty=empty, chunk_voxels=chunk_voxels)
    for plane, values in EXPECTED[empty].items():
        for metric, value in zip(("dice", "iou", "precision", "recall"), values, strict=True):
            assert got[plane][metric] == pytest.approx(value, abs=1e-12), (plane, metric)
        assert got[plane]["empty_slices"] == 1
    assert [got[p]["slices"] for p in ("xy", "xz", "yz")] == ([3, 2, 2] if empty == "skip" else [4, 3, 3])


def test_upstream_zero_convention_is_the_default(hand_made):
    assert plane_wise(*hand_made) == plane_wise(*hand_made, empty="zero")


@pytest.mark.parametrize("empty", ["zero", "skip", "one"])
def test_agrees_with_brute_force_reference(tmp_path, empty):
    rng = np.random.default_rng(3)
    truth = np.zeros((9, 11, 13), np.uint8)
    truth[2:7, 3:9, 1:12] = rng.random((5, 6, 11)) < 0.4
    pred = truth.copy()
    pred[rng.random(pred.shape) < 0.05] ^= 1
    pred[:, :, 12] = 0  # a YZ slice empty in both
    truth[:, :, 12] = 0
    write_volume(tmp_path / "p.mrc", pred, 1.0)
    write_volume(tmp_path / "t.mrc", truth, 1.0)
    got = plane_wise(tmp_path / "p.mrc", tmp_path / "t.mrc", empty=empty, chunk_voxels=300)
    want = plane_wise_reference(pred, truth, empty)
    for plane in ("xy", "xz", "yz"):
        for metric in ("dice", "iou", "precision", "recall"):
            assert got[plane][metric] == pytest.approx(want[plane][metric], abs=1e-12)


def test_shape_mismatch_names_both_files(tmp_path):
    write_volume(tmp_path / "p.mrc", np.zeros((4, 3, 3), np.uint8), 1.0)
    write_volume(tmp_path / "t.mrc", np.zeros((4, 3, 2), np.uint8), 1.0)
    with pytest.raises(InputError, match=r"p\.mrc.*t\.mrc"):
        plane_wise(tmp_path / "p.mrc", tmp_path / "t.mrc")


def test_unknown_convention_is_an_input_error(hand_made):
    with pytest.raises(InputError, match="empty-slice convention"):
        plane_wise(*hand_made, empty="nan")
