"""A checkpoint's sidecar JSON is data: a closed set of keys and types, never Hydra configuration."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import tomoseg.cli as cli
from tomoseg.core.errors import InputError
from tomoseg.core.io import write_volume
from tomoseg.etsam.model import make_test_checkpoints, read_sidecar, sidecar_path, tiny_spec


class _Payload:
    """Unpickling this creates `marker`: proof that a file ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return make_test_checkpoints(tmp_path_factory.mktemp("ckpt"), 64)


def _sidecar(tmp_path, meta) -> object:
    side = tmp_path / "ckpt.json"
    side.write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return side


def test_test_checkpoint_sidecars_read_back_as_their_spec(checkpoints):
    for ckpt in checkpoints:
        spec, untrained = read_sidecar(sidecar_path(ckpt))
        assert spec == tiny_spec(64) and untrained is True


def test_hydra_target_in_a_sidecar_runs_nothing(tmp_path, capsys, checkpoints):
    """The attack of issue 13: an override that makes Hydra call torch.load(weights_only=False)."""
    s1, s2 = checkpoints
    marker = tmp_path / "marker"
    (tmp_path / "payload.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    evil = tmp_path / "evil.pt"
    evil.write_bytes(s1.read_bytes())
    meta = json.loads(sidecar_path(s1).read_text())
    meta["overrides"] += [
        "++model.evil._target_=torch.load",
        f"++model.evil.f={tmp_path / 'payload.pkl'}",
        "++model.evil.weights_only=false",
    ]
    sidecar_path(evil).write_text(json.dumps(meta))
    tomo = tmp_path / "tomo.mrc"
    write_volume(tomo, np.random.default_rng(0).random((4, 40, 40), dtype=np.float32), 10.0)
    out = tmp_path / "out"
    args = ["segment", tomo, "--out", out, "--stage1-checkpoint", evil, "--stage2-checkpoint", s2]
    assert cli.main([str(a) for a in [*args, "--no-progress", "--device", "cpu"]]) == 2
    err = capsys.readouterr().err
    assert "evil.json: checkpoint sidecar override '++model.evil._target_=torch.load' refused" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not marker.exists()
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ("{not json", "not readable JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"model_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "hydra": {}}, "unknown key(s) ['hydra']"),
        ({"model_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "seed": "0"}, "'seed' must be int"),
        ({"model_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "seed": True}, "'seed' must be int"),
        ({"model_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "untrained": 1}, "'untrained' must be bool"),
        (
            {"model_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "overrides": "x"},
            "'overrides' must be list",
        ),
        ({"overrides": []}, "model_config None refused"),
        ({"model_config": "/tmp/evil.yaml"}, "model_config '/tmp/evil.yaml' refused"),
        ({"model_config": "configs/sam2.1/../../evil.yaml"}, "refused"),
        ({"model_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "overrides": [7]}, "override 7 refused"),
        (
            {
                "model_config": "configs/sam2.1/sam2.1_hiera_t.yaml",
                "overrides": ["++model.image_size=${oc.env:HOME}"],
            },
            "refused",
        ),
        (
            {
                "model_config": "configs/sam2.1/sam2.1_hiera_t.yaml",
                "overrides": ["++model._target_=os.system"],
            },
            "refused",
        ),
        (
            {"model_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "overrides": ["model.image_size=128"]},
            "refused",
        ),
        (
            {"model_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "overrides": ["++model.image_size=100"]},
            "multiple of 32",
        ),
        # issue 21, item 5: sizes that would build a model of tens of GB (position tables ~ feat_sizes^2)
        (
            {"model_config": "configs/sam2.1/sam2.1_hiera_t.yaml", "overrides": ["++model.image_size=99968"]},
            "from 64 to 2048",
        ),
        (
            {
                "model_config": "configs/sam2.1/sam2.1_hiera_t.yaml",
                "overrides": ["++model.memory_attention.layer.cross_attention.feat_sizes=[99999,99999]"],
            },
            "feature sizes must be 1..128",
        ),
    ],
)
def test_sidecar_outside_the_schema_is_refused(tmp_path, meta, needle):
    side = _sidecar(tmp_path, meta)
    with pytest.raises(InputError, match="checkpoint sidecar") as err:
        read_sidecar(side)
    assert str(side) in str(err.value) and needle in str(err.value)


def test_overrides_are_rebuilt_not_passed_through(tmp_path):
    side = _sidecar(
        tmp_path,
        {
            "model_config": "configs/sam2.1/sam2.1_hiera_t.yaml",
            "overrides": [
                "++model.image_size=0128",
                "++model.memory_attention.layer.self_attention.feat_sizes=[08,8]",
            ],
        },
    )
    spec, untrained = read_sidecar(side)
    assert spec.overrides == (
        "++model.image_size=128",
        "++model.memory_attention.layer.self_attention.feat_sizes=[8,8]",
    )
    assert untrained is False


# --- Fail before the expensive part, and one clean message -------------------------------------------


def _tomogram(path, low=-1.0, high=1.0):
    rng = np.random.default_rng(3)
    write_volume(path, rng.uniform(low, high, size=(5, 40, 48)).astype(np.float32), 10.0)
    return path


def _segment(capsys, tomo, out, s1, s2, *extra):
    args = ["segment", tomo, "--out", out, "--stage1-checkpoint", s1, "--stage2-checkpoint", s2]
    code = cli.main([str(a) for a in [*args, "--no-progress", "--device", "cpu", *extra]])
    err = capsys.readouterr().err
    if code != 0:
        lines = [line for line in err.splitlines() if line.startswith("tomoseg segment: error:")]
        assert len(lines) == 1 and "Traceback" not in err, err
    return code, err


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if the SAM2 engine is started: the error had to come first."""
    import tomoseg.etsam.pipeline as pipeline

    def forbidden(*args, **kwargs):
        raise AssertionError("the ETSAM engine ran before the error")

    monkeypatch.setattr(pipeline, "propagate_tiles", forbidden)
    monkeypatch.setattr(pipeline, "normalize_volume", forbidden)


def test_unwritable_out_fails_before_etsam_runs(tmp_path, capsys, checkpoints, monkeypatch, no_compute):
    import errno

    import tomoseg.core.io as io

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    tomo = _tomogram(tmp_path / "t.mrc")
    monkeypatch.setattr(io.tempfile, "mkstemp", read_only)
    out = tmp_path / "out"
    code, err = _segment(capsys, tomo, out, *checkpoints)
    assert code == 2 and f"{out}: cannot write here (Read-only file system)" in err


def test_out_that_is_a_file_fails_before_etsam_runs(tmp_path, capsys, checkpoints, no_compute):
    out = tmp_path / "out.txt"
    out.write_text("not a folder")
    code, err = _segment(capsys, _tomogram(tmp_path / "t.mrc"), out, *checkpoints)
    assert code == 2 and "out.txt: cannot write here (not a folder" in err
    assert out.read_text() == "not a folder"


def test_folder_in_place_of_an_output_file_fails_before_etsam_runs(tmp_path, capsys, checkpoints, no_compute):
    out = tmp_path / "out"
    (out / "mask.mrc").mkdir(parents=True)
    code, err = _segment(capsys, _tomogram(tmp_path / "t.mrc"), out, *checkpoints)
    assert code == 2 and "mask.mrc: cannot write here (a folder is in the way" in err


@pytest.mark.parametrize("device", ["gpu0", "cuda:x", "CPU"])
def test_unknown_device_fails_before_etsam_runs(tmp_path, capsys, checkpoints, device, no_compute):
    code, err = _segment(
        capsys, _tomogram(tmp_path / "t.mrc"), tmp_path / "out", *checkpoints, "--device", device
    )
    assert code == 2 and f"device {device!r} unknown; use cpu, cuda or cuda:N" in err


def test_bad_stage2_checkpoint_fails_before_stage1_runs(tmp_path, capsys, checkpoints, monkeypatch):
    import torch

    import tomoseg.etsam.pipeline as pipeline

    s1, s2 = checkpoints
    blob = torch.load(s2, weights_only=True)
    blob["model"].pop("no_mem_embed")
    bad = tmp_path / "bad2.pt"
    torch.save(blob, bad)
    sidecar_path(bad).write_text(sidecar_path(s2).read_text())
    ran = []
    monkeypatch.setattr(
        pipeline, "propagate_tiles", lambda *a, **k: ran.append(1) or (_ for _ in ()).throw(AssertionError)
    )
    code, err = _segment(capsys, _tomogram(tmp_path / "t.mrc"), tmp_path / "out", s1, bad)
    assert code == 2 and "bad2.pt: checkpoint does not match" in err and ran == []


def test_malformed_sidecar_is_one_clean_error(tmp_path, capsys, checkpoints, no_compute):
    s1, s2 = checkpoints
    bad = tmp_path / "s1.pt"
    bad.write_bytes(s1.read_bytes())
    sidecar_path(bad).write_text('{"model_config": ')
    code, err = _segment(capsys, _tomogram(tmp_path / "t.mrc"), tmp_path / "out", bad, s2)
    assert code == 2 and "s1.json: checkpoint sidecar is not readable JSON" in err


def test_normalized_flag_on_raw_data_is_refused(tmp_path, capsys, checkpoints, no_compute):
    code, err = _segment(
        capsys, _tomogram(tmp_path / "t.mrc", -3, 7), tmp_path / "out", *checkpoints, "--normalized"
    )
    assert code == 2 and "outside [0, 1], but the input was declared normalized" in err


def test_full_disk_is_one_clean_error_and_leaves_nothing(tmp_path, capsys, checkpoints, monkeypatch):
    import errno

    import tomoseg.core.io as io

    real_new = io.mrcfile.new

    def full(path, *args, **kwargs):
        if "mask" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_new(path, *args, **kwargs)

    tomo = _tomogram(tmp_path / "t.mrc", 0, 1)
    monkeypatch.setattr(io.mrcfile, "new", full)
    out = tmp_path / "out"
    code, err = _segment(capsys, tomo, out, *checkpoints, "--store-logits")
    assert code == 2 and f"{out / 'mask.mrc'}: cannot write here (No space left on device)" in err
    assert list(out.iterdir()) == []  # no output, no staging folder, no temporary file


@pytest.mark.slow
def test_reused_out_keeps_no_stale_logits(tmp_path, capsys, checkpoints, caplog):
    tomo, out = _tomogram(tmp_path / "t.mrc", 0, 1), tmp_path / "out"
    assert _segment(capsys, tomo, out, *checkpoints, "--store-logits")[0] == 0
    assert (out / "stage2_logits.mrc").exists()
    assert _segment(capsys, tomo, out, *checkpoints)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["mask.mrc", "provenance.json"]
    assert "left by an earlier run" in caplog.text


def test_too_little_disk_space_fails_before_etsam_runs(
    tmp_path, capsys, checkpoints, monkeypatch, no_compute
):
    import collections
    import shutil

    tomo, out = _tomogram(tmp_path / "t.mrc"), tmp_path / "out"
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    code, err = _segment(capsys, tomo, out, *checkpoints, "--store-logits")
    assert code == 2 and f"{out}: cannot write here (the outputs need about 1.1 MB, only 0.0 MB free" in err
