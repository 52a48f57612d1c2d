"""copick: a real local-filesystem project made with copick's API is read, and masks written into it read back through copick."""

from __future__ import annotations

import numpy as np
import pytest

copick = pytest.importorskip("copick")

from copick_helpers import new_project  # noqa: E402

from tomoseg.acquisition.copick import (  # noqa: E402
    export_mask,
    find_segmentation,
    find_tomogram,
    import_copick,
    import_copick_truth,
    project_runs,
    read_tomogram,
    write_segmentation,
)
from tomoseg.core.io import (  # noqa: E402
    InputError,
    Placement,
    read_json,
    read_mask,
    read_placement,
    read_volume,
    write_volume,
)


@pytest.fixture
def project(tmp_path):
    """A copick project with two runs, each with a 10 A 'wbp' tomogram (values known per run)."""
    path = new_project(tmp_path, "test project")
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


def test_truth_segmentation_is_imported_and_tomoseg_own_is_never_chosen(project, tmp_path):
    config, volumes = project
    truth = (volumes["TS_001"] > 0.5).astype(np.uint8)
    root = copick.from_file(str(config))
    segmentation = root.get_run("TS_001").new_segmentation(10.0, "membrane", "1", user_id="annotator")
    segmentation.from_numpy(truth)
    # tomoseg's own mask of the same name, written back earlier, must not become the ground truth
    write_segmentation(config, "TS_001", np.ones_like(truth), 10.0, "membrane", "tomoseg-etsam", "0")
    tomogram = tmp_path / "data" / "tomogram.mrc"
    import_copick(config, "TS_001", 10.0, "wbp", tomogram)
    out = tmp_path / "data" / "groundtruth.mrc"
    import_copick_truth(
        config, "TS_001", 10.0, "membrane", out, exclude_user_ids=("tomoseg-etsam",), tomogram=tomogram
    )
    mask, voxel = read_mask(out)
    np.testing.assert_array_equal(mask, truth)
    assert voxel == pytest.approx((10.0,) * 3)
    source = read_json(out.with_name("groundtruth.source.json"))
    assert source["segmentation"] == {"user_id": "annotator", "session_id": "1"}
    # without the exclusion the choice is ambiguous: an error listing both, never a guess
    with pytest.raises(InputError, match="has 2 of segmentation 'membrane'.*set the user and session ids"):
        find_segmentation(config, "TS_001", 10.0, "membrane")
    # a user id named explicitly is taken even when it is one of tomoseg's own
    chosen = find_segmentation(
        config, "TS_001", 10.0, "membrane", "tomoseg-etsam", exclude_user_ids=("tomoseg-etsam",)
    )
    assert chosen.user_id == "tomoseg-etsam"
    with pytest.raises(InputError, match="run 'TS_002' has no segmentation 'membrane'.*has none"):
        find_segmentation(config, "TS_002", 10.0, "membrane")


def test_truth_of_another_shape_is_refused(project, tmp_path):
    config, _ = project
    root = copick.from_file(str(config))
    root.get_run("TS_002").new_segmentation(10.0, "membrane", "1", user_id="annotator").from_numpy(
        np.ones((8, 24, 10), np.uint8)
    )
    tomogram = tmp_path / "tomogram.mrc"
    import_copick(config, "TS_002", 10.0, "wbp", tomogram)
    with pytest.raises(InputError, match=r"has shape \(8, 24, 10\), its tomogram .* \(8, 24, 20\)"):
        import_copick_truth(config, "TS_002", 10.0, "membrane", tmp_path / "gt.mrc", tomogram=tomogram)
    assert not (tmp_path / "gt.mrc").exists()


def test_export_writes_a_record(project, tmp_path):
    config, volumes = project
    mask_path = tmp_path / "mask.mrc"
    write_volume(mask_path, (volumes["TS_002"] > 1).astype(np.uint8), 10.0)
    record = tmp_path / "copick" / "etsam" / "TS_002.json"
    export_mask(config, "TS_002", mask_path, "membrane", "tomoseg-etsam", "0", record=record)
    written = read_json(record)
    assert written["parameters"] == {"name": "membrane", "user_id": "tomoseg-etsam", "session_id": "0"}
    assert written["inputs"]["run"] == "TS_002"


@pytest.mark.parametrize("run", ["../TS_001", "/etc", "TS 001", ".hidden", "TS_001/../../x", "", "a\nb"])
def test_run_names_are_checked_as_names(project, tmp_path, run):
    """Issue 21, item 7: a run name becomes a folder of the project; a path or odd name is refused, naming it."""
    config, _ = project
    with pytest.raises(InputError, match="copick run name .* refused") as err:
        find_tomogram(config, run, 10.0, "wbp")
    assert str(err.value).startswith(str(config))
