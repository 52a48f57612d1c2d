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
