"""The nightly's settings come from the schema shipped in the package, which equals the workflow's."""

from __future__ import annotations

from pathlib import Path

import yaml

from tomoseg.batch import settings

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_schema_is_the_workflow_schemas_nightly_section():
    workflow = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert settings.night_schema() == workflow["properties"]["nightly"]


def test_defaults_fill_what_the_section_leaves_out_and_keep_explicit_values(tmp_path):
    config = tmp_path / "night.yaml"
    config.write_text(yaml.safe_dump({"nightly": {"start_date": "2025-01-01", "cap": None, "cores": 4}}))
    _, night_cfg = settings.load_night_config(config)
    assert night_cfg["cap"] is None and night_cfg["cores"] == 4  # the user's, an explicit null included
    schema = settings.night_schema()["properties"]
    for key in ("state_dir", "lookback_days", "gpu_hours_per_run", "retry_after_nights", "report_figures"):
        assert night_cfg[key] == schema[key]["default"]
    assert night_cfg["state_dir"] == "nightly" and night_cfg["max_attempts"] == 3
    assert set(settings.night_defaults()) == {k for k, v in schema.items() if "default" in v}


def test_settings_are_checked_without_a_workflow_checkout(cli_main, tmp_path, capsys):
    """The night checks its settings with the package's schema, not with a workflow file found by path
    (before, a `--repo` without workflow/schemas skipped the check and a bad value failed the night later)."""
    config = tmp_path / "night.yaml"
    config.write_text(yaml.safe_dump({"nightly": {"start_date": "2025-01-01", "cap": "lots"}}))
    elsewhere = tmp_path / "deployed"
    elsewhere.mkdir()
    args = ["nightly", "--configfile", str(config), "--workdir", str(tmp_path), "--repo", str(elsewhere)]
    assert cli_main(args) == 2
    assert "nightly.cap: 'lots' is not of type 'integer'" in capsys.readouterr().err
    assert not (tmp_path / "nightly").exists()
