"""Local files: a ground truth whose shape differs from its tomogram stops the import, before any compute."""

from __future__ import annotations

import numpy as np
import pytest

from tomoseg.acquisition.local import check_pair, import_local
from tomoseg.core.errors import InputError
from tomoseg.core.io import write_volume


@pytest.fixture
def pair(tmp_path):
    write_volume(tmp_path / "tomo.mrc", np.zeros((4, 20, 24), np.float32), 10.0)
    write_volume(tmp_path / "truth.mrc", np.zeros((4, 24, 20), np.uint8), 10.0)
    return tmp_path / "tomo.mrc", tmp_path / "truth.mrc"


def test_shape_mismatch_names_both_files(pair):
    tomo, truth = pair
    with pytest.raises(InputError) as err:
        check_pair(tomo, truth)
    message = str(err.value)
    assert message.startswith(f"{truth}: ground truth shape (4, 24, 20) differs from its tomogram {tomo}'s")
    assert "(4, 20, 24)" in message


@pytest.mark.parametrize("binarize", [False, True])
def test_either_import_of_a_mismatched_pair_writes_nothing(tmp_path, pair, binarize):
    tomo, truth = pair
    source, counterpart = (truth, tomo) if binarize else (tomo, truth)
    out = tmp_path / "results" / "x.mrc"
    with pytest.raises(InputError, match="ground truth shape"):
        import_local(source, out, binarize=binarize, counterpart=counterpart)
    assert not out.parent.exists()


def test_voxel_size_mismatch_is_warned_about(tmp_path, caplog):
    write_volume(tmp_path / "tomo.mrc", np.zeros((4, 20, 24), np.float32), 10.0)
    write_volume(tmp_path / "truth.mrc", np.zeros((4, 20, 24), np.uint8), 14.0)
    write_volume(tmp_path / "nohdr.mrc", np.zeros((4, 20, 24), np.uint8), 0.0)
    check_pair(tmp_path / "tomo.mrc", tmp_path / "truth.mrc")
    assert "voxel size (14.0, 14.0, 14.0) A differs" in caplog.text
    caplog.clear()
    check_pair(
        tmp_path / "tomo.mrc", tmp_path / "nohdr.mrc"
    )  # no voxel size in the header: nothing to compare
    assert "differs" not in caplog.text


def test_an_ome_zarr_pair_is_imported_at_the_chosen_level_with_its_origin(tmp_path):
    pytest.importorskip("ome_zarr")
    from tomoseg.core.io import read_json, read_mask, read_placement, read_volume
    from tomoseg.core.omezarr import write_ome_zarr

    volume = np.random.default_rng(0).normal(size=(8, 24, 20)).astype(np.float32)
    truth = np.zeros(volume.shape, np.uint8)
    truth[:, 10, :] = 1
    write_ome_zarr(tmp_path / "tomo.zarr", volume, 10.0, origin=(100.0, 200.0, 300.0), levels=2)
    write_ome_zarr(tmp_path / "truth.zarr", truth, 10.0, origin=(100.0, 200.0, 300.0), levels=2)
    out = tmp_path / "results"
    import_local(tmp_path / "tomo.zarr", out / "tomogram.mrc", counterpart=tmp_path / "truth.zarr")
    import_local(
        tmp_path / "truth.zarr", out / "groundtruth.mrc", binarize=True, counterpart=tmp_path / "tomo.zarr"
    )
    back, voxel = read_volume(out / "tomogram.mrc")
    np.testing.assert_array_equal(back, volume)
    assert voxel == pytest.approx((10.0,) * 3)
    assert read_placement(out / "tomogram.mrc").origin == pytest.approx((100.0, 200.0, 300.0))
    np.testing.assert_array_equal(read_mask(out / "groundtruth.mrc")[0], truth)
    source = read_json(out / "tomogram.source.json")
    assert source["sha256"] is None and source["size_bytes"] > 0

    import_local(tmp_path / "tomo.zarr", out / "binned.mrc", target_voxel_size=20.0)
    binned, binned_voxel = read_volume(out / "binned.mrc")
    assert binned.shape == (4, 12, 10) and binned_voxel == pytest.approx((20.0,) * 3)
    assert read_placement(out / "binned.mrc").origin == pytest.approx((105.0, 205.0, 305.0))
