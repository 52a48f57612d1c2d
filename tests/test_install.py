"""`pip install` of the built wheel into a fresh venv without torch gives a working `tomoseg` command.

Builds the wheel from a copy of the package's sources (`pip wheel --no-deps --no-build-isolation`, with
this environment's setuptools, so no build dependency is downloaded), installs it with its declared
dependencies from the package index into a new venv, and runs the commands a base install must run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tomoseg

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # ~30-90 s: the dependencies (numpy, scipy, pandas, matplotlib) install


def _run(argv: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", source / "src", symlinks=True, ignore=ignore)
    shutil.copytree(REPO / "profiles", source / "profiles")
    dist = source / "dist"
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, "."], cwd=source)
    (built,) = dist.glob("tomoseg-*.whl")
    return built


def test_wheel_carries_the_version_and_the_profiles(wheel):
    assert wheel.name.startswith(f"tomoseg-{tomoseg.__version__}-py3-none-any")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tomoseg/profiles/slurm/config.yaml" in names and "tomoseg/profiles/local/config.yaml" in names
    assert "tomoseg/data/paper/etsam_per_tomogram.csv" in names
    metadata = zipfile.ZipFile(wheel).read(f"tomoseg-{tomoseg.__version__}.dist-info/METADATA").decode()
    base = [
        line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert not [line for line in base if any(p in line for p in ("torch", "sam2", "hydra"))], base
    assert 'Requires-Dist: torch>=2.3; extra == "etsam"' in metadata


def test_installed_wheel_runs_without_torch(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python, tomoseg_cmd = venv / "bin" / "python", venv / "bin" / "tomoseg"
    # this interpreter's pip installs into the venv; no byte-compiling of scipy, pandas and matplotlib
    install = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile", wheel]
    _run(install, cwd=tmp_path, timeout=900)
    absent = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert absent.returncode != 0 and "No module named 'torch'" in absent.stderr

    assert "profile" in _run([tomoseg_cmd, "--help"], cwd=tmp_path).stdout
    assert _run([tomoseg_cmd, "--version"], cwd=tmp_path).stdout.strip() == f"tomoseg {tomoseg.__version__}"
    _run([tomoseg_cmd, "phantom", "--out", "ph", "--seed", "2", "--shape", "16", "32", "32"], cwd=tmp_path)
    _run(
        [
            tomoseg_cmd,
            "evaluate",
            "--pred",
            "ph/groundtruth.mrc",
            "--truth",
            "ph/groundtruth.mrc",
            "--json",
            "m.json",
        ],
        cwd=tmp_path,
    )
    assert json.loads((tmp_path / "m.json").read_text())["dice"] == 1.0
    provenance = json.loads((tmp_path / "ph" / "phantom.json").read_text())["provenance"]
    assert provenance["packages"]["tomoseg"] == tomoseg.__version__
    # the profiles are package data: installable by name without a checkout
    _run([tomoseg_cmd, "profile", "install", "slurm", "--dest", "prof", "--partition", "batch"], cwd=tmp_path)
    assert 'slurm_partition: "batch"' in (tmp_path / "prof" / "config.yaml").read_text()
    # the engine says what is missing instead of a traceback
    segment = subprocess.run(
        [tomoseg_cmd, "segment", "ph/tomogram.mrc", "--out", "seg"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert segment.returncode == 1 and "tomoseg[etsam]" in segment.stderr, segment.stderr
