"""The conda environment files of `--sdm conda` are valid where this machine can check them.

conda cannot be reached from the test machines, so no environment is created here. What is checked:
each env file parses; every line of its pip section is a requirement pip accepts (`pip install
--dry-run --no-deps` of the section as a requirements file, as conda hands it to pip); nothing in it
points at a path, which breaks once the workflow is deployed elsewhere; and the post-deploy script
beside it (run by Snakemake in the new environment) is valid bash whose sam2 line pip accepts.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ENV_FILES = sorted((REPO / "workflow" / "envs").glob("*.yaml"))


def pip_section(env_file: Path) -> list[str]:
    spec = yaml.safe_load(env_file.read_text())
    assert isinstance(spec.get("dependencies"), list), env_file
    sections = [d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) <= 1, env_file
    return [str(line) for line in (sections[0] if sections else [])]


def dry_run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, SAM2_BUILD_CUDA="0")
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_env_file_is_checked():
    assert {p.stem for p in ENV_FILES} == {"tomoseg", "membrain", "tardis"}


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_pip_section_is_accepted_by_pip(env_file, tmp_path):
    lines = pip_section(env_file)
    assert lines, f"{env_file.name}: empty pip section"
    paths = [line for line in lines if line.startswith(("-e", ".", "/")) or "/" in line.split("@")[0]]
    assert not paths, f"{env_file.name}: local paths break a deployed workflow: {paths}"
    requirements = tmp_path / "condaenv.requirements.txt"  # what conda writes and passes to pip -r
    requirements.write_text("\n".join(lines) + "\n")
    proc = dry_run(["-r", str(requirements)], tmp_path)
    assert proc.returncode == 0, f"{env_file.name}: pip rejects its pip section:\n{proc.stderr[-3000:]}"
    assert "Would install" in proc.stdout


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_post_deploy_script_installs_tomoseg(env_file, tmp_path):
    script = env_file.with_suffix(".post-deploy.sh")
    assert script.exists(), f"{script.name} missing: tomoseg itself would not be installed in {env_file.name}"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    assert script.read_text().startswith("#!/usr/bin/env bash\n")  # Snakemake runs it with its shebang
    text = script.read_text()
    assert 'pip install --no-deps "${TOMOSEG_SOURCE' in text
    for line in text.splitlines():
        if "pip install" in line and "sam2" in line:  # the line conda's pip section cannot carry
            args = shlex.split(line.split("pip install", 1)[1])
            proc = dry_run(args, tmp_path)
            assert proc.returncode == 0, f"{script.name}: {line}\n{proc.stderr[-3000:]}"


def test_conda_pip_section_cannot_carry_pip_options(tmp_path):
    """Why sam2 sits in the post-deploy script: the old pip-section line fails exactly like this."""
    requirements = tmp_path / "old.txt"
    requirements.write_text("--no-build-isolation sam2==1.1.0\n")
    proc = dry_run(["-r", str(requirements)], tmp_path)
    assert proc.returncode != 0 and re.search(r"no such option: --no-build-isolation", proc.stderr)
