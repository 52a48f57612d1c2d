"""Issue 13, "one clean message": every failure of a command that reads or writes files is one line naming
the file and the problem, exit status 2, no traceback, nothing left under a final output name."""

from __future__ import annotations

import errno

import mrcfile
import numpy as np
import pytest
import yaml

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


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    tomo = rng.normal(size=SHAPE).astype(np.float32)
    mask = (tomo > 0.5).astype(np.uint8)
    write_volume(tmp_path / "tomo.mrc", tomo, 10.0)
    write_volume(tmp_path / "mask.mrc", mask, 10.0)
    write_volume(tmp_path / "truth.mrc", np.roll(mask, 1, axis=2), 10.0)
    return tmp_path


def _commands(d, out):
    return {
        "normalize": ["normalize", d / "tomo.mrc", "--out", out],
        "postprocess": ["postprocess", d / "mask.mrc", "--out", out, "--min-slices", "2"],
        "evaluate": ["evaluate", "--pred", d / "mask.mrc", "--truth", d / "truth.mrc", "--json", out],
    }


@pytest.mark.parametrize("command", ["normalize", "postprocess", "evaluate"])
def test_a_folder_given_as_the_output_file(capsys, files, command):
    out = files / "taken"
    out.mkdir()
    code, err = run(capsys, *_commands(files, out)[command])
    assert code == 2 and f"{out}: cannot write here (" in err and "a folder is in the way" in err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("command", ["normalize", "postprocess", "evaluate"])
@pytest.mark.parametrize(
    "failure", [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")]
)
def test_full_or_read_only_disk(capsys, files, monkeypatch, command, failure):
    import tomoseg.core.io as io

    def refuse(*args, **kwargs):
        raise OSError(*failure)

    out = files / "out" / "result.mrc"
    monkeypatch.setattr(io.tempfile, "mkstemp", refuse)
    code, err = run(capsys, *_commands(files, out)[command])
    assert code == 2 and f"{out}: cannot write here ({failure[1]})" in err
    assert not out.exists()


def test_write_fails_midway_leaves_no_temporary_file(capsys, files, monkeypatch):
    import tomoseg.core.io as io

    real = io.mrcfile.new

    def full(path, *args, **kwargs):
        handle = real(path, *args, **kwargs)
        handle.close()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.mrcfile, "new", full)
    out = files / "out"
    out.mkdir()
    code, err = run(capsys, "normalize", files / "tomo.mrc", "--out", out / "n.mrc")
    assert code == 2 and "n.mrc: cannot write here (No space left on device)" in err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("value", ["0", "-3"])
def test_min_slices_below_one(capsys, files, value):
    code, err = run(
        capsys, "postprocess", files / "mask.mrc", "--out", files / "pp.mrc", "--min-slices", value
    )
    assert code == 2 and "min_slices must be a whole number >= 1" in err
    assert not (files / "pp.mrc").exists()


def test_nan_in_a_prediction_is_not_membrane(capsys, files):
    pred = np.zeros(SHAPE, np.float32)
    pred[2, 3, 4] = np.nan
    write_volume(files / "nan.mrc", pred, 10.0)
    out = files / "m.json"
    code, err = run(
        capsys, "evaluate", "--pred", files / "nan.mrc", "--truth", files / "truth.mrc", "--json", out
    )
    assert code == 2 and "nan.mrc: non-finite values (NaN or inf) in slices 0..5, 1 voxels" in err
    assert not out.exists()
    code, err = run(capsys, "postprocess", files / "nan.mrc", "--out", files / "pp.mrc")
    assert code == 2 and "nan.mrc: non-finite values" in err


@pytest.mark.parametrize("command", ["normalize", "evaluate"])
def test_complex_data_is_refused(capsys, files, command):
    with mrcfile.new(files / "c.mrc") as m:
        m.set_data((np.ones(SHAPE) + 2j).astype(np.complex64))
    args = {
        "normalize": ["normalize", files / "c.mrc", "--out", files / "n.mrc"],
        "evaluate": [
            "evaluate",
            "--pred",
            files / "c.mrc",
            "--truth",
            files / "truth.mrc",
            "--json",
            files / "j",
        ],
    }[command]
    code, err = run(capsys, *args)
    assert code == 2 and "c.mrc: complex-valued data (complex float32, MRC mode 4)" in err


def test_zero_voxel_size_and_image_stack_headers_are_warned_about(capsys, files, caplog):
    with mrcfile.new(files / "stack.mrc") as m:
        m.set_data(np.random.default_rng(1).normal(size=SHAPE).astype(np.float32))
        m.set_image_stack()
        m.voxel_size = 0.0
    code, _ = run(capsys, "normalize", files / "stack.mrc", "--out", files / "n.mrc")
    assert code == 0
    assert "stack.mrc: no usable voxel size in the header" in caplog.text
    assert "stack.mrc: the header says an image stack (ISPG 0, 6 images" in caplog.text


# --- the nightly's configuration ------------------------------------------------------------------------


def _night(capsys, tmp_path, config):
    path = tmp_path / "night.yaml"
    if config is not None:
        path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return run(capsys, "nightly", "--configfile", path, "--workdir", tmp_path)


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (None, "night.yaml: config file not found"),
        ("nightly: [unclosed", "night.yaml: not valid YAML"),
        ("- a list", "expected a YAML mapping"),
        ({"methods": []}, "no `nightly:` section"),
        (
            {"nightly": {"start_date": "2025-01-01", "cap": "lots"}},
            "nightly.cap: 'lots' is not of type 'integer'",
        ),
        ({"nightly": {"start_date": "2025-01-01", "cap": 0}}, "nightly.cap: 0 is less than the minimum of 1"),
        (
            {"nightly": {"start_date": "2025-01-01", "max_attempts": 1.5}},
            "nightly.max_attempts: 1.5 is not of type",
        ),
        (
            {"nightly": {"start_date": "2025-01-01", "typo": 1}},
            "Additional properties are not allowed ('typo'",
        ),
    ],
    ids=[
        "missing",
        "bad-yaml",
        "not-a-mapping",
        "no-section",
        "cap-text",
        "cap-zero",
        "attempts",
        "unknown-key",
    ],
)
def test_nightly_config_problems_are_one_line_before_the_lock(capsys, tmp_path, config, needle):
    code, err = _night(capsys, tmp_path, config)
    assert code == 2 and needle in err, err
    assert not (tmp_path / "nightly").exists()  # refused before the lock or any state was made
