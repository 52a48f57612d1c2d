"""The workflow on a real single-host Slurm cluster, through the Slurm profile installed by name
(`tomoseg profile install slurm` with the test cluster's partitions, then `snakemake --profile slurm`).

Starts munge, slurmctld and two slurmd (cpunode; gpunode with two fake GPUs), runs the demo workflow
on one small phantom with every method (all four GPU rules and the CPU rules) and, at the same time,
a second run whose only tomogram is a corrupt file. Asserts from Snakemake's submissions, the jobs'
own logs and Slurm's job-completion log that GPU rules ran on gpunode with one GPU each (never one
GPU for two jobs at once) and everything else on cpunode, and that the broken job was reported
failed after its retries instead of hanging.

Needs root and Debian's slurmctld, slurmd, slurm-client and munge. In CI (CI set) their absence is a
failure; elsewhere the test is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from slurm.cluster import SlurmCluster, missing_requirements
from slurm.workflow import (
    REPO,
    finish_workflows,
    install_test_profile,
    placement_problems,
    prepare_workdir,
    start_workflow,
)

pytestmark = pytest.mark.slurm

# The rules that must run on a GPU node, all four of them in every run of this test.
GPU_RULES = ("etsam_stage1", "etsam_stage2", "membrain", "tardis")
SMOKE_SHAPE = [16, 64, 64]
RUN_TIME_LIMIT_S = 600  # the smoke run; measured 3.2-3.8 min (benchmarks/slurm-test-time.md), CI has 30
# A job that fails every attempt: 1 + retries attempts of ~15-40 s each (queueing, Snakemake's start
# inside the job, status polling), then up to 180 s until Snakemake exits: the plugin's status-check
# interval grows by 10 s per poll without a success (capped at 180 s) and shutdown waits for it.
PER_ATTEMPT_LIMIT_S = 90
SHUTDOWN_LIMIT_S = 180


def _require_cluster() -> None:
    missing = missing_requirements()
    if not missing:
        return
    message = f"a real Slurm test cluster needs: {', '.join(missing)}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must run this test; see .ci/run)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _require_cluster()
    with SlurmCluster(tmp_path_factory.mktemp("slurm-cluster")) as running:
        yield running


def smoke_config() -> dict:
    """config/demo/ci.yaml (every method) on one 16x64x64 phantom."""
    config = yaml.safe_load((REPO / "config" / "demo" / "ci.yaml").read_text())
    config["phantom"] = {**config["phantom"], "shape": SMOKE_SHAPE}
    config["splits"] = ["test"]
    return config


def test_workflow_places_gpu_rules_on_gpu_node(cluster, tmp_path):
    config_home = tmp_path / "config-home"  # XDG_CONFIG_HOME: `--profile slurm` is found there
    retries = install_test_profile(config_home, GPU_RULES)["retries"]

    good = tmp_path / "good"
    good_config = prepare_workdir(
        good,
        smoke_config(),
        [{"tomo": "phantom-001", "source": "phantom", "run_id": 1, "truth": "phantom", "split": "test"}],
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.mrc").write_bytes(b"<html>404 Not Found</html>\n" * 40)
    bad_config = prepare_workdir(
        bad,
        smoke_config(),
        [
            {
                "tomo": "broken",
                "source": "local",
                "path": str(bad / "broken.mrc"),
                "truth": "none",
                "split": "test",
            }
        ],
    )
    # Both at once: the failing run's retries overlap the smoke run, so they cost no extra wall time.
    bad_limit = (1 + retries) * PER_ATTEMPT_LIMIT_S + SHUTDOWN_LIMIT_S
    smoke, failing = finish_workflows(
        start_workflow(good, config_home, good_config, timeout_s=RUN_TIME_LIMIT_S),
        start_workflow(
            bad, config_home, bad_config, ["results/data/broken/normalized.mrc"], timeout_s=bad_limit
        ),
    )
    print(f"smoke run {smoke.seconds:.0f} s, failing run {failing.seconds:.0f} s")  # noqa: T201

    # The smoke run finished, ran all four GPU rules, and every job ran where it belongs.
    assert smoke.returncode is not None, f"smoke run hung (> {RUN_TIME_LIMIT_S} s):\n{smoke.output[-5000:]}"
    assert smoke.returncode == 0, f"smoke run failed:\n{smoke.output[-8000:]}\n{cluster.diagnostics()}"
    missing = [r for r in GPU_RULES if r not in smoke.submitted]
    assert not missing, f"GPU rules {missing} were not in the run; submitted: {sorted(smoke.submitted)}"
    cpu_missing = {"phantom", "normalize"} - set(smoke.submitted)
    assert not cpu_missing, (
        f"CPU rules {cpu_missing} were not in the run; submitted: {sorted(smoke.submitted)}"
    )
    problems = placement_problems(smoke, cluster, GPU_RULES)
    assert not problems, "\n".join(problems)

    # The broken input failed its job every attempt and Snakemake said so, within the time limit.
    assert failing.returncode is not None, f"failing run hung (> {bad_limit} s):\n{failing.output[-5000:]}"
    assert failing.returncode != 0
    assert "Error in rule import_local_tomogram" in failing.output, failing.output[-5000:]
    attempts = failing.submitted.get("import_local_tomogram", [])
    assert len(attempts) == 1 + retries, f"expected {1 + retries} attempts, Snakemake submitted {attempts}"
    states = {job: cluster.jobs()[job].state for job in attempts if job in cluster.jobs()}
    assert states == dict.fromkeys(attempts, "FAILED"), f"Slurm's record of the attempts: {states}"
    assert not (bad / "results" / "data" / "broken" / "tomogram.mrc").exists()
    assert "normalize" not in failing.submitted


def test_daemons_survived_the_runs(cluster):
    """The cluster's daemons are still the ones the fixture started (none died during the runs)."""
    dead = {name: proc.returncode for name, proc in cluster.procs.items() if proc.poll() is not None}
    assert not dead, f"daemons exited: {dead}\n{cluster.diagnostics()}"
    assert Path(cluster.jobcomp_log).exists()
