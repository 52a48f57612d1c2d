"""The execution profiles: Slurm routing of the GPU rules, the partition-selection example read by the
Slurm plugin's own code, and the workstation profile's GPU limit. (The Slurm profile runs on a real
cluster in test_slurm.py.)"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GPU_RULES = ("etsam_stage1", "etsam_stage2", "membrain", "tardis")


def load(path: str) -> dict:
    return yaml.safe_load((REPO / path).read_text())


def test_slurm_profile_routes_every_gpu_rule_to_a_gpu_partition():
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
