"""Theta-wise metrics on planes, spheres and cylinders whose normals are known analytically, and against brute force."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest

from tomoseg.core.io import InputError, write_volume
from tomoseg.evaluation.orientation import THETA_MAP_BACKGROUND, theta_map, theta_slabs, theta_wise
from tomoseg.testing.reference import theta_reference, theta_wise_reference

N = 40


def _grid(n=N):
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    return z, y, x


def _shell():
    z, y, x = _grid()
    r = np.sqrt(z**2 + y**2 + x**2)
    shell = (r >= 14) & (r < 16)
    polar = np.degrees(np.arccos(np.abs(z) / np.maximum(r, 1e-9)))  # the analytic θ of the radial normal
    return shell, polar


def _files(tmp_path, pred, truth):
    write_volume(tmp_path / "pred.mrc", pred.astype(np.uint8), 1.0)
    write_volume(tmp_path / "truth.mrc", truth.astype(np.uint8), 1.0)
    return tmp_path / "pred.mrc", tmp_path / "truth.mrc"


def _recall(rows):
    return [r["recall"] for r in rows]


@pytest.mark.parametrize(
    ("plane", "in_bin"),
    [
        (lambda z, y, x: z == 0, 0),  # faces the beam: normal along Z, θ = 0
        (lambda z, y, x: (z - x == 0) | (z - x == 1), 1),  # 45 degrees
        (lambda z, y, x: x == 0, 2),  # edge-on: θ = 90
    ],
)
def test_a_plane_lands_in_one_bin(tmp_path, plane, in_bin):
    z, y, x = np.mgrid[:24, :24, :24] - 12
    truth = plane(z, y, x)
    pred = truth & (np.random.default_rng(0).random(truth.shape) < 0.5)
    rows = theta_wise(*_files(tmp_path, pred, truth))["bins"]
    assert [r["truth_voxels"] for r in rows] == [int(truth.sum()) if i == in_bin else 0 for i in range(3)]
    assert rows[in_bin]["recall"] == pytest.approx(pred.sum() / truth.sum())
    assert rows[in_bin]["precision"] == 1.0
    assert all(np.isnan(r["recall"]) for i, r in enumerate(rows) if i != in_bin)


def test_sphere_shell_normals_are_radial_and_bins_follow_the_area(tmp_path):
    shell, polar = _shell()
    with mrcfile.new(tmp_path / "s.mrc") as m:
        m.set_data(shell.astype(np.int8))
    with mrcfile.open(tmp_path / "s.mrc") as m:
        got = list(theta_slabs(m.data, tmp_path / "s.mrc"))
    pts = np.concatenate([g[2] for g in got])
    theta = np.concatenate([g[3] for g in got])
    want = polar[tuple(pts.T)]
    assert np.mean(np.abs(theta - want)) < 4.0
    assert np.mean(np.digitize(theta, [30, 60]) == np.digitize(want, [30, 60])) > 0.9
    rows = theta_wise(*_files(tmp_path, shell, shell))["bins"]
    fractions = np.array([r["truth_voxels"] for r in rows]) / shell.sum()
    # area of a sphere's zone between polar angles: 1 - cos 30, cos 30 - cos 60, cos 60
    area = np.array([1 - np.cos(np.radians(30)), np.cos(np.radians(30)) - 0.5, 0.5])
    assert np.abs(fractions - area).max() < 0.05
    assert _recall(rows) == [1.0, 1.0, 1.0]
    assert [r["precision"] for r in rows] == [1.0, 1.0, 1.0]


def test_shell_without_its_caps_loses_recall_only_at_small_theta(tmp_path):
    shell, polar = _shell()
    capless = shell & (polar > 25)
    rows = theta_wise(*_files(tmp_path, capless, shell))["bins"]
    assert rows[0]["recall"] < 0.6  # the caps within 25 degrees: ~70 % of the 0-30 zone's area
    assert _recall(rows)[1:] == [1.0, 1.0]
    assert [r["precision"] for r in rows] == [1.0, 1.0, 1.0]
    # the other way round, the prediction's extra caps cost precision at small θ only
    rows = theta_wise(*_files(tmp_path, shell, capless))["bins"]
    assert rows[0]["precision"] < 0.6
    assert [r["precision"] for r in rows][1:] == [1.0, 1.0]
    assert _recall(rows) == [1.0, 1.0, 1.0]


def test_cylinders(tmp_path):
    z, y, x = _grid()
    along_z = (np.hypot(y, x) >= 12) & (np.hypot(y, x) < 14)  # walls parallel to the beam: θ = 90
    rows = theta_wise(*_files(tmp_path, along_z, along_z))["bins"]
    assert [r["truth_voxels"] for r in rows] == [0, 0, int(along_z.sum())]
    along_x = (np.hypot(z, y) >= 12) & (np.hypot(z, y) < 14)  # θ uniform in [0, 90]: a third per bin
    rows = theta_wise(*_files(tmp_path, along_x, along_x))["bins"]
    fractions = np.array([r["truth_voxels"] for r in rows]) / along_x.sum()
    assert np.abs(fractions - 1 / 3).max() < 0.05


def _irregular():
    """Two shells, a plane and scattered voxels: ties, sparse points and wide neighbourhoods."""
    rng = np.random.default_rng(1)
    z, y, x = np.mgrid[:18, :20, :22]
    r1 = np.sqrt((z - 8) ** 2 + (y - 9) ** 2 + (x - 8) ** 2)
    r2 = np.sqrt((z - 10) ** 2 + (y - 11) ** 2 + (x - 14) ** 2)
    mask = ((r1 >= 5) & (r1 < 6.5)) | ((r2 >= 4) & (r2 < 5)) | (z == 16) & (x < 6)
    mask |= rng.random(mask.shape) < 0.002
    return mask


def test_slabs_agree_with_brute_force_whatever_the_slab_and_halo(tmp_path):
    mask = _irregular()
    pts_ref, theta_ref = theta_reference(mask, 30)
    write_volume(tmp_path / "m.mrc", mask.astype(np.uint8), 1.0)
    for slab_voxels, halo in ((1, 1), (20 * 22 * 3, 2), (1 << 25, 8)):
        with mrcfile.open(tmp_path / "m.mrc") as m:
            got = list(theta_slabs(m.data, tmp_path / "m.mrc", 30, slab_voxels, halo))
        pts = np.concatenate([g[2] for g in got])
        theta = np.concatenate([g[3] for g in got])
        np.testing.assert_array_equal(pts, pts_ref)
        np.testing.assert_allclose(theta, theta_ref, atol=1e-6)


def test_theta_wise_agrees_with_brute_force(tmp_path):
    truth = _irregular()
    pred = truth.copy()
    rng = np.random.default_rng(2)
    pred[rng.random(pred.shape) < 0.15] = False
    pred[3:6, 2:18, 15:18] = True
    bins = (0.0, 20.0, 45.0, 70.0, 90.0)
    got = theta_wise(*_files(tmp_path, pred, truth), bins=bins, k=12, slab_voxels=20 * 22 * 4, halo=1)
    want = theta_wise_reference(pred, truth, bins, k=12)
    for g, w in zip(got["bins"], want, strict=True):
        assert g["bin"] == w["bin"]
        assert (g["truth_voxels"], g["pred_voxels"]) == (w["truth_voxels"], w["pred_voxels"])
        np.testing.assert_allclose([g["recall"], g["precision"]], [w["recall"], w["precision"]])


def test_too_few_voxels_for_a_plane_are_unbinned(tmp_path):
    truth = np.zeros((5, 5, 5), bool)
    truth[1, 1, 1] = truth[3, 3, 3] = True
    res = theta_wise(*_files(tmp_path, truth, truth))
    assert res["unbinned"] == {"truth_voxels": 2, "pred_voxels": 2}
    assert all(r["truth_voxels"] == 0 and np.isnan(r["recall"]) for r in res["bins"])


def test_theta_map_holds_theta_at_membrane_voxels(tmp_path):
    mask = _irregular()
    write_volume(tmp_path / "m.mrc", mask.astype(np.uint8), 1.0)
    theta_map(tmp_path / "m.mrc", tmp_path / "theta.mrc", slab_voxels=20 * 22 * 5, halo=2)
    with mrcfile.open(tmp_path / "theta.mrc") as m:
        data = m.data.copy()
        assert data.dtype == np.float32
    pts, theta = theta_reference(mask, 30)
    np.testing.assert_allclose(data[tuple(pts.T)], theta, atol=1e-4)
    assert (data[~mask] == THETA_MAP_BACKGROUND).all()


@pytest.mark.parametrize("bins", [(0, 45), (10, 45, 90), (0, 60, 30, 90), (0,)])
def test_bins_must_rise_from_0_to_90(tmp_path, bins):
    files = _files(tmp_path, np.ones((3, 3, 3)), np.ones((3, 3, 3)))
    with pytest.raises(InputError, match="theta bins"):
        theta_wise(*files, bins=bins)


def test_a_theta_map_of_the_truth_gives_the_same_bins_as_recomputing(tmp_path):
    truth = _irregular()
    pred = truth.copy()
    pred[np.random.default_rng(4).random(pred.shape) < 0.2] = False
    files = _files(tmp_path, pred, truth)
    bins = (0.0, 20.0, 45.0, 70.0, 90.0)
    direct = theta_wise(*files, bins=bins, theta_map=tmp_path / "theta.mrc")
    reused = theta_wise(*files, bins=bins, truth_theta=tmp_path / "theta.mrc", slab_voxels=20 * 22 * 3)
    assert json.dumps(reused) == json.dumps(direct)
    # a map of another mask is refused, naming the map
    write_volume(tmp_path / "other.mrc", np.roll(truth, 3, axis=2).astype(np.uint8), 1.0)
    theta_map(tmp_path / "other.mrc", tmp_path / "other_theta.mrc")
    with pytest.raises(InputError, match=r"other_theta\.mrc: not a θ map of .*truth\.mrc"):
        theta_wise(*files, truth_theta=tmp_path / "other_theta.mrc")
    write_volume(tmp_path / "small.mrc", np.zeros((3, 3, 3), np.float32), 1.0)
    with pytest.raises(InputError, match="shape mismatch: θ map"):
        theta_wise(*files, truth_theta=tmp_path / "small.mrc")
