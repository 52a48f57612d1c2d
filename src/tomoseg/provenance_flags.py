"""Read the `untrained` flag from method output folders' provenance.json (tables and figures label it)."""

from __future__ import annotations

import os
from pathlib import Path

from tomoseg.io import read_json


def untrained_flag(provenance: str | os.PathLike | None) -> bool | None:
    """True/False from a provenance.json's `untrained`, None when the file or key is absent."""
    if provenance is None or not Path(provenance).exists():
        return None
    value = read_json(provenance).get("untrained")
    return bool(value) if value is not None else None


def untrained_methods(provenance_by_method: dict[str, str | os.PathLike]) -> list[str]:
    """Methods whose provenance says untrained."""
    return [m for m, p in provenance_by_method.items() if untrained_flag(p)]
