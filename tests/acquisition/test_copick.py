"""copick: a real local-filesystem project made with copick's API is read, and masks written into it read back through copick."""

from __future__ import annotations

import numpy as np
import pytest

copick = pytest.importorskip("copick")

from copick.impl.filesystem import CopickConfigFSSpec  # noqa: E402
from copick.models import PickableObject  # noqa: E402

from tomoseg.acquisition.copick import (  # noqa: E402
    export_mask,
    find_tomogram,
    import_copick,
    project_runs,
    read_tomogram,
    write_segmentation,
)
from tomoseg.core.io import InputError, Placement, read_json, read_placement, read_volume, write_volume  # noqa: E402


@pytest.fixture
def project(tmp_path):
    """A copick project with two runs, each with a 10 A 'wbp' tomogram (values known per run)."""
    config = CopickConfigFSSpec(
        name="test project",
        overlay_root=f"local://{tmp_path / 'overlay'}",
        overlay_fs_args={"auto_mkdir": True},
        pickable_objects=[PickableObject(name="membrane", is_particle=False, label=1)],
        user_id="someone",
    )
    path = tmp_path / "copick.json"
    path.write_text(config.model_dump_json(indent=2))
    root = copick.from_file(str(path))
    volumes = {}
    for i, name in enumerate(["TS_002", "TS_001"]):
        volume = np.random.default_rng(i).normal(size=(8, 24, 20)).astype(np.float32)
        root.new_run(name).new_voxel_spacing(10.0).new_tomogram("wbp").from_numpy(volume)
        volumes[name] = volume
    return path, volumes


def test_runs_and_tomogram_are_read_with_voxel_size(project):
    config, volumes = project
    assert project_runs(config) == ["TS_001", "TS_002"]
    volume, voxel, placement = read_tomogram(config, "TS_001", 10.0, "wbp")
    np.testing.assert_array_equal(volume, volumes["TS_001"])
    assert voxel == pytest.approx((10.0, 10.0, 10.0))
    assert placement == Placement()


def test_import_writes_an_mrc_with_provenance(project, tmp_path):
    config, volumes = project
    out = tmp_path / "results" / "data" / "cp-TS_002" / "tomogram.mrc"
    import_copick(config, "TS_002", 10.0, "wbp", out)
    volume, voxel = read_volume(out)
    np.testing.assert_array_equal(volume, volumes["TS_002"])
    assert voxel == pytest.approx((10.0, 10.0, 10.0))
    source = read_json(out.with_name("tomogram.source.json"))
    assert source["inputs"]["run"] == "TS_002" and source["parameters"]["tomo_type"] == "wbp"


@pytest.mark.parametrize(
    "run, spacing, tomo_type, message",
    [
        ("TS_404", 10.0, "wbp", "no copick run 'TS_404' \\(runs: TS_001, TS_002\\)"),
        ("TS_001", 7.0, "wbp", "no voxel spacing 7.0 A \\(has \\[10.0\\]\\)"),
        ("TS_001", 10.0, "denoised", "no 'denoised' tomogram at 10.0 A \\(has \\['wbp'\\]\\)"),
    ],
)
def test_missing_run_spacing_or_type_names_the_config_and_what_exists(
    project, run, spacing, tomo_type, message
):
    config, _ = project
    with pytest.raises(InputError, match=message) as err:
        find_tomogram(config, run, spacing, tomo_type)
    assert str(err.value).startswith(str(config))


def test_bad_config_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        project_runs(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a usable copick config") as err:
        project_runs(bad)
    assert str(bad) in str(err.value)


def test_mask_written_as_segmentation_reads_back_through_copick(project, tmp_path):
    config, volumes = project
    mask = (volumes["TS_001"] > 1).astype(np.uint8)
    mask_path = tmp_path / "mask.mrc"
    write_volume(mask_path, mask, 10.0, placement=Placement(origin=(5.0, 6.0, 7.0)))
    export_mask(config, "TS_001", mask_path, "membrane", "tomoseg", "etsam")
    export_mask(config, "TS_001", mask_path, "membrane", "tomoseg", "etsam")  # a rerun replaces it

    root = copick.from_file(str(config))
    segmentations = root.get_run("TS_001").get_segmentations(name="membrane", user_id="tomoseg")
    assert len(segmentations) == 1
    segmentation = segmentations[0]
    assert (segmentation.session_id, segmentation.voxel_size, segmentation.is_multilabel) == (
        "etsam",
        10.0,
        False,
    )
    np.testing.assert_array_equal(segmentation.numpy(), mask)
    assert read_placement(segmentation.path).origin == pytest.approx((5.0, 6.0, 7.0))
    assert root.get_run("TS_002").get_segmentations() == []


def test_segmentation_needs_a_known_object_an_existing_spacing_and_one_voxel_size(project):
    config, _ = project
    mask = np.ones((8, 24, 20), np.uint8)
    with pytest.raises(InputError, match="cannot add segmentation 'vesicle'"):
        write_segmentation(config, "TS_001", mask, 10.0, "vesicle", "tomoseg", "etsam")
    with pytest.raises(InputError, match="no voxel spacing 5.0 A"):
        write_segmentation(config, "TS_001", mask, 5.0, "membrane", "tomoseg", "etsam")
    with pytest.raises(InputError, match="one voxel size"):
        write_segmentation(config, "TS_001", mask, (10.0, 10.0, 12.0), "membrane", "tomoseg", "etsam")
