"""Provenance records written beside every output: versions, parameters, inputs, git commit."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

DEFAULT_PACKAGES = ("tomoseg", "numpy", "scipy", "mrcfile", "torch", "sam2", "snakemake")


def package_versions(names: tuple[str, ...] = DEFAULT_PACKAGES) -> dict[str, str | None]:
    """Installed versions of `names` (None where a package is absent)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(start: str | os.PathLike | None = None) -> str | None:
    """The workflow's git commit (with '-dirty' when the tree has changes), or None outside git."""
    cwd = Path(start) if start else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def provenance_record(
    step: str,
    parameters: dict[str, Any] | None = None,
    inputs: dict[str, str] | None = None,
    packages: tuple[str, ...] = DEFAULT_PACKAGES,
    **extra: Any,
) -> dict[str, Any]:
    """A provenance record for one step's output: what ran, on what, with which parameters."""
    record: dict[str, Any] = {
        "step": step,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "packages": package_versions(packages),
        "git_commit": git_commit(),
        "parameters": parameters or {},
        "inputs": inputs or {},
    }
    record.update(extra)
    return record
