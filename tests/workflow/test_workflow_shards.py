"""Sharded planning (docs/scaling.md) through the real workflow: the same per-run files as one job per run,
a killed shard resumes without redoing finished steps, one bad run neither stops its shard nor is forgotten."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from snakemake_helpers import REPO, make_workdir, run_snakemake, snakemake_command

from tomoseg.core.io import read_json, read_volume, write_volume

pytestmark = pytest.mark.workflow  # runs Snakemake: left out of `make check`

HEADER = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"
PHANTOMS = HEADER + "".join(f"phantom-00{i}\tphantom\t\t{i}\t\t\t\tphantom\ttest\n" for i in (1, 2))
METHODS = ["etsam", "etsam_stage1", "etsam_postprocessed"]
SHARDED = {"above": 0, "size": 1}
METRICS = ("dice", "iou", "precision", "recall", "auprc")


def workdir_with(tmp_path, name, **overrides):
    # half the CI demo's slices: the test is about where files land, not about the model
    phantom = {"shape": [16, 128, 128], "voxel_size": 13.48, "snr": 0.5}
    workdir = make_workdir(tmp_path / name, methods=METHODS, phantom=phantom, **overrides)
    (workdir / "config" / "demo" / "runs_ci.tsv").write_text(PHANTOMS)
    return workdir


def start_snakemake(workdir):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    command = [
        *snakemake_command(),
        "--snakefile",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "1",
    ]
    return subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory):
    """The CI demo's ETSAM methods on two phantoms, one job per run and sharded (killed once midway)."""
    tmp = tmp_path_factory.mktemp("shards")
    plain = workdir_with(tmp, "plain")
    run_snakemake(plain, "--cores", "1")
    sharded = workdir_with(tmp, "sharded", shards=SHARDED)
    # Kill the whole sharded run (kill -9, as a dying node would) once the first run's Stage 1 is done.
    proc = start_snakemake(sharded)
    first_done = sharded / "results/shards/done/etsam_stage1/phantom-001.json"
    deadline = time.monotonic() + 600
    while not first_done.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first_done.exists(), "the sharded run never finished a Stage 1"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = first_done.stat().st_mtime_ns
    run_snakemake(sharded, "--unlock")
    run_snakemake(sharded, "--cores", "1")
    return plain, sharded, done_before


def test_sharded_jobs_write_the_same_per_run_files_as_one_job_per_run(both_runs):
    plain, sharded, _ = both_runs
    for tomo in ("phantom-001", "phantom-002"):
        for path in (
            "data/{t}/normalized.mrc",
            "etsam/{t}/stage1_logits.mrc",
            "etsam/{t}/mask.mrc",
            "etsam/{t}/mask_postprocessed.mrc",
        ):
            a, a_voxel = read_volume(plain / "results" / path.format(t=tomo))
            b, b_voxel = read_volume(sharded / "results" / path.format(t=tomo))
            np.testing.assert_array_equal(a, b, err_msg=path.format(t=tomo))
            assert a_voxel == b_voxel
        for method in METHODS:
            a = read_json(plain / f"results/metrics/{method}/{tomo}.json")
            b = read_json(sharded / f"results/metrics/{method}/{tomo}.json")
            assert {k: a[k] for k in METRICS if k in a} == {k: b[k] for k in METRICS if k in b}
            assert "dice" in b
            # plane-wise and theta-wise metrics (on in the CI config) come through the shard jobs' params
            for key in ("plane_wise", "theta_wise"):
                assert key in b and json.dumps(a[key]) == json.dumps(b[key]), key
        theta = f"theta/{tomo}/groundtruth_theta.mrc"
        np.testing.assert_array_equal(
            read_volume(plain / "results" / theta)[0], read_volume(sharded / "results" / theta)[0]
        )
        # per-run logs and benchmark records where the per-run rules put them
        for rule in ("normalize", "etsam_stage1", "etsam_stage2", "postprocess"):
            assert (sharded / f"results/logs/{rule}/{tomo}.log").exists(), rule
        assert float((sharded / f"results/benchmarks/etsam_stage1/{tomo}.tsv").read_text().split()[2]) > 0
        assert (sharded / f"results/report/tomograms/{tomo}.html").exists()
    assert (plain / "results/tables/table1.csv").read_text() == (
        sharded / "results/tables/table1.csv"
    ).read_text()
    # one job per shard and stage: 2 runs in 2 shards of one; nothing listed as failed
    assert sorted(p.name for p in (sharded / "results/shards/etsam").glob("*.json")) == [
        "s00000.json",
        "s00001.json",
    ]
    assert (sharded / "results/shards/status.tsv").read_text().count("\n") == 1
    assert not (plain / "results/shards").exists()


def test_a_killed_shard_resumes_without_redoing_finished_steps(both_runs):
    _, sharded, done_before = both_runs
    record = read_json(sharded / "results/shards/etsam/s00000.json")
    assert record["runs"]["phantom-001"]["steps"]["etsam_stage1"] == "done before"
    assert record["runs"]["phantom-001"]["steps"]["etsam_stage2"].startswith("ran in")
    assert (sharded / "results/shards/done/etsam_stage1/phantom-001.json").stat().st_mtime_ns == done_before
    # and a second invocation has nothing to do
    proc = run_snakemake(sharded, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_a_deleted_per_run_output_is_remade_by_the_next_invocation(both_runs):
    """Issue 21, item 4: on 41766b8 Snakemake said "Nothing to be done" and the mask stayed missing."""
    _, sharded, _ = both_runs
    mask = sharded / "results/etsam/phantom-002/mask.mrc"
    expected, _ = read_volume(mask)
    mask.unlink()
    proc = run_snakemake(sharded, "-n")
    assert (
        "Nothing to be done" not in proc.stdout + proc.stderr and "shard_etsam" in proc.stdout + proc.stderr
    )
    run_snakemake(sharded, "--cores", "1")
    remade, _ = read_volume(mask)
    np.testing.assert_array_equal(remade, expected)
    steps = read_json(sharded / "results/shards/etsam/s00001.json")["runs"]["phantom-002"]["steps"]
    assert steps["etsam_stage1"] == "done before" and steps["etsam_stage2"].startswith("ran in")


def test_a_bad_run_fails_alone_and_is_retried_by_the_next_invocation(tmp_path):
    write_volume(
        tmp_path / "good.mrc", np.random.default_rng(1).normal(size=(6, 24, 20)).astype(np.float32), 7.0
    )
    (tmp_path / "broken.mrc").write_text("<html>Not Found</html>")
    workdir = make_workdir(tmp_path, methods=[], shards={"above": 0, "size": 3})
    (workdir / "config" / "demo" / "runs_ci.tsv").write_text(
        HEADER
        + "phantom-001\tphantom\t\t1\t\t\t\tphantom\ttest\n"
        + f"broken\tlocal\t\t\t\t{tmp_path / 'broken.mrc'}\t\tnone\ttest\n"
        + f"good\tlocal\t\t\t\t{tmp_path / 'good.mrc'}\t\tnone\ttest\n"
    )
    proc = run_snakemake(workdir, "--cores", "1", check=False)
    assert proc.returncode != 0, "a strict run must end non-zero when a run failed"
    results = workdir / "results"
    data = read_json(results / "shards/data/s00000.json")
    assert data["failed"] == ["broken"] and data["runs"]["good"]["status"] == "ok"
    assert "not an MRC file" in data["runs"]["broken"]["reason"]
    assert "not an MRC file" in (results / "logs/import_local_tomogram/broken.log").read_text()
    normalize = read_json(results / "shards/normalize/s00000.json")
    assert normalize["blocked"] == ["broken"]
    assert (results / "data/good/normalized.mrc").exists() and (
        results / "data/phantom-001/normalized.mrc"
    ).exists()
    status_log = (results / "logs/shards/status.log").read_text()
    assert "tomo=broken" in status_log and "2 of 6 run-stages failed or were blocked" in status_log, (
        status_log
    )
    # the file is fixed: the next invocation retries exactly the failed run
    write_volume(
        tmp_path / "broken.mrc", np.random.default_rng(2).normal(size=(6, 24, 20)).astype(np.float32), 7.0
    )
    run_snakemake(workdir, "--cores", "1")
    data = read_json(results / "shards/data/s00000.json")
    assert data["failed"] == [] and data["runs"]["good"]["steps"] == {"import_local_tomogram": "done before"}
    assert data["runs"]["broken"]["steps"]["import_local_tomogram"].startswith("ran in")
    assert (results / "data/broken/normalized.mrc").exists()
    assert (results / "shards/status.tsv").read_text().count("\n") == 1


def test_sharded_planning_refuses_what_it_does_not_cover(tmp_path):
    workdir = make_workdir(tmp_path, methods=["etsam", "etsam_upstream"], shards=SHARDED)
    proc = run_snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "planned in shards" in output and "etsam_upstream" in output


def test_below_the_threshold_every_run_is_its_own_job(tmp_path):
    workdir = make_workdir(tmp_path, methods=METHODS, shards={"above": 2, "size": 2})
    proc = run_snakemake(workdir, "-n", "--quiet", "rules")
    counts = dict(
        line.split()[:2]
        for line in proc.stdout.splitlines()
        if line.split()[-1:] and line.split()[-1].isdigit()
    )
    assert counts.get("etsam_stage1") == "2" and "shard_etsam" not in counts, json.dumps(counts)
