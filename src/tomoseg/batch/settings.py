"""The nightly's settings: the config file's `nightly:` section, checked and completed from its schema.

The schema of the section ships with the package (`tomoseg/data/nightly.schema.yaml`, equal to the
`nightly` property of workflow/schemas/config.schema.yaml, a test keeps them equal), so the night checks
its settings and takes their defaults without reading workflow files by path.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tomoseg.core.io import InputError

SCHEMA_RESOURCE = "data/nightly.schema.yaml"


@functools.cache
def night_schema() -> dict[str, Any]:
    """The JSON schema of the `nightly:` section (read once from the package's data)."""
    return yaml.safe_load(resources.files("tomoseg").joinpath(SCHEMA_RESOURCE).read_text())


def night_defaults() -> dict[str, Any]:
    """Every `nightly:` key that has a default in the schema, with that default."""
    return {k: v["default"] for k, v in night_schema()["properties"].items() if "default" in v}


def night_settings(night_cfg: dict[str, Any]) -> dict[str, Any]:
    """A `nightly:` section with the schema's defaults for the keys it leaves out (explicit nulls kept)."""
    return {**night_defaults(), **night_cfg}


def load_night_config(config_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The workflow config and its `nightly:` section (defaults filled in), checked before any work.

    A missing or unreadable file, YAML that is not a mapping, a missing `nightly:` section or a value of
    the wrong type (e.g. a non-numeric `cap`) is an InputError naming the file and the key.
    """
    try:
        config = yaml.safe_load(config_path.read_text())
    except FileNotFoundError:
        raise InputError(f"{config_path}: config file not found (--configfile)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{config_path}: cannot read the config ({err})") from None
    except yaml.YAMLError as err:
        raise InputError(f"{config_path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(config, dict):
        raise InputError(f"{config_path}: expected a YAML mapping of settings, found {type(config).__name__}")
    night_cfg = config.get("nightly")
    if not isinstance(night_cfg, dict):
        raise InputError(
            f"{config_path}: no `nightly:` section (start_date, cap, ...); see docs/nightly.md and config/config.yaml"
        )
    import jsonschema

    error = next(iter(jsonschema.Draft202012Validator(night_schema()).iter_errors(night_cfg)), None)
    if error is not None:
        where = ".".join(["nightly", *map(str, error.absolute_path)])
        raise InputError(f"{config_path}: {where}: {error.message}")
    return config, night_settings(night_cfg)
