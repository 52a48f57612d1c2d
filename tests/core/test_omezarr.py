"""OME-Zarr volumes: real multiscale images written in the test read back with array, voxel size and origin."""

import json

import numpy as np
import pytest

pytest.importorskip("ome_zarr")
zarr = pytest.importorskip("zarr")

from ome_zarr.writer import write_multiscale  # noqa: E402

from tomoseg.core.io import (  # noqa: E402
    InputError,
    OutputError,
    Placement,
    copy_as_ome_zarr,
    read_header,
    read_mask,
    read_placement,
    read_volume,
    write_volume,
)
from tomoseg.core.omezarr import (  # noqa: E402
    ZarrLevel,
    choose_level,
    open_zarr_volume,
    write_ome_zarr,
    zarr_levels,
)


def _volume(shape=(20, 33, 40), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_roundtrip_keeps_array_voxel_size_and_origin(tmp_path):
    data = _volume()
    path = tmp_path / "tomo.zarr"
    write_ome_zarr(path, data, (10.0, 11.0, 12.0), origin=(100.0, 200.0, 300.0), chunk=16)
    back, voxel = read_volume(path)
    np.testing.assert_array_equal(back, data)
    assert back.dtype == np.float32
    assert voxel == pytest.approx((10.0, 11.0, 12.0))
    assert read_placement(path) == Placement(origin=(100.0, 200.0, 300.0))
    assert read_header(path) == ((20, 33, 40), np.dtype(np.float32), pytest.approx((10.0, 11.0, 12.0)))


def test_written_image_is_multiscale_chunked_and_in_angstrom(tmp_path):
    path = tmp_path / "logits.zarr"
    write_ome_zarr(path, _volume((40, 64, 64)), 8.0, origin=(1.0, 2.0, 3.0), chunk=16)
    attrs = json.loads((path / ".zattrs").read_text())["multiscales"][0]
    assert [a["unit"] for a in attrs["axes"]] == ["angstrom"] * 3
    assert [a["name"] for a in attrs["axes"]] == ["z", "y", "x"]
    levels = zarr_levels(path)
    assert len(levels) == 3  # 64 -> 32 -> 16: the coarsest fits one chunk
    assert [lv.voxel_size for lv in levels] == [(8.0,) * 3, (16.0,) * 3, (32.0,) * 3]
    # level k's first voxel centre lies (2**k - 1) / 2 level-0 voxels from the origin
    assert levels[1].origin == pytest.approx((1.0 + 4.0, 2.0 + 4.0, 3.0 + 4.0))
    assert zarr.open_group(str(path), mode="r")["0"].chunks == (16, 16, 16)


def test_masks_stay_uint8_and_thin_membranes_survive_downsampling(tmp_path):
    mask = np.zeros((8, 32, 32), bool)
    mask[:, 11, :] = True  # a one-voxel-thick sheet on an odd row: nearest-neighbour would drop it
    path = tmp_path / "mask.zarr"
    write_ome_zarr(path, mask, 5.0, levels=2)
    back, voxel = read_mask(path)
    assert back.dtype == np.uint8 and voxel == (5.0, 5.0, 5.0)
    np.testing.assert_array_equal(back, mask)
    coarse, coarse_voxel = read_mask(path, target_voxel_size=10.0)
    assert coarse_voxel == (10.0, 10.0, 10.0) and coarse.shape == (4, 16, 16)
    assert coarse[:, 5, :].all() and coarse.sum() == 4 * 16


@pytest.mark.parametrize(
    "target, level", [(None, 0), (10.0, 0), (14.0, 0), (15.0, 1), (16.0, 1), (35.0, 2), (500.0, 2)]
)
def test_level_is_chosen_by_voxel_size(tmp_path, target, level):
    path = tmp_path / "tomo.zarr"
    write_ome_zarr(path, _volume((16, 40, 40)), 10.0, origin=(0.0, 0.0, 0.0), levels=3)
    volume = open_zarr_volume(path, target)
    assert volume.level.path == str(level)
    assert volume.level.voxel_size == (10.0 * 2**level,) * 3
    assert read_header(path, target_voxel_size=target)[0] == tuple(-(-n // 2**level) for n in (16, 40, 40))
    assert read_placement(path, target_voxel_size=target).origin == pytest.approx(((2**level - 1) * 5.0,) * 3)


def test_choose_level_prefers_the_finer_of_two_equally_near_levels():
    levels = [ZarrLevel(str(i), (10.0 * 2**i,) * 3, (0.0,) * 3) for i in range(3)]
    assert choose_level(levels, None) == 0
    assert choose_level(levels, 20.0 * 2**0.5) == 1  # geometric middle of 20 and 40
    with pytest.raises(InputError, match="must be > 0"):
        choose_level(levels, 0.0)


def test_units_are_converted_to_angstrom_and_singleton_axes_dropped(tmp_path):
    path = tmp_path / "nm.zarr"
    data = _volume((6, 10, 12))
    group = zarr.open_group(str(path), mode="w")
    axes = [
        {"name": "t", "type": "time"},
        {"name": "c", "type": "channel"},
        *({"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"),
    ]
    write_multiscale(
        [data[None, None]],
        group,
        axes=axes,
        coordinate_transformations=[
            [
                {"type": "scale", "scale": [1.0, 1.0, 1.2, 1.3, 1.4]},
                {"type": "translation", "translation": [0, 0, 5, 6, 7]},
            ]
        ],
    )
    back, voxel = read_volume(path)
    np.testing.assert_array_equal(back, data)
    assert voxel == pytest.approx((12.0, 13.0, 14.0))
    assert read_placement(path).origin == pytest.approx((50.0, 60.0, 70.0))


def test_mrc_placement_goes_through_ome_zarr(tmp_path):
    data = _volume((5, 6, 7))
    mrc = tmp_path / "tomo.mrc"
    write_volume(mrc, data, (3.0, 4.0, 5.0), placement=Placement(origin=(100.0, 200.0, 300.0)))
    volume, voxel = read_volume(mrc)
    write_ome_zarr(tmp_path / "tomo.zarr", volume, voxel, origin=read_placement(mrc).origin)
    back, back_voxel = read_volume(tmp_path / "tomo.zarr")
    np.testing.assert_array_equal(back, data)
    assert back_voxel == pytest.approx(voxel)
    assert read_placement(tmp_path / "tomo.zarr").origin == pytest.approx((100.0, 200.0, 300.0))


def _multiscales(path, **dataset):
    group = zarr.open_group(str(path), mode="w")
    group.create_dataset("0", data=np.zeros((2, 3, 4), np.float32))
    group.attrs["multiscales"] = [
        {"version": "0.4", "axes": [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"],
         "datasets": [{"path": "0", **dataset}]}
    ]  # fmt: skip


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.mkdir(), "not a Zarr store"),
        (lambda p: zarr.open_group(str(p), mode="w"), "without OME-Zarr multiscales"),
        (lambda p: _multiscales(p, coordinateTransformations=[{"type": "translation", "translation": [0, 0, 0]}]),
         "no scale transform"),
        (lambda p: _multiscales(p, coordinateTransformations=[{"type": "scale", "scale": [1.0, 0.0, 1.0]}]),
         "must be > 0"),
        (lambda p: None, "file not found"),
    ],
)  # fmt: skip
def test_bad_ome_zarr_is_rejected_with_its_name(tmp_path, make, message):
    path = tmp_path / "bad.zarr"
    make(path)
    with pytest.raises(InputError, match=message) as err:
        read_volume(path)
    assert str(path) in str(err.value)


def test_a_2d_image_is_not_read_as_a_volume(tmp_path):
    path = tmp_path / "image.zarr"
    write_multiscale([np.zeros((8, 8), np.float32)], zarr.open_group(str(path), mode="w"), axes=["y", "x"])
    with pytest.raises(InputError, match="last axes are z, y, x"):
        read_volume(path)


def test_write_is_atomic_and_replaces_an_old_image(tmp_path, monkeypatch):
    path = tmp_path / "mask.zarr"
    write_ome_zarr(path, np.ones((4, 4, 4), np.uint8), 1.0)
    write_ome_zarr(path, np.zeros((4, 4, 4), np.uint8), 2.0)
    back, voxel = read_mask(path)
    assert not back.any() and voxel == (2.0, 2.0, 2.0)

    def fail(*args, **kwargs):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr("ome_zarr.writer.write_multiscale", fail)
    with pytest.raises(RuntimeError, match="killed"):
        write_ome_zarr(path, np.ones((4, 4, 4), np.uint8), 3.0)
    assert read_mask(path)[1] == (2.0, 2.0, 2.0)  # the old image is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.zarr"]  # no temporary folder left


def test_a_file_in_the_way_is_an_output_error(tmp_path):
    path = tmp_path / "mask.zarr"
    path.write_text("not a folder")
    with pytest.raises(OutputError, match="in the way"):
        write_ome_zarr(path, np.ones((2, 2, 2), np.uint8), 1.0)
    assert path.read_text() == "not a folder"


@pytest.mark.parametrize("mask", [True, False])
def test_copy_as_ome_zarr_keeps_array_voxel_size_and_origin(tmp_path, mask):
    rng = np.random.default_rng(11)
    volume = (
        (rng.random((9, 70, 66)) > 0.9).astype(np.uint8)
        if mask
        else rng.normal(size=(9, 70, 66)).astype(np.float32)
    )
    placement = Placement(origin=(12.0, -40.0, 300.5))
    write_volume(tmp_path / "v.mrc", volume, (8.0, 8.0, 8.0), placement=placement)
    copy_as_ome_zarr(tmp_path / "v.mrc", tmp_path / "v.zarr", mask=mask)
    read = read_mask if mask else read_volume
    image, voxel = read(tmp_path / "v.zarr")
    np.testing.assert_array_equal(image, volume)
    assert voxel == pytest.approx((8.0,) * 3)
    assert read_placement(tmp_path / "v.zarr").origin == pytest.approx(placement.origin)
    levels = zarr_levels(tmp_path / "v.zarr")
    assert len(levels) == 2 and levels[1].voxel_size == pytest.approx((16.0,) * 3)


def _edit_json(path, edit):
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [  # issue 21: the validator a download uses guards a local store too (one line, never a traceback)
        ("0/.zarray", lambda m: m.update(shape=[2**20, 2**20, 2**20]), "declares a volume"),
        ("0/.zarray", lambda m: m.update(dimension_separator="/../"), "dimension_separator"),
        (".zattrs", lambda m: m["multiscales"][0]["datasets"][0]["coordinateTransformations"][0].update(
            scale=["13.48", 1.0, 1.0]), "every value must be a number"),
        (".zattrs", lambda m: m["multiscales"][0]["datasets"][0].update(path="/etc"), "not a dataset path"),
    ],
)  # fmt: skip
def test_hostile_local_metadata_is_one_input_error(tmp_path, file, edit, message):
    path = tmp_path / "tomo.zarr"
    write_ome_zarr(path, np.zeros((4, 5, 6), np.float32), 1.0, levels=1)
    _edit_json(path / file, edit)
    with pytest.raises(InputError, match=message) as err:
        read_volume(path)
    assert str(path) in str(err.value)
