"""The method registry and the results layout agree with the schemas, the rules and each other."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tomoseg.core import layout, methods

REPO = Path(__file__).resolve().parents[2]


def _schema(name: str) -> dict:
    return yaml.safe_load((REPO / "workflow" / "schemas" / name).read_text())


def test_config_schema_method_enums_match_the_registry():
    schema = _schema("config.schema.yaml")
    top = schema["properties"]["methods"]["items"]["enum"]
    nightly = schema["properties"]["nightly"]["properties"]["methods"]["items"]["enum"]
    assert tuple(top) == methods.METHOD_NAMES
    assert tuple(nightly) == methods.METHOD_NAMES


def test_runs_schema_columns_match_the_layout():
    schema = _schema("runs.schema.yaml")
    assert tuple(schema["properties"]) == layout.RUNS_COLUMNS
    assert tuple(schema["required"]) == layout.RUNS_COLUMNS


def test_registry_entries():
    assert methods.PAPER_METHODS == ("etsam", "membrain", "tardis")
    assert methods.BASELINES == ("membrain", "tardis")
    etsam = methods.method("etsam")
    assert etsam.mask_path("t1") == "results/etsam/t1/mask.mrc"
    assert etsam.scores_path() == "results/etsam/{tomo}/stage2_logits.mrc"
    assert methods.method("etsam_postprocessed").scores_path() is None
    assert methods.method("etsam_stage1").provenance_path("x") == "results/etsam/x/stage1_provenance.json"
    # every scored method says how its scores are read; mask-only methods have neither
    for m in methods.METHODS.values():
        assert (m.scores is None) == (m.score_kind is None), m.name
    assert len({m.colour for m in methods.METHODS.values()}) == len(methods.METHODS)


def test_label_and_colour():
    assert methods.label("etsam", ["etsam"]) == "etsam (untrained)"
    assert methods.label("tardis", ["etsam"]) == "tardis"
    assert methods.colour("membrain") == methods.METHODS["membrain"].colour
    order = ["ablation_a", "ablation_b"]
    assert methods.colour("ablation_b", order) == methods.EXTRA_COLOURS[1]
    with pytest.raises(KeyError, match="known: etsam"):
        methods.method("nope")


def test_paper_files_exist_for_paper_methods():
    from importlib import resources

    data = Path(str(resources.files("tomoseg") / "data" / "paper"))
    for name in methods.PAPER_METHODS:
        assert (data / f"{methods.method(name).paper_file}_per_tomogram.csv").exists()


def test_config_readme_documents_every_key_and_column():
    readme = (REPO / "config" / "README.md").read_text()
    for key in _schema("config.schema.yaml")["properties"]:
        assert f"`{key}`" in readme, f"config/README.md does not mention the config key {key}"
    for column in layout.RUNS_COLUMNS:
        assert f"`{column}`" in readme, f"config/README.md does not mention the runs-sheet column {column}"


def test_gpu_rules_of_each_method_are_gpu_rules_of_the_workflow():
    import re

    text = "\n".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    blocks = dict(re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, re.M))
    for m in methods.METHODS.values():
        assert m.gpu_rules, m.name
        for rule in m.gpu_rules:
            assert rule in blocks and "gpu=1" in blocks[rule], f"{m.name}: {rule} is not a GPU rule"


def test_run_targets():
    assert layout.run_targets("t", True, ["etsam", "membrain"], metrics=True) == [
        "results/data/t/normalized.mrc",
        "results/data/t/groundtruth.mrc",
        "results/etsam/t/mask.mrc",
        "results/metrics/etsam/t.json",
        "results/membrain/t/mask.mrc",
        "results/metrics/membrain/t.json",
    ]
    assert layout.run_targets("t", False, ["tardis"], metrics=True) == [
        "results/data/t/normalized.mrc",
        "results/tardis/t/mask.mrc",
    ]
    assert layout.run_targets("t", True, ["tardis"], metrics=False)[-1] == "results/tardis/t/mask.mrc"


def test_upstream_variants_are_registered_methods():
    from tomoseg.core.presets import VARIANTS

    registered = {n for n in methods.METHOD_NAMES if n.startswith("etsam_upstream")}
    assert registered == set(VARIANTS)
    for name, variant in VARIANTS.items():
        m = methods.method(name)
        assert m.folder == variant.run, name  # a post-processed variant lives in its base run's folder
        assert m.compare_with in methods.METHODS and not m.baseline and not m.paper_file
        assert (m.scores is None) == (variant.base is not None)
