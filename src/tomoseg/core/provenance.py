"""Provenance records written beside every output (versions, parameters, inputs, git commit), and the
`untrained` flag that tables and figures read back from them."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from tomoseg import __version__
from tomoseg.core.errors import InputError
from tomoseg.core.io import read_json, volume_name

DEFAULT_PACKAGES = ("tomoseg", "numpy", "scipy", "mrcfile", "torch", "sam2", "snakemake")


def package_versions(names: tuple[str, ...] = DEFAULT_PACKAGES) -> dict[str, str | None]:
    """Installed versions of `names` (None where a package is absent); tomoseg's is the running code's."""
    versions: dict[str, str | None] = {}
    for name in names:
        if name == "tomoseg":  # not the metadata: a source tree on PYTHONPATH may shadow another install
            versions[name] = __version__
            continue
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


PROVENANCE_NAME = "provenance.json"
"""The provenance record's name in an output folder (segment, the baselines and the workflow's method folders)."""


def provenance_beside(path: str | os.PathLike, given: str | os.PathLike | None = None) -> Path | None:
    """The provenance record of the output `path`: `given` (it must exist), else `<name>.provenance.json` or
    provenance.json beside it (the first that exists), else None."""
    if given is not None:
        if not Path(given).is_file():
            raise InputError(f"{given}: provenance file not found")
        return Path(given)
    for beside in (own_provenance_path(path), Path(path).parent / PROVENANCE_NAME):
        if beside.is_file():
            return beside
    return None


def own_provenance_path(path: str | os.PathLike) -> Path:
    """`<name>.provenance.json` beside `path` (its whole name less the volume suffix, so `mask_t0.5.mrc` and
    `mask_t0.6.mrc` get records of their own): the record of a single file written into a shared folder."""
    p = Path(path)
    return p.with_name(volume_name(p) + ".provenance.json")


def _read_record(provenance: str | os.PathLike | None) -> dict[str, Any] | None:
    """A provenance record as a dict, None when there is no file; anything but a JSON object is an InputError."""
    if provenance is None or not Path(provenance).exists():
        return None
    record = read_json(provenance)
    if not isinstance(record, dict):
        raise InputError(
            f"{provenance}: a provenance record must be a JSON object, found {type(record).__name__}"
        )
    return record


def untrained_flag(provenance: str | os.PathLike | None) -> bool | None:
    """True/False from a provenance.json's `untrained`, None when the file or key is absent."""
    record = _read_record(provenance)
    value = record.get("untrained") if record is not None else None
    return bool(value) if value is not None else None


def trained_on(provenance: str | os.PathLike | None) -> str | None:
    """What a model trained here learned from (its provenance's `trained_on` parameter), None otherwise."""
    record = _read_record(provenance)
    value = (record.get("parameters") or {}).get("trained_on") if record is not None else None
    return str(value) if value else None


def untrained_methods(provenance_by_method: dict[str, str | os.PathLike]) -> list[str]:
    """Methods whose provenance says untrained."""
    return [m for m, p in provenance_by_method.items() if untrained_flag(p)]


def provenance_marks(provenance_by_method: dict[str, str | os.PathLike]) -> dict[str, str]:
    """Display marks of the methods (`core.methods.label`): untrained, or what a model trained here learned from."""
    from tomoseg.core.methods import method_marks

    return method_marks(
        untrained_methods(provenance_by_method),
        {m: trained_on(p) for m, p in provenance_by_method.items()},
    )
