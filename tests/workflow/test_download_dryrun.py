"""`snakemake -n` on the default config plans the ten paper test tomograms without touching the network."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tomoseg.testing.offline import offline_env

pytestmark = pytest.mark.workflow  # runs Snakemake: left out of `make check`

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def test_dry_run_plans_exactly_the_ten_test_tomograms_offline(tmp_path):
    work = tmp_path / "work"
    shutil.copytree(REPO / "config", work / "config")
    env, attempts = offline_env(tmp_path, REPO / "src")
    cmd = [
        str(SNAKEMAKE),
        "-n",
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(work),
    ]
    # As root, also run in a fresh network namespace (no interface but a down loopback).
    if os.geteuid() == 0 and shutil.which("unshare"):
        cmd = ["unshare", "-n", *cmd]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not attempts.exists(), attempts.read_text()
    output = result.stdout + result.stderr
    planned: dict[str, set[str]] = {}
    rule = None
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("rule ") or line.startswith("localrule "):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("wildcards:") and rule:
            tomo = dict(kv.split("=", 1) for kv in line[len("wildcards:") :].strip().split(", ")).get("tomo")
            if tomo is not None:  # rules of later stages may have other wildcards
                planned.setdefault(rule, set()).add(tomo)
    sheet = pd.read_csv(REPO / "config" / "runs.tsv", sep="\t", dtype=str, keep_default_na=False)
    test = set(sheet.loc[sheet["split"] == "test", "tomo"])
    assert len(test) == 10
    # every per-tomogram rule plans exactly the ten test tomograms, and every stage is there
    per_tomogram = {
        "download_tomogram": 1,
        "download_groundtruth": 1,
        "normalize": 1,
        "etsam_stage1": 1,
        "etsam_stage2": 1,
        "postprocess": 1,
        "membrain": 1,
        "tardis": 1,
        "overlay": 1,
        "tomogram_page": 1,
        "theta_map": 1,  # the ground truth's θ map (evaluate.theta_wise, on in the paper config)
        "evaluate_scored": 8,  # etsam, etsam_stage1, membrain, tardis + 4 computed ablation variants
        "evaluate_mask": 1,  # etsam_postprocessed
        "etsam_ablation_stage1": 1,  # grid_every_n (grid_first is the main Stage 1)
        "etsam_ablation_stage2": 3,  # grid_first, grid_every_n, stage1_mask_every_n (empty is the main Stage 2)
    }
    assert {rule: tomos for rule, tomos in planned.items()} == dict.fromkeys(per_tomogram, test)
    once = dict.fromkeys(["fetch_etsam_weights", "summarize", "figures", "ablation_summary", "all"], 1)
    once["views_figure"] = 2  # Figures 2 and 5 (Figure 3 draws the robustness split, not selected here)
    expected = {rule: 10 * n for rule, n in per_tomogram.items()} | once
    assert job_stats(output) == expected | {"total": sum(expected.values())}


def job_stats(output: str) -> dict[str, int]:
    """Snakemake's job stats table (rule -> jobs, and 'total') from a dry run's output."""
    table = output.rsplit("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {
        line.split()[0]: int(line.split()[1])
        for line in table.splitlines()[3:]
        if len(line.split()) == 2 and line.split()[1].isdigit()
    }


LOCALRULES = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (ConfigSettings, DeploymentSettings, OutputSettings, ResourceSettings,
                                      StorageSettings)
with SnakemakeApi(OutputSettings()) as api:
    wapi = api.workflow(resource_settings=ResourceSettings(), config_settings=ConfigSettings(config=json.loads(sys.argv[3])),
                        storage_settings=StorageSettings(), deployment_settings=DeploymentSettings(),
                        snakefile=Path(sys.argv[1]), workdir=Path(sys.argv[2]))
    print("LOCALRULES", sorted(wapi._workflow._localrules))
"""


def test_download_local_rules_switch(tmp_path):
    import json

    import yaml

    work = tmp_path / "work"
    shutil.copytree(REPO / "config", work / "config")
    download = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["download"]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    found = {}
    for flag in (True, False):
        overrides = json.dumps({"download": dict(download, local_rules=flag)})
        result = subprocess.run(
            [sys.executable, "-c", LOCALRULES, str(REPO / "workflow" / "Snakefile"), str(work), overrides],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        line = [ln for ln in result.stdout.splitlines() if ln.startswith("LOCALRULES")]
        assert line, result.stdout[-2000:] + result.stderr[-2000:]
        found[flag] = line[0]
    # the per-run download rules, and their shard job for many runs (docs/scaling.md)
    downloads = {"download_groundtruth", "download_tomogram", "shard_data"}
    local = {flag: set(ast.literal_eval(line.removeprefix("LOCALRULES "))) for flag, line in found.items()}
    assert downloads <= local[True]
    assert not downloads & local[False]
    # the switch changes exactly the download rules (others, e.g. fetch_etsam_weights, are local either way)
    assert local[True] - local[False] == downloads


PORTAL_ROW = """
import json, sys
from pathlib import Path
from types import SimpleNamespace
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (ConfigSettings, DeploymentSettings, OutputSettings, ResourceSettings,
                                      StorageSettings)
for overrides in sys.argv[3:]:
    with SnakemakeApi(OutputSettings()) as api:
        wapi = api.workflow(resource_settings=ResourceSettings(),
                            config_settings=ConfigSettings(config=json.loads(overrides)),
                            storage_settings=StorageSettings(), deployment_settings=DeploymentSettings(),
                            snakefile=Path(sys.argv[1]), workdir=Path(sys.argv[2]))
        row = wapi._workflow.globals["portal_row"](SimpleNamespace(tomo="cdp-10000-245"))
        print("ROW", json.dumps(row))
"""


def test_download_format_is_a_download_parameter_only_when_ome_zarr(tmp_path):
    """download.format ome-zarr (and its level) re-run the downloads; the default leaves their params as before."""
    import json

    import yaml

    work = tmp_path / "work"
    shutil.copytree(REPO / "config", work / "config")
    download = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["download"]
    configs = [
        {},
        {"download": dict(download, format="ome-zarr"), "ome_zarr": {"voxel_size": 27.0}},
    ]
    result = subprocess.run(
        [sys.executable, "-c", PORTAL_ROW, str(REPO / "workflow" / "Snakefile"), str(work)]
        + [json.dumps(c) for c in configs],
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = [json.loads(ln[4:]) for ln in result.stdout.splitlines() if ln.startswith("ROW ")]
    assert len(rows) == 2, result.stdout[-2000:] + result.stderr[-2000:]
    sheet = ["tomo", "source", "dataset_id", "run_id", "tomogram_id", "truth"]
    assert list(rows[0]) == sheet and rows[0]["run_id"] == "245"
    assert rows[1] == dict(rows[0], format="ome-zarr", zarr_voxel_size=27.0)
