"""tomoseg.acquisition.dataverse against a stand-in Dataverse on 127.0.0.1."""

import json

import numpy as np
import pytest
from cdp_standin import mrc_bytes

from tomoseg.acquisition.dataverse import download_dataverse_groundtruth, list_dataset_files
from tomoseg.core.io import InputError, read_volume, write_volume

DOI = "doi:10.7910/DVN/K4JKCW"


@pytest.fixture
def tomogram(tmp_path):
    path = tmp_path / "tomogram.mrc"
    write_volume(path, np.zeros((6, 10, 12), np.float32), 13.48)
    return path


def _get(portal, tmp_path, tomogram, fast, runs=("TS_026", "245")):
    return download_dataverse_groundtruth(
        "10000",
        list(runs),
        tomogram,
        tmp_path / "groundtruth.mrc",
        tmp_path / "groundtruth.source.json",
        base_url=portal.url,
        doi=DOI,
        options=fast,
    )


def test_target_mask_binarized(portal, tmp_path, tomogram, fast):
    mask = np.zeros((6, 10, 12), np.float32)
    mask[2, 3:5, :] = 0.7
    mask[4, :, 7] = 2.0
    portal.add_dataverse_file(
        "10000/TS_025/target_mask", "TS_025.mrc", mrc_bytes(np.ones((6, 10, 12), np.float32), 13.48)
    )
    portal.add_dataverse_file(
        "10000/TS_026/tomogram", "TS_026.mrc", mrc_bytes(np.ones((6, 10, 12), np.float32), 13.48)
    )
    portal.add_dataverse_file("10000/TS_026/target_mask", "TS_026_mask.mrc", mrc_bytes(mask, 13.48))
    record = _get(portal, tmp_path, tomogram, fast)
    out, voxel = read_volume(tmp_path / "groundtruth.mrc")
    np.testing.assert_array_equal(out, (mask > 0).astype(np.uint8))
    assert voxel == pytest.approx((13.48,) * 3, rel=1e-4)
    saved = json.loads((tmp_path / "groundtruth.source.json").read_text())
    assert saved["filename"] == "TS_026_mask.mrc" == record["filename"]
    assert saved["doi"] == DOI and saved["url"].endswith(f"/api/access/datafile/{saved['datafile_id']}")
    assert saved["dataverse_checksum"]["type"] == "MD5"


def test_run_matched_by_id(portal, tmp_path, tomogram, fast):
    portal.add_dataverse_file(
        "10000/245/target_mask", "m.mrc", mrc_bytes(np.ones((6, 10, 12), np.uint8), 13.48)
    )
    assert _get(portal, tmp_path, tomogram, fast)["directory"] == "10000/245/target_mask"


def test_other_format_is_a_clear_error(portal, tmp_path, tomogram, fast):
    portal.add_dataverse_file("10000/TS_026/target_mask", "TS_026_mask.tif", b"II*\x00")
    with pytest.raises(InputError, match=r"expected an MRC file .*TS_026_mask\.tif"):
        _get(portal, tmp_path, tomogram, fast)
    assert not (tmp_path / "groundtruth.mrc").exists()


def test_missing_run_is_a_clear_error(portal, tmp_path, tomogram, fast):
    portal.add_dataverse_file("10000/TS_027/target_mask", "m.mrc", b"x")
    with pytest.raises(InputError, match=r"10000/\{TS_026,245\}/target_mask/: no file there"):
        _get(portal, tmp_path, tomogram, fast)


def test_shape_mismatch_with_tomogram(portal, tmp_path, tomogram, fast):
    portal.add_dataverse_file(
        "10000/TS_026/target_mask", "m.mrc", mrc_bytes(np.ones((6, 10, 11), np.uint8), 13.48)
    )
    with pytest.raises(InputError, match=r"mask shape \(6, 10, 11\) differs from tomogram .* \(6, 10, 12\)"):
        _get(portal, tmp_path, tomogram, fast)
    assert not (tmp_path / "groundtruth.mrc").exists() and not (tmp_path / "groundtruth.source.json").exists()
    assert not list(tmp_path.glob(".groundtruth*"))


def test_html_instead_of_mrc(portal, tmp_path, tomogram, fast):
    portal.add_dataverse_file(
        "10000/TS_026/target_mask", "m.mrc", b"<html><body>error</body></html>" + b" " * 2000
    )
    with pytest.raises(InputError, match=r"ground truth of dataset 10000 .*datafile/\d+ \(m\.mrc\).*HTML"):
        _get(portal, tmp_path, tomogram, fast)


def test_listing_is_paged(portal, fast):
    for k in range(5):
        portal.add_dataverse_file(f"10000/TS_{k}/target_mask", f"{k}.mrc", b"x")
    entries = list_dataset_files(portal.url, DOI, fast, page_size=2)
    assert len(entries) == 5
    assert portal.count("dataverse-list") == 3


def test_progress_bar_shows_bytes(portal, tmp_path, tomogram, fast, capsys):
    from dataclasses import replace

    from tqdm import tqdm

    data = mrc_bytes(np.ones((6, 10, 12), np.uint8), 13.48)
    portal.add_dataverse_file("10000/TS_026/target_mask", "m.mrc", data)
    _get(portal, tmp_path, tomogram, replace(fast, progress=True))
    total = tqdm.format_sizeof(len(data), "", 1024)
    assert f"{total}/{total}" in capsys.readouterr().err
