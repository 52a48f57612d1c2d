"""`tomoseg fetch-weights`: offline it fails at once saying where to put the files; present files are kept."""

import hashlib
import json
import time

import pytest

from tomoseg.core.io import InputError
from tomoseg.etsam.weights import WEIGHT_FILES, fetch_weights


def test_offline_fails_fast_with_instructions(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(InputError) as err:
        fetch_weights(tmp_path, base="http://127.0.0.1:9")  # nothing listens on the discard port
    assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert (
        "etsam_stage1_v1.pt" in msg and "https://zenodo.org/records/17571925" in msg and str(tmp_path) in msg
    )
    assert not any(p.name.endswith(".pt") for p in tmp_path.iterdir())


def test_present_files_are_not_downloaded_and_checksums_recorded(tmp_path):
    for name in WEIGHT_FILES:
        (tmp_path / name).write_bytes(name.encode())
    sums = fetch_weights(tmp_path, base="http://127.0.0.1:9")
    assert sums == {n: hashlib.sha256(n.encode()).hexdigest() for n in WEIGHT_FILES}
    assert json.loads((tmp_path / "weights.json").read_text())["sha256"] == sums


def _zenodo(portal):
    """The stand-in serves both checkpoints at Zenodo's file addresses; returns (base URL, payloads)."""
    payload = {name: bytes(range(256)) * 2048 + name.encode() for name in WEIGHT_FILES}
    for name, data in payload.items():
        portal.add_file(name, data)
    return portal.url, payload


def _requests(portal):
    return [e["detail"] for e in portal.log if e["kind"] == "file"]


def test_a_cut_download_resumes_with_range_and_is_recorded(portal, tmp_path):
    """The connection drops half-way through the first file: the same call continues it from there."""
    base, payload = _zenodo(portal)
    first = WEIGHT_FILES[0]
    portal.faults[first] = ["drop"]
    sums = fetch_weights(tmp_path, base=base, progress=False)
    first_requests = [r for r in _requests(portal) if r.startswith(first)]
    assert len(first_requests) == 2 and first_requests[0].endswith("range=None")
    resumed_at = int(first_requests[1].rsplit("range=bytes=", 1)[1].rstrip("-"))
    assert 0 < resumed_at <= len(payload[first]) // 2
    for name in WEIGHT_FILES:
        assert (tmp_path / name).read_bytes() == payload[name]
        assert sums[name] == hashlib.sha256(payload[name]).hexdigest()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial files left


def test_a_partial_file_from_an_interrupted_run_is_continued(portal, tmp_path):
    """Every attempt cut: the call fails saying what to do; the next call resumes the bytes already there."""
    base, payload = _zenodo(portal)
    first = WEIGHT_FILES[0]
    portal.faults[first] = ["drop"] * 3  # all attempts of the first call (retries=2)
    with pytest.raises(InputError, match="cannot download"):
        fetch_weights(tmp_path, base=base, progress=False)
    assert not (tmp_path / first).exists()
    fetch_weights(tmp_path, base=base, progress=False)
    assert (tmp_path / first).read_bytes() == payload[first]
    starts = [r.rsplit("range=", 1)[1] for r in _requests(portal) if r.startswith(first)]
    assert starts[0] == "None" and all(s.startswith("bytes=") for s in starts[1:])  # never from scratch again


def test_sha256_differing_from_the_recorded_one_is_an_error_and_nothing_is_kept(portal, tmp_path):
    base, payload = _zenodo(portal)
    first = WEIGHT_FILES[0]
    (tmp_path / "weights.json").write_text(json.dumps({"sha256": {first: "0" * 64}}))
    with pytest.raises(InputError) as err:
        fetch_weights(tmp_path, base=base, progress=False)
    assert (
        "sha256" in str(err.value) and "0" * 64 in str(err.value) and str(tmp_path / first) in str(err.value)
    )
    assert not (tmp_path / first).exists() and not list(tmp_path.glob(".*.part"))


def test_size_differing_from_the_expected_one_is_an_error(portal, tmp_path):
    base, payload = _zenodo(portal)
    first = WEIGHT_FILES[0]
    with pytest.raises(InputError, match="size mismatch"):
        fetch_weights(tmp_path, base=base, progress=False, expected={first: (len(payload[first]) - 1, None)})
    assert not (tmp_path / first).exists()


def test_progress_bar_shows_bytes(portal, tmp_path, capsys):
    from tqdm import tqdm

    base, payload = _zenodo(portal)
    fetch_weights(tmp_path, base=base, progress=True)
    err = capsys.readouterr().err
    for name in WEIGHT_FILES:
        total = tqdm.format_sizeof(len(payload[name]), "", 1024)
        assert f"{name}: 100%" in err and f"{total}/{total}" in err
