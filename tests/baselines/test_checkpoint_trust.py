"""A baseline checkpoint never runs code: checked before any tool sees it, read as data inside the tool's env.

The attacks of issue 13: a pickled payload in a Membrain-Seg .ckpt and in a TARDIS .pth. Each is refused
with a message naming the file and the opt-in, and creates nothing (no marker, no output folder).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tomoseg.baselines import checkpoints
from tomoseg.baselines.checkpoints import (
    TRUST_INSPECTED,
    TRUST_PUBLISHED,
    TRUST_UNVERIFIED,
    trust_flags,
    verify_checkpoint,
)
from tomoseg.baselines.driver import TOOLSCRIPTS
from tomoseg.baselines.membrain import run_membrain
from tomoseg.baselines.tardis import run_tardis
from tomoseg.core.errors import InputError
from tomoseg.core.io import sha256sum, write_volume

ROOT = Path(__file__).resolve().parents[2]
RUNNERS = {"membrain": run_membrain, "tardis": run_tardis}


class Payload:
    """Unpickling this writes `marker`: proof that loading the file ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _tool_python(tool: str) -> Path:
    path = ROOT / "venvs" / tool / "bin" / "python"
    if not path.exists():
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{path}: {tool} environment missing")
        pytest.skip(f"{path}: {tool} environment missing (make baselines)")
    return path


def _evil(tool: str, path: Path, marker: Path) -> Path:
    """A checkpoint in the tool's layout (tiny tensors) that also carries a payload."""
    state = {"conv.weight": torch.zeros(2, 1, 3, 3, 3)}
    if tool == "membrain":
        blob = {"state_dict": state, "hyper_parameters": {"channels": [4, 8]}, "extra": Payload(marker)}
    else:
        blob = {
            "model_struct_dict": {"cnn_type": "fnet_attn"},
            "model_state_dict": state,
            "extra": Payload(marker),
        }
    torch.save(blob, path)
    return path


@pytest.fixture
def tomogram(tmp_path) -> Path:
    path = tmp_path / "tomo.mrc"
    write_volume(path, np.random.default_rng(0).normal(size=(8, 32, 32)).astype(np.float32), 13.48)
    return path


@pytest.mark.parametrize("tool", ["membrain", "tardis"])
def test_pickled_payload_is_refused_before_the_tool_runs(tmp_path, tomogram, tool):
    marker = tmp_path / "marker"
    ckpt = _evil(tool, tmp_path / f"evil.{'ckpt' if tool == 'membrain' else 'pth'}", marker)
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        RUNNERS[tool](tomogram, out, ckpt, _tool_python(tool))
    message = str(err.value)
    assert message.startswith(f"{ckpt}: {tool} checkpoint refused") and "builtins.exec" in message
    assert f"baselines: {tool}: allow_unverified_checkpoint: true" in message
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("tool", ["membrain", "tardis"])
def test_tool_environment_reads_it_as_data_too(tmp_path, tomogram, tool, monkeypatch):
    """Second line: with the static check bypassed, the driver's weights-only reading refuses it."""
    marker = tmp_path / "marker"
    ckpt = _evil(tool, tmp_path / "evil.bin", marker)
    monkeypatch.setattr(checkpoints, "_unsafe_globals", lambda tool, ckpt: [])
    out = tmp_path / "out"
    with pytest.raises(InputError, match="refused when read as data in the tool's environment") as err:
        RUNNERS[tool](tomogram, out, ckpt, _tool_python(tool))
    assert "weights_only=True) failed: Unsupported global: GLOBAL exec" in str(err.value)
    assert not marker.exists() and not out.exists()


def test_the_tools_own_load_is_forced_weights_only(tmp_path):
    """Third line: a tool calling torch.load(weights_only=False) under the guard still loads data only."""
    python = _tool_python("tardis")
    marker = tmp_path / "marker"
    ckpt = _evil("tardis", tmp_path / "evil.pth", marker)
    tool = tmp_path / "tool.py"
    tool.write_text("import sys, torch\ntorch.load(sys.argv[1], weights_only=False)\n")
    guard = TOOLSCRIPTS / "checkpoint_guard.py"
    done = subprocess.run(
        [python, guard, "exec", "--", tool, ckpt], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0 and "Unsupported global" in done.stderr
    assert not marker.exists()
    unguarded = subprocess.run([python, tool, ckpt], capture_output=True, timeout=120, check=False)
    assert unguarded.returncode == 0 and marker.exists()  # the same load without the guard runs the payload


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"this is a text file, not weights\n", "not a PyTorch checkpoint"),
        (b"PK\x03\x04broken", "not a PyTorch"),
    ],
)
def test_files_that_are_not_checkpoints_are_one_clean_error(tmp_path, tomogram, content, needle):
    ckpt = tmp_path / "weights.ckpt"
    ckpt.write_bytes(content)
    with pytest.raises(InputError, match=needle) as err:
        run_membrain(tomogram, tmp_path / "out", ckpt, python=None)
    assert str(ckpt) in str(err.value) and not (tmp_path / "out").exists()


def test_plain_checkpoints_are_read_as_data(tmp_path):
    ckpt = tmp_path / "ok.pth"
    torch.save({"model_struct_dict": {"a": 1}, "model_state_dict": {"w": torch.ones(2)}}, ckpt)
    verdict = verify_checkpoint("tardis", ckpt)
    assert verdict["trust"] == TRUST_INSPECTED and verdict["sha256"] == sha256sum(ckpt)
    assert trust_flags("tardis", verdict) == ["--checkpoint-trust", "inspect"]
    flags = trust_flags("membrain", {"trust": TRUST_INSPECTED})
    assert "--allow-class=lightning_fabric.utilities.data.AttributeDict" in flags


def test_site_opt_in_hands_the_file_over_with_a_warning(tmp_path, caplog):
    ckpt = _evil("membrain", tmp_path / "site.ckpt", tmp_path / "marker")
    with pytest.raises(InputError):
        verify_checkpoint("membrain", ckpt)
    verdict = verify_checkpoint("membrain", ckpt, allow_unverified=True)
    assert verdict["trust"] == TRUST_UNVERIFIED
    assert trust_flags("membrain", verdict) == ["--checkpoint-trust", "trusted"]
    assert "not verified" in caplog.text and "runs any code" in caplog.text
    assert not (tmp_path / "marker").exists()  # deciding never unpickles


def test_published_digest_is_trusted_and_the_shipped_list_is_empty(tmp_path, monkeypatch):
    shipped = json.loads(checkpoints.PUBLISHED_DIGESTS.read_text())
    assert shipped["membrain"] == [] and shipped["tardis"] == []  # no digest is published: none invented
    ckpt = _evil("tardis", tmp_path / "pub.pth", tmp_path / "marker")
    listed = tmp_path / "published.json"
    listed.write_text(json.dumps({"tardis": [{"sha256": sha256sum(ckpt), "source": "https://example.org"}]}))
    monkeypatch.setattr(checkpoints, "PUBLISHED_DIGESTS", listed)
    verdict = verify_checkpoint("tardis", ckpt)
    assert verdict["trust"] == TRUST_PUBLISHED and verdict["source"] == "https://example.org"


def test_guard_script_imports_nothing_from_tomoseg():
    text = (TOOLSCRIPTS / "checkpoint_guard.py").read_text()
    assert "tomoseg" not in text.replace("tomoseg.baselines", "")
    assert sys.executable  # the guard runs under the tool's Python, never this one
