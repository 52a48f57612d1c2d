"""`tomoseg pin-runs` and pinned downloads; the Dataverse row path used by the download_groundtruth rule."""

import csv

import numpy as np
import pytest
from cdp_standin import add_run, mrc_bytes

from tomoseg.acquisition.rows import download_groundtruth_row, download_tomogram_row, pin_runs, pins_path
from tomoseg.core.fetch import DownloadError
from tomoseg.core.io import read_volume

HEADER = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"


def _cfg(portal, **extra):
    return {
        "portal_url": portal.graphql_url,
        "dataverse_url": portal.url,
        "dataverse_doi": "doi:10.7910/DVN/K4JKCW",
        "timeout_s": 0.5,
        "retries": 1,
        "backoff_s": 0.01,
        **extra,
    }


def _rows(path):
    with open(path) as handle:
        return list(csv.DictReader((ln for ln in handle if not ln.startswith("#")), delimiter="\t"))


def test_pin_runs_writes_ids_and_checksums(portal, tmp_path):
    a = add_run(portal, 10000, 245, "TS_026", membrane=[("GO:0016020", "membrane")])
    b = add_run(portal, 10001, 258, "TS_3")
    runs = tmp_path / "runs.tsv"
    runs.write_text(
        "# the paper's runs\n" + HEADER + "cdp-a\tcdp\t10000\t245\t\t\t\tcdp\ttest\n"
        "cdp-b\tcdp\t10001\t258\t\t\t\tnone\ttest\nph\tphantom\t\t3\t\t\t\tphantom\ttest\n"
    )
    results = tmp_path / "results"
    row_a = _rows(runs)[0]
    download_tomogram_row(
        row_a, results / "data/cdp-a/tomogram.mrc", results / "data/cdp-a/tomogram.source.json", _cfg(portal)
    )
    assert pin_runs(runs, results, portal.graphql_url, query_portal=True) == 0
    rows = _rows(runs)
    assert runs.read_text().startswith("# the paper's runs\n")
    assert [r["tomogram_id"] for r in rows] == [str(a["tomogram_id"]), str(b["tomogram_id"]), ""]
    pins = {r["tomo"]: r for r in _rows(pins_path(runs))}
    assert pins_path(runs).name == "runs.pins.tsv"
    import hashlib

    assert pins["cdp-a"]["sha256"] == hashlib.sha256(a["bytes"]).hexdigest()
    assert pins["cdp-b"]["sha256"] == "" and pins["cdp-b"]["url"] == b["url"]

    # A pinned row later fetches the same file, or fails when its bytes changed.
    row_a = _rows(runs)[0]
    cfg = _cfg(portal, pins=str(pins_path(runs)))
    download_tomogram_row(
        row_a, tmp_path / "again/tomogram.mrc", tmp_path / "again/tomogram.source.json", cfg
    )
    assert (tmp_path / "again/tomogram.mrc").read_bytes() == a["bytes"]
    changed = mrc_bytes(np.ones((8, 16, 16), np.float32), 13.48)
    portal.files[a["url"].split("/files/")[1]] = changed
    portal.tables["Tomogram"][0]["fileSizeMrc"] = float(len(changed))
    with pytest.raises(DownloadError, match="differs from the pinned"):
        download_tomogram_row(
            row_a, tmp_path / "third/tomogram.mrc", tmp_path / "third/tomogram.source.json", cfg
        )
    assert not (tmp_path / "third/tomogram.mrc").exists()


def test_dataverse_row_uses_the_run_name_from_the_tomogram_record(portal, tmp_path):
    info = add_run(portal, 10000, 245, "TS_026")
    mask = (info["volume"] > 1).astype(np.float32)
    portal.add_dataverse_file("10000/TS_026/target_mask", "TS_026.mrc", mrc_bytes(mask, 13.48))
    row = {
        "tomo": "cdp-10000-245",
        "source": "cdp",
        "dataset_id": "10000",
        "run_id": "245",
        "tomogram_id": "",
        "truth": "dataverse",
    }
    data = tmp_path / "data"
    download_tomogram_row(row, data / "tomogram.mrc", data / "tomogram.source.json", _cfg(portal))
    record = download_groundtruth_row(
        row,
        data / "tomogram.mrc",
        data / "tomogram.source.json",
        data / "groundtruth.mrc",
        data / "groundtruth.source.json",
        _cfg(portal),
    )
    assert record["directory"] == "10000/TS_026/target_mask"
    truth, _ = read_volume(data / "groundtruth.mrc")
    np.testing.assert_array_equal(truth, mask.astype(np.uint8))
