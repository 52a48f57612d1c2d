"""Presets, upstream names and variants: what each resolves to, and that explicit settings win."""

import argparse
from pathlib import Path

import pytest

from tomoseg.core import presets


def test_paper_preset_is_the_published_code():
    s = presets.resolve("paper")
    assert s["normalization"] == "max_positive"
    e = s["etsam"]
    assert (e["prompt_stage1"], e["prompt_stage2"]) == ("grid_first", "empty")
    assert (e["every_n"], e["grid_spacing"], e["stage1_threshold"], e["threshold"]) == (50, 50, 0.0, -0.25)
    assert e["split"] == 1
    assert s["postprocess"] == {
        "steps": ["thin_noise"],
        "min_slices": 10,
        "max_bridge_len": 5,
        "max_spur_len": 0,
    }


def test_upstream_preset_differs_in_stage1_threshold_and_postprocessing_only():
    paper, upstream = presets.resolve("paper"), presets.resolve("upstream")
    assert upstream["etsam"] == {**paper["etsam"], "stage1_threshold": -0.25}
    assert upstream["normalization"] == paper["normalization"]
    assert upstream["postprocess"] == {**paper["postprocess"], "steps": ["thin_noise", "rungs"]}
    assert (upstream["etsam"]["split_grid_spacing"], upstream["etsam"]["split_every_n"]) == (10, 10)


def test_explicit_settings_win_and_none_means_from_the_preset():
    s = presets.resolve(
        "upstream",
        {
            "normalization": None,
            "etsam": {"prompt_stage2": "etsam_stage1_partial", "threshold": None, "device": "cpu"},
            "postprocess": {"steps": "rungs,thin_noise"},
        },
    )
    assert s["normalization"] == "max_positive"
    assert s["etsam"]["prompt_stage2"] == "stage1_mask_every_n"  # upstream's name, mapped
    assert s["etsam"]["threshold"] == -0.25 and s["etsam"]["device"] == "cpu"
    assert s["postprocess"]["steps"] == ["thin_noise", "rungs"]  # fixed order
    assert presets.resolve("paper")["etsam"]["prompt_stage2"] == "empty", "PRESETS must not be modified"


@pytest.mark.parametrize(
    "upstream, ours",
    [("grid_zero", "grid_first"), ("grid", "grid_every_n"), ("zero", "empty"), ("empty", "empty")],
)
def test_prompt_aliases(upstream, ours):
    assert presets.canonical_prompt(upstream) == ours


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="unknown preset"):
        presets.resolve("latest")
    with pytest.raises(ValueError, match="unknown post-processing step"):
        presets.canonical_steps(["thin_noise", "holes"])


def test_variants_switch_one_upstream_option_each():
    base = presets.resolve("upstream")
    v = presets.VARIANTS
    assert v["etsam_upstream"].settings() == base
    assert v["etsam_upstream_softplus"].settings()["normalization"] == "softplus_minmax"
    assert v["etsam_upstream_stage1_partial"].settings()["etsam"]["prompt_stage2"] == "stage1_mask_every_n"
    assert v["etsam_upstream_split"].settings()["etsam"]["split"] == 4
    assert v["etsam_upstream_postprocessed"].run == "etsam_upstream"
    for name in ("etsam_upstream_softplus", "etsam_upstream_stage1_partial", "etsam_upstream_split"):
        s = v[name].settings()
        changed = [k for k in ("normalization",) if s[k] != base[k]]
        changed += [k for k in s["etsam"] if s["etsam"][k] != base["etsam"][k]]
        assert len(changed) == 1, (name, changed)


def test_the_preset_keys_are_one_list_every_preset_decides():
    """Issue 22: the CLI and the workflow take the nine preset keys from the presets, in a fixed order
    (the workflow's params keep their order, so existing ETSAM jobs are not rerun)."""
    from tomoseg.cli.engine_args import settings_from
    from tomoseg.core.presets import ETSAM_PRESET_KEYS, PRESETS

    assert ETSAM_PRESET_KEYS == (
        *("prompt_stage1", "prompt_stage2", "every_n", "grid_spacing", "stage1_threshold"),
        *("threshold", "split", "split_grid_spacing", "split_every_n"),
    )
    for preset in PRESETS.values():
        assert tuple(preset["etsam"]) == ETSAM_PRESET_KEYS
    for rules in (Path(__file__).resolve().parents[2] / "workflow" / "rules").glob("*.smk"):
        assert '"split_every_n"' not in rules.read_text(), f"{rules.name} lists the preset keys again"
    given = argparse.Namespace(preset="paper", normalization=None, **dict.fromkeys(ETSAM_PRESET_KEYS))
    assert settings_from(given)["etsam"] == PRESETS["paper"]["etsam"]
