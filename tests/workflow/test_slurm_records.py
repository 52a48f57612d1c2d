"""The placement checks of the Slurm test catch misplaced jobs (no cluster needed: records written here).

Guards tests/workflow/test_slurm.py against passing vacuously: each kind of misplacement it must detect is
written into a job-completion log and job logs in the formats Slurm and tomoseg.core.runlog produce."""

from __future__ import annotations

from slurm.cluster import SlurmCluster, parse_jobcomp
from slurm.workflow import WorkflowRun, placement_problems

GPU_RULES = ("etsam_stage1", "membrain")


def jobcomp_line(job: str, partition: str, node: str, start: str, end: str, state: str = "COMPLETED") -> str:
    return (
        f"JobId={job} UserId=root(0) GroupId=root(0) Name=3f1c JobState={state} Partition={partition} "
        f"TimeLimit=60 StartTime=2026-01-01T00:00:{start} EndTime=2026-01-01T00:00:{end} NodeList={node} "
        "NodeCnt=1 ProcCnt=1 WorkDir=/x ReservationName= Tres=cpu=1,mem=4000M,node=1,billing=1 Account= "
        "QOS= WcKey= Cluster=unknown SubmitTime=2026-01-01T00:00:00 EligibleTime=2026-01-01T00:00:00 "
        "DerivedExitCode=0:0 ExitCode=0:0"
    )


def write_records(
    tmp_path, jobs: list[tuple[str, str, str, str, str, str]]
) -> tuple[WorkflowRun, SlurmCluster]:
    """jobs: (Slurm id, rule, node, CUDA_VISIBLE_DEVICES, start s, end s) -> a finished run's records."""
    cluster = SlurmCluster(tmp_path / "cluster")  # never started: only its job-completion log is read
    cluster.scratch.mkdir()
    lines, submitted = [], {}
    for job, rule, node, gpus, start, end in jobs:
        lines.append(jobcomp_line(job, "gpu" if node == "gpunode" else "cpu", node, start, end))
        submitted.setdefault(rule, []).append(job)
        log = tmp_path / "work" / "results" / "logs" / rule / f"t{job}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(
            "2026-01-01 00:00:01,000 INFO tomoseg.core.runlog: run context: "
            f"host=vm SLURMD_NODENAME={node} SLURM_JOB_ID={job} CUDA_VISIBLE_DEVICES={gpus}\n"
        )
    cluster.jobcomp_log.write_text("\n".join(lines) + "\n")
    return WorkflowRun(tmp_path / "work", 0, "", 1.0, submitted), cluster


def test_correct_placement_passes(tmp_path):
    run, cluster = write_records(
        tmp_path,
        [
            ("1", "normalize", "cpunode", "-", "01", "05"),
            ("2", "etsam_stage1", "gpunode", "0", "06", "20"),
            ("3", "membrain", "gpunode", "1", "06", "20"),  # at the same time, on the other GPU
        ],
    )
    assert placement_problems(run, cluster, GPU_RULES) == []
    assert parse_jobcomp(cluster.jobcomp_log)["2"].nodes == "gpunode"


def test_misplacements_are_reported(tmp_path):
    run, cluster = write_records(
        tmp_path,
        [
            ("1", "normalize", "gpunode", "0", "01", "05"),  # CPU rule on the GPU node
            ("2", "etsam_stage1", "cpunode", "-", "06", "20"),  # GPU rule on the CPU node, no GPU
            ("3", "membrain", "gpunode", "-", "06", "20"),  # right node, but no GPU allocated
            ("4", "membrain", "gpunode", "0", "21", "30"),
            ("5", "etsam_stage1", "gpunode", "0", "25", "35"),  # overlaps job 4 on the same GPU
        ],
    )
    problems = "\n".join(placement_problems(run, cluster, GPU_RULES))
    assert "job 1 (normalize) ran on 'gpunode'" in problems
    assert "normalize job 1 says SLURMD_NODENAME=gpunode" in problems
    assert "job 2 (etsam_stage1) ran on 'cpunode'" in problems
    assert "etsam_stage1 job 2 says SLURMD_NODENAME=cpunode" in problems
    assert "membrain job 3 got no GPU" in problems
    assert "GPU 0 shared" in problems


def test_missing_job_log_and_jobcomp_record_are_reported(tmp_path):
    run, cluster = write_records(tmp_path, [("1", "normalize", "cpunode", "-", "01", "05")])
    run.submitted["tardis"] = ["7"]  # submitted, but neither Slurm nor the job left a record
    problems = "\n".join(placement_problems(run, cluster, GPU_RULES + ("tardis",)))
    assert "no record of Slurm job 7 (tardis)" in problems
    assert "no run-context line from Slurm jobs ['7'] of rule tardis" in problems


def test_records_are_matched_by_job_id_not_log_folder(tmp_path):
    run, cluster = write_records(tmp_path, [("1", "evaluate_scored", "cpunode", "-", "01", "05")])
    logs = tmp_path / "work" / "results" / "logs"
    (logs / "evaluate_scored").rename(logs / "evaluate")  # a rule logging outside logs/<rule>/
    stray = logs / "membrain" / "old.log"
    stray.parent.mkdir()
    stray.write_text("run context: host=vm SLURMD_NODENAME=gpunode SLURM_JOB_ID=99 CUDA_VISIBLE_DEVICES=0\n")
    problems = placement_problems(run, cluster, GPU_RULES)
    assert problems == [
        "job log: results/logs/membrain/old.log names Slurm job 99, which Snakemake did not submit"
    ]
