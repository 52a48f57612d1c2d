"""The execution profiles: Slurm routing of the GPU rules, the partition-selection example read by the
Slurm plugin's own code, the workstation profile's GPU limit, and the Slurm profile installed by name
and used as `snakemake --profile slurm`. (The Slurm profile runs on a real cluster in test_slurm.py.)"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake_helpers import snakemake_command

pytestmark = pytest.mark.workflow  # runs Snakemake: left out of `make check`

REPO = Path(__file__).resolve().parents[2]
# Every rule that requests a GPU (`gpu=1` in its resources), read from the rules themselves.
GPU_RULES = tuple(
    name
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk"))
    for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", path.read_text(), re.M)
    if re.search(r"^\s+gpu=1,", body, re.M)
)


def load(path: str) -> dict:
    return yaml.safe_load((REPO / path).read_text())


def test_slurm_profile_routes_every_gpu_rule_to_a_gpu_partition():
    assert {"etsam_stage1", "etsam_stage2", "membrain", "tardis", "etsam_ablation_stage1"} <= set(GPU_RULES)
    profile = load("profiles/slurm/config.yaml")
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1
    cpu_partition = profile["default-resources"]["slurm_partition"]
    for rule in GPU_RULES:
        routing = profile["set-resources"][rule]
        assert routing["slurm_partition"] != cpu_partition, rule
        # per rule: a cpus_per_task in default-resources would otherwise apply to GPU jobs too
        assert routing["cpus_per_task"] >= 1, rule
        # the GPU count stays in the rules (portable): the profile must not request a second one
        assert "gres" not in routing and "gpu" not in routing, rule
    # portable resources live in the rules, not per rule in the profile
    for rule, routing in profile["set-resources"].items():
        assert not {"mem_mb", "runtime"} & set(routing), rule


def test_local_profile_runs_one_gpu_job_at_a_time():
    profile = load("profiles/local/config.yaml")
    assert profile["resources"]["gpu"] == 1
    assert "executor" not in profile


class _Job(SimpleNamespace):
    """The parts of a Snakemake job that the plugin's partition scoring reads."""

    def __init__(self, name: str, threads: int = 1, **resources):
        super().__init__(
            name=name, threads=threads, resources=SimpleNamespace(get=resources.get, **resources)
        )

    def __str__(self) -> str:
        return self.name


def test_partition_example_selects_gpu_partition_for_gpu_jobs_only():
    partitions = pytest.importorskip("snakemake_executor_plugin_slurm.partitions")
    example = REPO / "profiles" / "slurm" / "partitions.example.yaml"
    parsed = partitions.read_partition_file(example)
    names = {p.name for p in parsed}
    assert {"cpu", "gpu"} <= names
    logger = logging.getLogger("test")
    gpu_job = _Job("etsam_stage1", gpu=1, mem_mb=16000, runtime=120, cpus_per_task=4)
    cpu_job = _Job("normalize", mem_mb=4000, runtime=60, cpus_per_task=1)
    huge_gpu_job = _Job("etsam_stage1", gpu=8, mem_mb=16000)
    assert partitions.get_best_partition(parsed, gpu_job, logger) == "gpu"
    assert partitions.get_best_partition(parsed, cpu_job, logger) == "cpu"
    assert partitions.get_best_partition(parsed, huge_gpu_job, logger) is None


def _job_resources(dry_run_output: str) -> dict[str, set[str]]:
    """rule -> the `resources:` lines of its jobs in a dry run's output."""
    found: dict[str, set[str]] = {}
    for block in re.split(r"\n(?=rule |localrule )", dry_run_output):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and resources:
            found.setdefault(rule.group(1), set()).add(resources.group(1))
    return found


def test_slurm_profile_by_name_after_install(tmp_path):
    """`tomoseg profile install slurm ...` then `snakemake --profile slurm -n`, typed in a fresh clone."""
    clone, home = tmp_path / "clone", tmp_path / "home"
    for folder in ("config", "workflow"):
        shutil.copytree(REPO / folder, clone / folder)
    env = {k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"}
    env.update(HOME=str(home), PYTHONPATH=str(REPO / "src"))
    install = [sys.executable, "-m", "tomoseg", "profile", "install", "slurm"]
    site = ["--partition", "site_cpu", "--gpu-partition", "site_gpu", "--gpu-type", "site_model"]
    subprocess.run([*install, *site], cwd=clone, env=env, check=True, timeout=120)
    assert (home / ".config" / "snakemake" / "slurm" / "config.yaml").exists()
    proc = subprocess.run(
        [*snakemake_command(), "--profile", "slurm", "-n"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Using profile slurm" in proc.stdout + proc.stderr
    resources = _job_resources(proc.stdout)
    assert {"etsam_stage1", "etsam_stage2", "membrain", "tardis"} <= set(resources)  # the paper's methods
    for rule, lines in resources.items():
        for line in lines:
            partition = "slurm_partition=site_gpu" if rule in GPU_RULES else "slurm_partition=site_cpu"
            assert partition in line.split(", "), (rule, line)
            assert ("gpu_model=site_model" in line.split(", ")) == (rule in GPU_RULES), (rule, line)
