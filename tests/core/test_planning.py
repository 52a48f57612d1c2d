"""What the workflow plans from its config (tomoseg.core.planning): the params its rules always had."""

from __future__ import annotations

from pathlib import Path

import yaml

from tomoseg.core import planning, presets

REPO = Path(__file__).resolve().parents[2]


def _settings(**etsam):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["etsam"].update(etsam)
    return config, presets.resolve(config["etsam"].get("preset") or "paper", {"etsam": config["etsam"]})


def test_paper_engine_options_leave_out_the_split_keys_unless_split():
    config, settings = _settings()
    options = planning.etsam_options(settings["etsam"])
    assert "model_config" not in options and list(options)[:2] == ["device", "dtype"]  # null: left out
    assert options["prompt_stage1"] == "grid_first" and options["prompt_stage2"] == "empty"
    assert options["stage1_threshold"] == 0.0 and options["threshold"] == -0.25
    assert not any(k.startswith("split") for k in options)
    _, split = _settings(split=4)
    assert planning.etsam_options(split["etsam"])["split"] == 4
    assert planning.etsam_options(split["etsam"])["split_grid_spacing"] == 10


def test_checkpoints_follow_the_configured_source():
    etsam = {"checkpoints": "test", "stage1_checkpoint": "/w/s1.pt", "stage2_checkpoint": "/w/s2.pt"}
    assert planning.etsam_checkpoint(etsam, 1) == "resources/etsam/test/etsam_stage1_test.pt"
    assert (
        planning.etsam_checkpoint({**etsam, "checkpoints": "zenodo"}, 2)
        == "resources/etsam/etsam_stage2_v1.pt"
    )
    assert planning.etsam_checkpoint({**etsam, "checkpoints": "paths"}, 2) == "/w/s2.pt"


def test_variant_options_are_the_variants_preset_with_the_configs_engine_keys():
    options = planning.variant_options(
        "etsam_upstream_split", {"device": "cuda", "dtype": None, "prompt_stage1": "x"}
    )
    assert options["split"] == 4 and options["stage1_threshold"] == -0.25  # upstream's, not the config's
    assert options["device"] == "cuda" and "dtype" not in options
    assert list(options)[: len(presets.ETSAM_PRESET_KEYS)] == list(presets.ETSAM_PRESET_KEYS)
    assert planning.variant_labels("etsam_upstream_softplus") == {
        "preset": "upstream",
        "variant": "etsam_upstream_softplus",
    }


def test_postprocess_params_keep_the_papers_single_key():
    paper = presets.resolve("paper")["postprocess"]
    upstream = presets.resolve("upstream")["postprocess"]
    assert planning.postprocess_params(paper) == {"min_slices": 10}
    assert planning.postprocess_params(upstream) == {"settings": upstream}


def test_benchmark_rules_add_the_variants_own_rules():
    configured = {"etsam": ["etsam_stage1", "etsam_stage2"], "etsam_upstream": ["mine"]}
    variants = {m: presets.VARIANTS[m] for m in ("etsam_upstream", "etsam_upstream_postprocessed")}
    rules = planning.benchmark_rules(configured, variants)
    assert rules["etsam"] == ["etsam_stage1", "etsam_stage2"] and rules["etsam_upstream"] == ["mine"]
    assert rules["etsam_upstream_postprocessed"] == [
        "etsam_variant_stage1/etsam_upstream",
        "etsam_variant_stage2/etsam_upstream",
        "postprocess_variant/etsam_upstream",
    ]
    assert configured == {
        "etsam": ["etsam_stage1", "etsam_stage2"],
        "etsam_upstream": ["mine"],
    }  # not changed


def test_copick_ids_fill_in_the_method_without_underscores():
    segmentation = planning.copick_segmentation({"segmentation": {"write": True}})
    assert segmentation["user_id"] == "tomoseg-{method}" and segmentation["write"] is True
    ids = planning.copick_ids("etsam_stage1", segmentation)
    assert ids == {"name": "membrane", "user_id": "tomoseg-etsam-stage1", "session_id": "0"}
    assert planning.copick_truth({"truth": {"user_id": "curator"}}) == {
        "name": "membrane",
        "user_id": "curator",
        "session_id": None,
    }


def test_the_registry_gives_each_methods_benchmark_rules():
    """Issue 22: the rules that make up a method's cost come from the registry, not a list in every config
    (these are the lists the shipped configs carried before)."""
    assert planning.method_benchmark_rules() == {
        "etsam": ["etsam_stage1", "etsam_stage2"],
        "etsam_stage1": ["etsam_stage1"],
        "etsam_postprocessed": ["etsam_stage1", "etsam_stage2", "postprocess"],
        "membrain": ["membrain"],
        "tardis": ["tardis"],
        "etsam_trained": ["etsam_trained_stage1", "etsam_trained_stage2"],
    }
    assert planning.method_benchmark_rules({"tardis": ["tardis", "extra"]})["tardis"] == ["tardis", "extra"]
    for path in (REPO / "config").rglob("*.yaml"):
        assert "benchmark_rules" not in path.read_text(), f"{path} lists the registry's benchmark rules"
