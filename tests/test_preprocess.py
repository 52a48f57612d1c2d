"""Normalization: the published code's behaviour by default, min-max as an option, clear errors."""

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.core.io import InputError, read_volume, write_volume
from tomoseg.preprocess import normalize_volume


def test_max_positive_matches_published_code():
    rng = np.random.default_rng(1)
    volume = rng.normal(size=(6, 7, 8)).astype(np.float32)
    # The published ETSAM code, written out: a[a < 0] = 0; a /= a.max()
    expected = volume.copy()
    expected[expected < 0] = 0
    expected /= expected.max()
    out = normalize_volume(volume)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-7)
    assert out.min() == 0.0 and out.max() == 1.0
    assert volume.min() < 0, "input must not be modified in place"


def test_minmax():
    volume = np.array([[[-2.0, 0.0], [1.0, 2.0]]], np.float32)
    np.testing.assert_allclose(normalize_volume(volume, "minmax"), [[[0.0, 0.5], [0.75, 1.0]]])


def test_integer_input_becomes_float32():
    out = normalize_volume(np.arange(8, dtype=np.int16).reshape(2, 2, 2))
    assert out.dtype == np.float32 and out.max() == 1.0


@pytest.mark.parametrize(
    "volume, mode, message",
    [
        (np.full((2, 2, 2), 3.0, np.float32), "max_positive", "constant volume"),
        (np.full((2, 2, 2), 3.0, np.float32), "minmax", "constant volume"),
        (-np.arange(8, dtype=np.float32).reshape(2, 2, 2) - 1, "max_positive", "no positive voxel"),
        (np.array([[[0.0, np.nan]]], np.float32), "max_positive", "non-finite"),
        (np.zeros((2, 2), np.float32), "max_positive", "expected a 3-D volume"),
    ],
)
def test_unusable_volumes_are_clear_errors(volume, mode, message):
    with pytest.raises(InputError, match=message):
        normalize_volume(volume, mode, name="tomo.mrc")


def test_all_negative_volume_works_with_minmax():
    volume = -np.arange(8, dtype=np.float32).reshape(2, 2, 2) - 1
    out = normalize_volume(volume, "minmax")
    assert out.min() == 0 and out.max() == 1


def test_cli_writes_volume_and_provenance(tmp_path):
    volume = np.random.default_rng(2).normal(size=(4, 8, 8)).astype(np.float32)
    write_volume(tmp_path / "t.mrc", volume, 13.48)
    assert main(["normalize", str(tmp_path / "t.mrc"), "--out", str(tmp_path / "n.mrc")]) == 0
    out, voxel_size = read_volume(tmp_path / "n.mrc")
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() == 1
    assert voxel_size == pytest.approx((13.48,) * 3, rel=1e-5)
    assert (tmp_path / "n.json").exists()


def test_cli_bad_input_exits_nonzero_and_writes_nothing(tmp_path, capsys):
    write_volume(tmp_path / "c.mrc", np.zeros((2, 4, 4), np.float32), 1.0)
    assert main(["normalize", str(tmp_path / "c.mrc"), "--out", str(tmp_path / "n.mrc")]) == 2
    assert "constant volume" in capsys.readouterr().err
    assert not (tmp_path / "n.mrc").exists()
    assert read_volume(tmp_path / "c.mrc")[0].shape == (2, 4, 4)


def test_softplus_minmax_on_known_values():
    # softplus(0) = ln 2, softplus(ln(e - 1)) = 1, softplus(ln(e^2 - 1)) = 2, softplus(25) = 25 (x above 20)
    x = np.array([[[0.0, np.log(np.e - 1)], [np.log(np.e**2 - 1), 25.0]]], np.float32)
    ln2 = np.log(2.0)
    expected = (np.array([[[ln2, 1.0], [2.0, 25.0]]]) - ln2) / (25.0 - ln2)
    out = normalize_volume(x, "softplus_minmax")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert out.min() == 0.0 and out.max() == 1.0


def test_softplus_matches_torch_and_upstream_formula():
    torch = pytest.importorskip("torch")
    from tomoseg.preprocess import softplus

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(scale=5, size=500), [-200.0, -20.0, 19.99, 20.0, 20.01, 300.0]])
    x = x.astype(np.float32)
    ref = torch.nn.functional.softplus(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(softplus(x), ref, rtol=2e-7, atol=1e-7)
    # upstream etsam.py (58e8df8): softplus with torch, then (a - min) / (max - min)
    vol = x[:-2].reshape(6, 7, 12)
    ref_vol = torch.nn.functional.softplus(torch.from_numpy(vol)).numpy()
    ref_vol = (ref_vol - ref_vol.min()) / (ref_vol.max() - ref_vol.min())
    np.testing.assert_allclose(normalize_volume(vol, "softplus_minmax"), ref_vol, rtol=0, atol=1e-6)


def test_upstream_normalization_name_is_an_alias():
    volume = np.random.default_rng(4).normal(size=(2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        normalize_volume(volume, "min_max_positive_values"), normalize_volume(volume, "max_positive")
    )


def test_softplus_of_a_volume_that_underflows_is_a_clear_error():
    with pytest.raises(InputError, match="constant after softplus"):
        normalize_volume(np.array([[[-300.0, -200.0]]], np.float32), "softplus_minmax", name="t.mrc")
