"""Fuzzing what a data file or a server says beyond MRC (issue 21): OME-Zarr metadata (`.zattrs`, `.zarray`)
of a local store read by the commands, and shard records read while planning and by the status step.

OME-Zarr: every case ends in success or the one-line error (exit 2), never a traceback or another
status, and nothing appears outside the case's folder (no value may become a path out of the store).
Shard records: any bytes read as "not done" with a warning or as the record they are; never an exception.
Derandomized like `test_fuzz_mrc.py`; TOMOSEG_FUZZ_EXAMPLES runs more.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_mrc import _run_command

pytest.importorskip("ome_zarr")

log = logging.getLogger(__name__)

EXAMPLES = int(os.environ.get("TOMOSEG_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("TOMOSEG_FUZZ_RANDOM") != "1",
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)

# Values a hostile or broken writer puts where the metadata expects a path, a number, a list or a name.
HOSTILE_TEXT = st.sampled_from(
    ["0", "1", "", ".", "..", "../escaped", "../../escaped", "/tmp/tomoseg-fuzz-escaped-abs", "0/../../escaped", "0\\..\\x",
     "~", "%2e%2e", "\x00", "a" * 300, "/", ".", "-", "s0", "0/0"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**30, 0.5, -0.0, float("nan"), float("inf")]),
    HOSTILE_TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=3),
    max_leaves=8,
)
ATTRS_PATHS = [
    ("multiscales",), ("multiscales", 0), ("multiscales", 0, "axes"), ("multiscales", 0, "axes", 0),
    ("multiscales", 0, "axes", 0, "unit"), ("multiscales", 0, "datasets"), ("multiscales", 0, "datasets", 0),
    ("multiscales", 0, "datasets", 0, "path"), ("multiscales", 0, "datasets", 0, "coordinateTransformations"),
    ("multiscales", 0, "datasets", 0, "coordinateTransformations", 0, "scale"),
    ("multiscales", 0, "datasets", 0, "coordinateTransformations", 0, "scale", 0),
    ("multiscales", 0, "datasets", 0, "coordinateTransformations", 1, "translation"),
    ("multiscales", 0, "version"),
]  # fmt: skip
ZARRAY_KEYS = ["shape", "chunks", "dtype", "compressor", "filters", "fill_value", "order", "zarr_format",
               "dimension_separator"]  # fmt: skip
ZARRAY_VALUES = st.one_of(
    VALUES,
    st.lists(st.sampled_from([0, 1, 4, 5, 6, -3, 2**40, 2**62]), min_size=0, max_size=4),
    st.sampled_from(
        ["<f4", "|u1", "<f8", "|O", "<U8", "V8", ">i2", "<c8", "garbage", "/", ".", "\\", "/../"]
    ),
    st.sampled_from([{"id": "zlib"}, {"id": "blosc"}, {"id": "nonexistent"}, {"id": 7}, [{"id": "zlib"}]]),
)
EDIT = st.one_of(
    st.tuples(st.just(".zattrs"), st.sampled_from(ATTRS_PATHS), VALUES),
    st.tuples(st.just(".zarray"), st.sampled_from(ZARRAY_KEYS).map(lambda k: (k,)), ZARRAY_VALUES),
    st.tuples(
        st.sampled_from([".zattrs", ".zarray"]), st.just(()), st.sampled_from(["", "{", "[]", "null", "\xff"])
    ),
)


@functools.lru_cache(maxsize=1)
def _store_files() -> dict[str, bytes]:
    """A valid one-level OME-Zarr store (4 x 5 x 6 float32), as file name -> bytes."""
    from tomoseg.core.omezarr import write_ome_zarr

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "tomo.zarr"
        write_ome_zarr(
            store, np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32), 10.0, levels=1
        )
        return {p.relative_to(store).as_posix(): p.read_bytes() for p in store.rglob("*") if p.is_file()}


def _set(tree, path, value):
    """tree with the value at `path` replaced (lists and dicts made where the path needs them); the root for ()."""
    if not path:
        return value
    node = tree
    for key in path[:-1]:
        if isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        elif isinstance(node, dict) and not isinstance(key, int):
            node = node.setdefault(key, {})
        else:
            return tree
    last = path[-1]
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
    elif isinstance(node, dict) and not isinstance(last, int):
        node[last] = value
    return tree


def _edited(files: dict[str, bytes], edits) -> dict[str, bytes]:
    out = dict(files)
    for name, path, value in edits:
        key = ".zattrs" if name == ".zattrs" else "0/.zarray"
        if path == () and isinstance(value, str):
            out[key] = value.encode("utf-8", "surrogatepass")
            continue
        try:
            tree = json.loads(out[key])
        except ValueError:
            continue
        out[key] = json.dumps(_set(tree, path, value)).encode()
    return out


@pytest.fixture(scope="module")
def outcomes():
    counts: Counter = Counter()
    yield counts
    log.warning("metadata fuzzing: %d command runs: %s", sum(counts.values()), dict(counts))


@FUZZ
@given(edits=st.lists(EDIT, min_size=1, max_size=3), command=st.sampled_from(["normalize", "evaluate"]))
def test_commands_survive_fuzzed_ome_zarr_metadata(capsys, outcomes, edits, command):
    with tempfile.TemporaryDirectory() as tmp:
        case = Path(tmp) / "case"
        store, out = case / "tomo.zarr", case / "out"
        for name, data in _edited(_store_files(), edits).items():
            (store / name).parent.mkdir(parents=True, exist_ok=True)
            (store / name).write_bytes(data)
        out.mkdir()
        before = sorted(p.relative_to(tmp).as_posix() for p in Path(tmp).rglob("*"))
        if command == "normalize":
            args, output = ["normalize", store, "--out", out / "n.mrc"], out / "n.mrc"
        else:
            args, output = (
                ["evaluate", "--pred", store, "--truth", store, "--json", out / "e.json"],
                out / "e.json",
            )
        _run_command(capsys, args, output, outcomes)
        after = sorted(p.relative_to(tmp).as_posix() for p in Path(tmp).rglob("*"))
        new = [p for p in after if p not in before and not p.startswith("case/out/")]
        assert new == [], f"files outside the outputs: {new}"
        assert not Path("/tmp/tomoseg-fuzz-escaped-abs").exists()


SHARD_RECORD = st.one_of(
    st.binary(max_size=200),
    VALUES.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"runs": st.dictionaries(HOSTILE_TEXT, VALUES, max_size=3)},
        optional={"failed": VALUES, "blocked": VALUES},
    ).map(lambda v: json.dumps(v).encode()),
    st.integers(0, 200).map(
        lambda n: json.dumps({"runs": {"a": {"status": "ok", "steps": {}}}, "failed": []})[:n].encode()
    ),
)


@FUZZ
@given(record=SHARD_RECORD)
def test_shard_records_of_any_content_are_read_or_not_done(record):
    from tomoseg.batch.shards import write_status
    from tomoseg.core.layout import read_shard_record, shard_failures, shard_retry_token

    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "results" / "shards" / "data" / "s00000.json"
        marker.parent.mkdir(parents=True)
        marker.write_bytes(record)
        content = read_shard_record(marker)
        assert content is None or isinstance(content.get("runs"), dict)
        assert all(isinstance(t, str) for t in shard_failures(marker))
        token = shard_retry_token(marker, {"a": [{"output": {"x": str(Path(tmp) / "x")}}]})
        assert token != ""  # unreadable, failures, or the missing output: the shard runs again
        try:
            rows = write_status([marker], Path(tmp) / "status.tsv", allow_failures=True)
        except RuntimeError:  # pragma: no cover - allow_failures never raises
            raise
        if content is None:
            assert [r["status"] for r in rows] == ["not done"]
