"""Helpers for tests that run the real Snakemake workflow in a scratch working directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def snakemake_command() -> list[str]:
    """The snakemake executable of the interpreter running the tests."""
    exe = Path(sys.executable).with_name("snakemake")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]


def make_workdir(tmp_path: Path, config: str = "config/demo/ci.yaml", **overrides) -> Path:
    """Copy the repo's config folder into a scratch workdir and write `config.yaml` with overrides."""
    workdir = tmp_path / "work"
    shutil.copytree(REPO / "config", workdir / "config")
    settings = yaml.safe_load((REPO / config).read_text())
    settings.update(overrides)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return workdir


def run_snakemake(
    workdir: Path, *args: str, timeout: float = 900, check: bool = True
) -> subprocess.CompletedProcess:
    """Run Snakemake on the repo's Snakefile inside `workdir` (config: workdir/config/config.yaml)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [
            *snakemake_command(),
            "--snakefile",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(workdir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc
