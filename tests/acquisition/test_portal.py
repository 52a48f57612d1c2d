"""tomoseg.acquisition.portal against a stand-in portal on 127.0.0.1 running the real cryoet-data-portal client."""

import hashlib
import json

import numpy as np
import pytest
from cdp_standin import add_run, mrc_bytes

from tomoseg.acquisition import portal as cdp
from tomoseg.core.fetch import DownloadError, partial_path
from tomoseg.core.io import InputError, read_volume


def _download(portal, tmp_path, fast, dataset=10000, run=245, pin=None):
    out = tmp_path / "data" / "tomogram.mrc"
    src = tmp_path / "data" / "tomogram.source.json"
    record = cdp.download_tomogram(
        dataset, run, out, src, pin=pin, portal_url=portal.graphql_url, options=fast
    )
    return out, src, record


def _nothing_finished(tmp_path):
    data = tmp_path / "data"
    return (
        not (data / "tomogram.mrc").exists()
        and not (data / "tomogram.source.json").exists()
        and not (partial_path(data / "tomogram.mrc").exists())
    )


def test_membrane_terms_list_is_curated():
    terms = cdp.load_membrane_terms()
    assert terms["GO:0016020"] == "membrane"
    assert terms["GO:0005886"] == "plasma membrane"
    assert "GO:0031974" not in terms  # membrane-enclosed lumen is not a membrane


def test_normal_run(portal, tmp_path, fast):
    info = add_run(portal, 10000, 245, "TS_026", membrane=[("GO:0016020", "membrane")])
    out, src, record = _download(portal, tmp_path, fast)
    assert out.read_bytes() == info["bytes"]
    volume, voxel = read_volume(out)
    np.testing.assert_array_equal(volume, info["volume"])
    assert voxel == pytest.approx((13.48,) * 3, rel=1e-4)
    saved = json.loads(src.read_text())
    assert saved["tomogram_id"] == info["tomogram_id"] == record["tomogram_id"]
    assert saved["sha256"] == hashlib.sha256(info["bytes"]).hexdigest()
    assert saved["size"] == len(info["bytes"])
    assert saved["url"] == info["url"] and saved["run_name"] == "TS_026"
    assert saved["membrane_annotation_ids"] == [1]
    assert not partial_path(out).exists()


def test_several_tomograms_and_spacings_picks_the_annotated_grid(portal, tmp_path, fast):
    info = add_run(portal, 10000, 245, "TS_026")  # spacing 1: the visualization default, no annotation
    portal.tables["Tomogram"][0]["isVisualizationDefault"] = True
    spacing2 = portal.add("TomogramVoxelSpacing", runId=245, voxelSpacing=6.74)
    align2 = portal.add("Alignment", runId=245)
    data = mrc_bytes(np.zeros((16, 32, 32), np.float32), 6.74)
    for tomo_id, align in ((2460, align2["id"]), (2455, align2["id"]), (2450 + 1, info["alignment_id"])):
        portal.add(
            "Tomogram",
            id=tomo_id,
            runId=245,
            tomogramVoxelSpacingId=spacing2["id"],
            alignmentId=align,
            voxelSpacing=6.74,
            sizeX=32,
            sizeY=32,
            sizeZ=16,
            fileSizeMrc=float(len(data)),
            httpsMrcFile=portal.add_file(f"t{tomo_id}.mrc", data),
            isPortalStandard=False,
        )
    ann = portal.add("Annotation", runId=245, objectId="GO:0016020", objectName="membrane")
    shape = portal.add("AnnotationShape", annotationId=ann["id"], shapeType="SegmentationMask")
    portal.add(
        "AnnotationFile",
        annotationShapeId=shape["id"],
        format="mrc",
        httpsPath="x",
        fileSize=1.0,
        tomogramVoxelSpacingId=spacing2["id"],
        alignmentId=align2["id"],
    )
    _out, _src, record = _download(portal, tmp_path, fast)
    # same spacing + alignment as the annotation, none is default/standard: the lowest id of those
    assert record["tomogram_id"] == 2455
    assert record["voxel_spacing"] == pytest.approx(6.74)


def test_selection_rule_without_annotation():
    base = {"tomogram_voxel_spacing_id": 1, "alignment_id": 1, "https_mrc_file": "u"}
    tomos = [dict(base, id=9), dict(base, id=7), dict(base, id=8, is_portal_standard=True)]
    assert cdp.select_tomogram(tomos, [])[0]["id"] == 8
    tomos.append(dict(base, id=11, is_visualization_default=True))
    assert cdp.select_tomogram(tomos, [])[0]["id"] == 11
    assert cdp.select_tomogram([dict(base, id=9), dict(base, id=7)], [])[0]["id"] == 7
    assert cdp.select_tomogram(tomos, [], pin=9)[0]["id"] == 9
    with pytest.raises(InputError, match="pinned tomogram_id 4"):
        cdp.select_tomogram(tomos, [], pin=4)


def test_pin_is_honoured(portal, tmp_path, fast):
    add_run(portal, 10000, 245, "TS_026", membrane=[("GO:0016020", "membrane")])
    data = mrc_bytes(np.ones((8, 16, 16), np.float32), 13.48)
    portal.add(
        "Tomogram",
        id=9999,
        runId=245,
        tomogramVoxelSpacingId=1,
        alignmentId=1,
        voxelSpacing=13.48,
        sizeX=16,
        sizeY=16,
        sizeZ=8,
        fileSizeMrc=float(len(data)),
        httpsMrcFile=portal.add_file("p.mrc", data),
    )
    out, _src, record = _download(portal, tmp_path, fast, pin=9999)
    assert record["tomogram_id"] == 9999 and record["pinned"] is True
    assert out.read_bytes() == data


def test_plasma_membrane_union_and_decoy_ignored(portal, tmp_path, fast):
    info = add_run(
        portal,
        10438,
        15936,
        "TS_1",
        membrane=[
            ("GO:0005886", "plasma membrane"),
            ("GO:0031974", "membrane-enclosed lumen"),
            ("GO:0016020", "membrane"),
        ],
    )
    out, src, record = _download(portal, tmp_path, fast, dataset=10438, run=15936)
    gt = tmp_path / "data" / "groundtruth.mrc"
    gt_record = cdp.download_portal_groundtruth(
        src, gt, tmp_path / "data" / "groundtruth.source.json", options=fast
    )
    picked = {c["object_id"] for c in gt_record["components"]}
    assert picked == {"GO:0005886", "GO:0016020"}
    mask, _ = read_volume(gt)
    expected = (info["masks"]["GO:0005886"] | info["masks"]["GO:0016020"]).astype(np.uint8)
    np.testing.assert_array_equal(mask, expected)
    assert set(np.unique(mask).tolist()) == {0, 1}
    assert not np.array_equal(mask, info["masks"]["GO:0031974"] | expected)
    assert gt_record["kind"] == "cdp_membrane_union"


def test_decoy_named_membrane_is_not_a_membrane(portal, tmp_path, fast):
    # Only a "membrane-enclosed lumen" annotation, even when its free-text name says "membrane".
    add_run(portal, 10001, 258, "TS_3", membrane=[("GO:0031974", "membrane")])
    _out, src, record = _download(portal, tmp_path, fast, dataset=10001, run=258)
    assert record["membrane_annotation_ids"] == []
    with pytest.raises(InputError, match="no membrane SegmentationMask"):
        cdp.download_portal_groundtruth(src, tmp_path / "gt.mrc", tmp_path / "gt.json", options=fast)
    assert not (tmp_path / "gt.mrc").exists()


def test_404_is_an_error_not_an_mrc(portal, tmp_path, fast):
    info = add_run(portal, 10000, 245, "TS_026")
    portal.faults[info["url"].split("/files/")[1]] = ["404"]
    with pytest.raises(DownloadError, match=r"portal run 245 .*HTTP 404") as err:
        _download(portal, tmp_path, fast)
    assert info["url"] in str(err.value)
    assert _nothing_finished(tmp_path)


def test_html_with_status_200_is_an_error(portal, tmp_path, fast):
    info = add_run(portal, 10000, 245, "TS_026")
    portal.files[info["url"].split("/files/")[1]] = b"<html>" + b" " * (len(info["bytes"]) - 6)
    with pytest.raises(DownloadError, match="HTML") as err:
        _download(portal, tmp_path, fast)
    assert "portal run 245" in str(err.value) and info["url"] in str(err.value)
    assert _nothing_finished(tmp_path)


def test_truncated_file_is_an_error(portal, tmp_path, fast):
    info = add_run(portal, 10000, 245, "TS_026")
    name = info["url"].split("/files/")[1]
    portal.files[name] = info["bytes"][: len(info["bytes"]) // 2]
    with pytest.raises(DownloadError, match="truncated") as err:
        _download(portal, tmp_path, fast)
    assert "portal run 245" in str(err.value) and info["url"] in str(err.value)
    assert not (tmp_path / "data" / "tomogram.mrc").exists()
    assert not (tmp_path / "data" / "tomogram.source.json").exists()


def test_dropped_connection_resumes_with_range(portal, tmp_path, fast):
    info = add_run(portal, 10000, 245, "TS_026", shape=(32, 64, 64))
    name = info["url"].split("/files/")[1]
    portal.faults[name] = ["drop"]  # sends half the bytes, then closes the connection
    out, _src, _record = _download(portal, tmp_path, fast)
    assert out.read_bytes() == info["bytes"]
    ranges = [e["detail"] for e in portal.log if e["kind"] == "file"]
    assert len(ranges) == 2 and ranges[0].endswith("range=None")
    resumed_at = int(ranges[1].rsplit("range=bytes=", 1)[1].rstrip("-"))
    assert 0 < resumed_at <= len(info["bytes"]) // 2


def test_stalling_server_times_out_then_retries(portal, tmp_path, fast):
    info = add_run(portal, 10000, 245, "TS_026")
    portal.stall_s = 2.0  # longer than the 0.5 s read timeout
    portal.faults[info["url"].split("/files/")[1]] = ["stall"]
    out, _src, _record = _download(portal, tmp_path, fast)
    assert out.read_bytes() == info["bytes"]
    assert portal.count("file") == 2


def test_shape_mismatch_with_portal_metadata(portal, tmp_path, fast):
    add_run(portal, 10000, 245, "TS_026")
    portal.tables["Tomogram"][0]["sizeX"] = 17
    with pytest.raises(DownloadError, match=r"shape \(8, 16, 16\).*\(8, 16, 17\)"):
        _download(portal, tmp_path, fast)
    assert _nothing_finished(tmp_path)


def test_wrong_dataset_in_sheet(portal, tmp_path, fast):
    add_run(portal, 10000, 245, "TS_026")
    with pytest.raises(InputError, match="belongs to dataset 10000"):
        _download(portal, tmp_path, fast, dataset=10001)


def test_progress_bar_shows_bytes_and_rate_on_stderr(portal, tmp_path, fast, capsys):
    """Forced on (as on a terminal), the bar names the item and shows the bytes so far, the total and the rate."""
    from dataclasses import replace

    from tqdm import tqdm

    info = add_run(portal, 10000, 245, "TS_026", shape=(32, 64, 64))
    _download(portal, tmp_path, replace(fast, progress=True))
    err = capsys.readouterr().err
    total = tqdm.format_sizeof(len(info["bytes"]), "", 1024)
    assert "portal run 245" in err and f"{total}/{total}" in err and "B/s" in err


def test_no_progress_bar_when_stderr_is_not_a_terminal(portal, tmp_path, fast, capsys):
    add_run(portal, 10000, 245, "TS_026")
    _download(portal, tmp_path, fast)  # progress=None: only on a terminal; capsys's stderr is not one
    assert "B/s" not in capsys.readouterr().err
