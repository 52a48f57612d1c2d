"""The portal's OME-Zarr image as a download option, against the stand-in portal serving a real OME-Zarr store."""

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
import zarr
from cdp_standin import add_omezarr, add_run

from tomoseg.acquisition import portal as cdp
from tomoseg.acquisition.rows import download_groundtruth_row, download_tomogram_row
from tomoseg.core.fetch import DownloadError, DownloadOptions
from tomoseg.core.io import InputError, read_placement, read_volume
from tomoseg.core.omezarr import write_ome_zarr

SHAPE = (20, 40, 36)  # chunks of 16: level 0 has 2 x 3 x 3 chunks, level 1 (10, 20, 18) 1 x 2 x 2
VOXEL = 13.48
ORIGIN = (100.0, -20.0, 350.0)  # z, y, x in Angstrom
PREFIX = "10000/TS_026/Tomograms/2450/TS_026.zarr"


@pytest.fixture(scope="module")
def parsed_client():
    """A portal client built once: building one parses the client's schema (~1 s, most of a test's time)."""
    return cdp.portal_client("http://127.0.0.1:9/graphql")


@pytest.fixture(autouse=True)
def one_client(monkeypatch, parsed_client):
    """`portal_client` hands out copies of the parsed client, pointed at the URL asked for."""

    def client(url=None, timeout_s=60.0):
        clone = copy.copy(parsed_client)
        clone.url = url
        return clone

    monkeypatch.setattr(cdp, "portal_client", client)


@pytest.fixture
def served(portal, tmp_path):
    """A run whose tomogram the stand-in serves as MRC and as a multiscale OME-Zarr image (3 levels)."""
    info = add_run(
        portal, 10000, 245, "TS_026", shape=SHAPE, voxel=VOXEL, membrane=[("GO:0016020", "membrane")]
    )
    store = tmp_path / "written" / "TS_026.zarr"
    write_ome_zarr(store, info["volume"], VOXEL, origin=ORIGIN, chunk=16)
    info["zarr_url"] = add_omezarr(portal, info["tomogram"], store, PREFIX)
    info["store"] = store
    return info


def _download(portal, tmp_path, options, target=None, **kwargs):
    out = tmp_path / "data" / "tomogram.mrc"
    src = tmp_path / "data" / "tomogram.source.json"
    record = cdp.download_tomogram(
        10000,
        245,
        out,
        src,
        portal_url=portal.graphql_url,
        options=options,
        file_format="ome-zarr",
        target_voxel_size=target,
        **kwargs,
    )
    return out, src, record


def _chunk_requests(portal, level=None):
    """The chunk files the stand-in was asked for (metadata files start with a dot)."""
    names = [e["detail"].split(" range=")[0] for e in portal.log if e["kind"] == "file"]
    chunks = [n[len(PREFIX) + 1 :] for n in names if n.startswith(PREFIX) and "/." not in n]
    return [c for c in chunks if level is None or c.split("/")[0] == level]


def _nothing_finished(tmp_path):
    data = tmp_path / "data"
    return not any(
        (data / name).exists() for name in ("tomogram.mrc", "tomogram.source.json", "tomogram.zarr")
    )


@pytest.mark.parametrize(("target", "level"), [(None, "0"), (2 * VOXEL, "1"), (30.0, "1")])
def test_download_level_equals_the_written_array(portal, tmp_path, fast, served, target, level):
    out, src, record = _download(portal, tmp_path, fast, target)
    written = zarr.open_group(str(served["store"]), mode="r")[level]
    volume, voxel = read_volume(out)
    np.testing.assert_array_equal(volume, written[...])
    factor = 2 ** int(level)
    assert voxel == pytest.approx((VOXEL * factor,) * 3, rel=1e-5)
    origin = tuple(o + (factor - 1) / 2 * VOXEL for o in ORIGIN)  # the centre of the level's first voxel
    assert read_placement(out).origin == pytest.approx(origin, rel=1e-5)
    saved = json.loads(src.read_text())
    assert saved == json.loads(json.dumps(record))
    assert saved["format"] == "ome-zarr" and saved["zarr_level"] == level and saved["sha256"] is None
    assert saved["url"] == served["zarr_url"] and saved["shape_zyx"] == list(written.shape)
    assert saved["origin"] == pytest.approx(origin) and saved["tomogram_id"] == served["tomogram_id"]
    # only the chosen level's chunks were fetched, each once; no MRC, no store or partial folder left
    assert sorted(_chunk_requests(portal)) == sorted(_chunk_requests(portal, level))
    assert len(_chunk_requests(portal)) == saved["chunks"] == (18 if level == "0" else 4)
    assert portal.count("file", "tomogram_2450.mrc") == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["tomogram.mrc", "tomogram.source.json"]


def test_rows_pass_the_format_and_level_and_truth_needs_level_0(portal, tmp_path, fast, served):
    row = {"tomo": "cdp-10000-245", "source": "cdp", "dataset_id": "10000", "run_id": "245"}
    row |= {"tomogram_id": "", "truth": "cdp"}
    cfg = {
        "portal_url": portal.graphql_url,
        "format": "ome-zarr",
        "timeout_s": 0.5,
        "retries": 2,
        "backoff_s": 0.01,
    }
    data = tmp_path / "data"
    record = download_tomogram_row(row, data / "tomogram.mrc", data / "tomogram.source.json", cfg, 27.0)
    assert record["zarr_level"] == "1"
    args = (data / "tomogram.mrc", data / "tomogram.source.json", data / "gt.mrc", data / "gt.json", cfg)
    with pytest.raises(InputError, match=r"OME-Zarr level 1 .*ground truth is at full resolution"):
        download_groundtruth_row(row, *args)
    assert not (data / "gt.mrc").exists()
    download_tomogram_row(row, data / "tomogram.mrc", data / "tomogram.source.json", cfg, None)
    truth = download_groundtruth_row(row, *args)  # level 0: the portal's membrane mask fits
    assert truth["shape_zyx"] == list(SHAPE)


def test_interrupted_download_resumes_without_refetching_complete_chunks(portal, tmp_path, fast, served):
    chunks = sorted(f"0/{z}/{y}/{x}" for z in range(2) for y in range(3) for x in range(3))
    portal.faults[f"{PREFIX}/{chunks[4]}"] = ["drop"]  # half the chunk's bytes, then the connection closes
    once = DownloadOptions(connect_timeout_s=2.0, read_timeout_s=0.5, retries=0, backoff_s=0.01)
    with pytest.raises(DownloadError, match=rf"{served['zarr_url']}/{chunks[4]}"):
        _download(portal, tmp_path, once)
    assert _nothing_finished(tmp_path)
    partial = tmp_path / "data" / ".tomogram.zarr.part"
    done = sorted(
        p.relative_to(partial).as_posix() for p in (partial / "0").rglob("*") if not p.name.startswith(".")
    )
    assert [c for c in done if c.count("/") == 3] == chunks[:4]
    first = len(portal.log)
    out, _src, record = _download(portal, tmp_path, fast)
    again = [e["detail"] for e in portal.log[first:] if e["kind"] == "file" and "/." not in e["detail"]]
    assert sorted(d.split(" range=")[0][len(PREFIX) + 1 :] for d in again) == chunks[4:]
    volume, _ = read_volume(out)
    np.testing.assert_array_equal(volume, served["volume"])
    assert record["chunks"] == 18 and not partial.exists()


@pytest.mark.parametrize("damage", ["short", "undecodable"])
def test_a_chunk_of_the_wrong_size_is_an_error_naming_it(portal, tmp_path, fast, served, damage):
    from numcodecs import get_codec

    name = f"{PREFIX}/0/1/0/0"
    meta = json.loads((served["store"] / "0" / ".zarray").read_text())
    if damage == "short":  # decodes, but to half a chunk
        half = np.zeros((8, 16, 16), dtype=meta["dtype"])
        portal.files[name] = bytes(get_codec(meta["compressor"]).encode(half))
    else:
        portal.files[name] = portal.files[name][: len(portal.files[name]) // 2]
    with pytest.raises(InputError, match="decode") as err:
        _download(portal, tmp_path, fast)
    assert f"{served['zarr_url']}/0/1/0/0" in str(err.value) and "portal run 245" in str(err.value)
    assert _nothing_finished(tmp_path)
    assert not (tmp_path / "data" / ".tomogram.zarr.part" / "0" / "1" / "0" / "0").exists()


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("sizeX", 37, r"level 0 has shape \(20, 40, 36\) .* \(20, 40, 37\)"),
        ("voxelSpacing", 10.0, r"voxel size .* the portal's tomogram 10.0 A"),
        ("scale1Dimensions", "18,20,11", r"level 1 has shape \(10, 20, 18\) .* scale 1 \(11, 20, 18\)"),
    ],
)
def test_metadata_mismatch_stops_before_any_chunk(portal, tmp_path, fast, served, column, value, message):
    served["tomogram"][column] = value
    with pytest.raises(DownloadError, match=message):
        _download(portal, tmp_path, fast, 2 * VOXEL)
    assert _chunk_requests(portal) == [] and _nothing_finished(tmp_path)


def test_tomogram_without_omezarr_is_an_error(portal, tmp_path, fast):
    add_run(portal, 10000, 245, "TS_026")
    with pytest.raises(InputError, match="no tomogram with an OME-Zarr image"):
        _download(portal, tmp_path, fast)


def test_a_partial_download_of_changed_metadata_starts_again(portal, tmp_path, fast, served):
    portal.faults[f"{PREFIX}/0/0/1/0"] = ["404"]
    with pytest.raises(DownloadError, match="HTTP 404"):
        _download(portal, tmp_path, fast)
    assert len(_chunk_requests(portal)) == 4  # three complete chunks kept, the fourth missing
    attrs = json.loads(portal.files[f"{PREFIX}/.zattrs"])
    attrs["multiscales"][0]["name"] = "reprocessed"
    portal.files[f"{PREFIX}/.zattrs"] = json.dumps(attrs).encode()
    first = len(portal.log)
    _out, _src, record = _download(portal, tmp_path, fast)
    assert len(_chunk_requests(SimpleNamespace(log=portal.log[first:]))) == record["chunks"] == 18


# Issue 21, item 1: a hostile server's metadata is data, never a path. Each case was reproduced on 41766b8
# (a file or folder outside the download folder, or a path built from the value) and is refused now.
def _escaped(tmp_path):
    """Whatever a hostile value could have made outside the download folder (tmp_path/data)."""
    return [p for p in tmp_path.rglob("*") if "escaped" in p.name]


@pytest.mark.parametrize(
    ("dataset", "key"),
    [
        ("../../escaped", "datasets[0].path"),
        ("0/../../../escaped", "datasets[0].path"),
        ("ABSOLUTE", "datasets[0].path"),  # tmp_path/escaped-absolute, as an absolute path
        ("0\\..\\escaped", "datasets[0].path"),
        ("", "datasets[0].path"),
    ],
)
def test_hostile_dataset_paths_are_refused_naming_url_and_key(portal, tmp_path, fast, served, dataset, key):
    if dataset == "ABSOLUTE":
        dataset = str(tmp_path / "escaped-absolute")
    attrs = json.loads(portal.files[f"{PREFIX}/.zattrs"])
    attrs["multiscales"][0]["datasets"][0]["path"] = dataset
    portal.files[f"{PREFIX}/.zattrs"] = json.dumps(attrs).encode()
    zarray = portal.files[f"{PREFIX}/0/.zarray"]
    for name in ("10000/TS_026/Tomograms/escaped/.zarray", f"{PREFIX}/{dataset}/.zarray"):
        portal.files[name] = zarray  # served where a client that follows the value would ask
    with pytest.raises(DownloadError) as err:
        _download(portal, tmp_path, fast)
    message = str(err.value)
    assert served["zarr_url"] in message and key in message and "\n" not in message
    assert _escaped(tmp_path) == []
    assert _chunk_requests(portal) == [] and _nothing_finished(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dimension_separator", "/../../escaped/", "dimension_separator"),
        ("dimension_separator", "\\", "dimension_separator"),
        ("shape", [2**40, 2**40, 36], "declares a volume"),
        ("chunks", [0, 16, 16], "positive integer"),
        ("dtype", "|O", "not a numeric type"),
        ("compressor", "zlib", "codecs must be objects"),
    ],
)
def test_hostile_zarray_values_are_refused_before_any_chunk(
    portal, tmp_path, fast, served, field, value, message
):
    meta = json.loads(portal.files[f"{PREFIX}/0/.zarray"])
    meta[field] = value
    portal.files[f"{PREFIX}/0/.zarray"] = json.dumps(meta).encode()
    with pytest.raises(DownloadError, match=message) as err:
        _download(portal, tmp_path, fast)
    assert f"{served['zarr_url']}: 0/.zarray" in str(err.value)
    assert _escaped(tmp_path) == [] and _chunk_requests(portal) == [] and _nothing_finished(tmp_path)


@pytest.mark.parametrize("codec", ["zlib", "gzip", "bz2", "blosc"])
def test_a_chunk_that_inflates_past_a_chunk_is_refused_without_inflating_it(
    portal, tmp_path, fast, served, codec
):
    """Item 5: 48 MiB of zeros compress to a few KiB; decoding stops at one chunk's size (16 KiB here)."""
    import tracemalloc

    from numcodecs import get_codec

    config = (
        {"id": codec} if codec != "blosc" else {"id": "blosc", "cname": "zstd", "clevel": 9, "shuffle": 0}
    )
    meta = json.loads(portal.files[f"{PREFIX}/0/.zarray"])
    meta["compressor"] = config
    portal.files[f"{PREFIX}/0/.zarray"] = json.dumps(meta).encode()
    bomb = bytes(get_codec(config).encode(np.zeros(48 * 2**20, np.uint8)))
    assert len(bomb) < 2**20
    for z in range(2):
        for y in range(3):
            for x in range(3):
                portal.files[f"{PREFIX}/0/{z}/{y}/{x}"] = bomb
    tracemalloc.start()
    try:
        with pytest.raises(DownloadError, match="more than a chunk") as err:
            _download(portal, tmp_path, fast)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"{served['zarr_url']}/0/0/0/0" in str(err.value)
    assert peak < 16 * 2**20, f"decoding a hostile chunk allocated {peak / 2**20:.0f} MiB"
    assert _nothing_finished(tmp_path)


def test_one_progress_bar_counts_every_file_of_the_image(portal, tmp_path, fast, served, capsys):
    """OME-Zarr: one bar for the metadata and all chunks, in bytes with the rate (not a bar per chunk)."""
    from dataclasses import replace

    from tqdm import tqdm

    _download(portal, tmp_path, replace(fast, progress=True))
    err = capsys.readouterr().err
    sizes = [len(portal.files[e["detail"].split(" range=")[0]]) for e in portal.log if e["kind"] == "file"]
    last = err.replace("\r", "\n").strip().splitlines()[-1]  # each request of this clean run got a whole file
    assert "B/s" in last and tqdm.format_sizeof(sum(sizes), "", 1024) in last
    assert err.count("\n") <= 2  # one bar (redrawn with \r), not one per chunk
