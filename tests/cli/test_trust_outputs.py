"""Issue 21, items 3, 5 and 6: outputs replace only regular files and never their own inputs; sizes are
checked before memory is spent; the remaining raw tracebacks are one line with exit status 2.

Every case here was reproduced on 41766b8 (the output replaced, the input destroyed, a MemoryError or a
traceback) and is refused now, before any work, with one `tomoseg <command>: error:` line."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
from pathlib import Path

import mrcfile
import numpy as np
import pytest

import tomoseg.cli as cli
from tomoseg.core.io import write_volume

SHAPE = (6, 20, 24)


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tomoseg ")]
    if code != 0:
        assert len(lines) == 1 and "Traceback" not in err, err
    return code, err


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    tomo = rng.normal(size=SHAPE).astype(np.float32)
    mask = (tomo > 0.5).astype(np.uint8)
    write_volume(tmp_path / "tomo.mrc", tomo, 10.0)
    write_volume(tmp_path / "logits.mrc", tomo, 10.0)
    write_volume(tmp_path / "mask.mrc", mask, 10.0)
    write_volume(tmp_path / "truth.mrc", np.roll(mask, 1, axis=2), 10.0)
    return tmp_path


def _commands(d, out):
    """Each command that writes one file, with `out` as that file."""
    return {
        "normalize": ["normalize", d / "tomo.mrc", "--out", out],
        "postprocess": ["postprocess", d / "mask.mrc", "--out", out, "--min-slices", "2"],
        "threshold": ["threshold", d / "logits.mrc", "--threshold", "0", "--out", out],
        "evaluate": ["evaluate", "--pred", d / "mask.mrc", "--truth", d / "truth.mrc", "--json", out],
    }


COMMANDS = ["normalize", "postprocess", "threshold", "evaluate"]


def _fifo(path):
    os.mkfifo(path)


def _socket(path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return server


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["fifo", "socket", "link-to-fifo"])
def test_an_output_that_is_not_a_regular_file_is_refused_before_any_work(capsys, files, command, kind):
    special = files / "s"  # short: a socket's path must fit in 108 bytes
    keep = _socket(special) if kind == "socket" else _fifo(special)
    out = special
    if kind == "link-to-fifo":
        out = files / "out-link"
        out.symlink_to(special)
    try:
        code, err = run(capsys, *_commands(files, out)[command])
    finally:
        if keep is not None:
            keep.close()
    assert code == 2 and f"{out}: cannot write here (" in err and "replaces only regular files" in err
    mode = os.lstat(special).st_mode
    assert stat.S_ISSOCK(mode) if kind == "socket" else stat.S_ISFIFO(mode)
    assert not out.is_symlink() or os.readlink(out) == str(special)
    assert [p.name for p in files.iterdir() if p.name.startswith(".")] == []


def test_a_character_device_is_never_replaced(capsys, files):
    """As root the old code renamed over the device (`--out /dev/null` replaced the system's null device).

    The test never aims at the real /dev/null: as root it makes its own null device node in tmp_path,
    otherwise (no mknod) it uses /dev/null, which a non-root rename cannot replace anyway.
    """
    device = files / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        device = Path("/dev/null")
    before = os.stat(device)
    code, err = run(capsys, *_commands(files, device)["threshold"])
    assert code == 2 and f"{device}: cannot write here (a character device" in err
    after = os.stat(device)
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


# The input each command would destroy when told to write over it.
SAME = {
    "normalize": "tomo.mrc",
    "postprocess": "mask.mrc",
    "threshold": "logits.mrc",
    "evaluate": "truth.mrc",
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("how", ["same path", "hard link", "symbolic link"])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(capsys, files, command, how):
    source = files / SAME[command]
    out = source
    if how == "hard link":
        out = files / "hard.mrc"
        os.link(source, out)
    elif how == "symbolic link":
        out = files / "soft.mrc"
        out.symlink_to(source)
    before = digest(source)
    code, err = run(capsys, *_commands(files, out)[command])
    assert code == 2 and "the same file as the input" in err and str(out) in err
    assert digest(source) == before
    assert not (files / "logits.provenance.json").exists()  # threshold recorded nothing either


def test_threshold_refuses_a_mask_whose_record_would_replace_the_logits_record(capsys, files):
    """`--out` beside the logits with the same name (another volume suffix): its provenance would overwrite
    the logits' own."""
    record = files / "logits.provenance.json"
    record.write_text(json.dumps({"untrained": True}))
    code, err = run(
        capsys, "threshold", files / "logits.mrc", "--threshold", "0", "--out", files / "logits.rec"
    )
    assert code == 2 and "the same file as the input" in err and str(record) in err
    assert json.loads(record.read_text()) == {"untrained": True}


def _sparse_mrc(path, shape, mode=2):
    """An MRC whose header promises `shape` and whose (sparse) file has exactly that many bytes."""
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.zeros((1, 1, 1), np.float32))
    header = bytearray(path.read_bytes()[:1024])
    z, y, x = shape
    header[0:12] = np.array([x, y, z], "<i4").tobytes()
    header[12:16] = np.array([mode], "<i4").tobytes()
    header[28:40] = np.array([x, y, z], "<i4").tobytes()
    with open(path, "wb") as handle:
        handle.write(bytes(header))
        handle.truncate(1024 + z * y * x * 4)


@pytest.mark.parametrize("command", ["normalize", "postprocess", "evaluate"])
def test_a_header_promising_a_terabyte_is_one_line_not_a_memory_error(capsys, files, command):
    huge = files / "huge.mrc"
    _sparse_mrc(huge, (2500, 10000, 10000))  # 1 TB of float32, a sparse file of that size
    args = {
        "normalize": ["normalize", huge, "--out", files / "o.mrc"],
        "postprocess": ["postprocess", huge, "--out", files / "o.mrc"],
        "evaluate": ["evaluate", "--pred", huge, "--truth", files / "truth.mrc", "--json", files / "o.json"],
    }[command]
    code, err = run(capsys, *args)
    assert code == 2 and f"{huge}: declares a volume" in err and "GiB" in err
    assert not (files / "o.mrc").exists() and not (files / "o.json").exists()


def test_a_volume_bigger_than_memory_is_refused_before_reading(capsys, files, monkeypatch):
    import tomoseg.core.limits as limits

    big = files / "big.mrc"
    _sparse_mrc(big, (64, 1024, 1024))  # 256 MiB, under the volume limit
    monkeypatch.setattr(limits, "available_memory", lambda: 64 * 2**20)
    code, err = run(capsys, "normalize", big, "--out", files / "o.mrc")
    assert code == 2 and f"{big}: reading the whole volume needs" in err and "available" in err


def test_a_too_long_file_name_is_one_line(capsys, files):
    long = files / ("x" * 300 + ".mrc")
    for args in (
        ["normalize", long, "--out", files / "o.mrc"],
        ["normalize", files / "tomo.mrc", "--out", long],
        ["evaluate", "--pred", files / "mask.mrc", "--truth", long, "--json", files / "o.json"],
        ["threshold", long, "--threshold", "0", "--out", files / "o.mrc"],
    ):
        code, err = run(capsys, *args)
        assert code == 2 and "File name too long" in err and "x" * 300 in err


@pytest.mark.parametrize("record", [[1, 2], "text", 3])
def test_a_provenance_that_is_not_an_object_is_one_line(capsys, files, record):
    given = files / "given.json"
    given.write_text(json.dumps(record))
    for args in (
        ["threshold", files / "logits.mrc", "--threshold", "0", "--out", files / "o.mrc", "--provenance", given],
        ["evaluate", "--pred", files / "mask.mrc", "--truth", files / "truth.mrc", "--json", files / "o.json",
         "--provenance", given],
    ):  # fmt: skip
        code, err = run(capsys, *args)
        assert code == 2 and f"{given}: a provenance record must be a JSON object" in err


@pytest.mark.parametrize("tool", ["membrain", "tardis"])
def test_baseline_out_that_is_a_file_or_read_only_is_refused_before_the_tool(capsys, files, tool):
    ckpt = files / "model.ckpt"
    ckpt.write_bytes(b"not a checkpoint: the tool must never be reached")
    taken = files / "taken"
    taken.write_text("keep me")
    code, err = run(capsys, "baseline", tool, files / "tomo.mrc", "--out", taken, "--checkpoint", ckpt)
    assert code == 2 and f"{taken}: cannot write here (not a folder" in err and "checkpoint" not in err
    assert taken.read_text() == "keep me"
    if os.geteuid() == 0:
        return  # root writes into read-only folders
    locked = files / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, err = run(capsys, "baseline", tool, files / "tomo.mrc", "--out", locked, "--checkpoint", ckpt)
    finally:
        locked.chmod(0o700)
    assert code == 2 and f"{locked}: cannot write here (Permission denied" in err
    assert list(locked.iterdir()) == []
