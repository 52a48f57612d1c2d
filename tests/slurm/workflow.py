"""Run tomoseg's workflow on the test cluster through the Slurm profile installed by name (as users
install it, with `tomoseg profile install slurm`), and collect the records that say where each job ran.

Three records, gathered independently:
- Snakemake's own output: which Slurm job id it submitted for which rule (and how often: retries);
- each job's own log: the run-context line of `tomoseg.core.runlog.log_to` ($SLURMD_NODENAME,
  $SLURM_JOB_ID, $CUDA_VISIBLE_DEVICES), written by the job itself on the node;
- Slurm's job-completion log: state, partition and node list of every job id.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tomoseg.core.layout import RUNS_COLUMNS
from tomoseg.core.profiles import SlurmSite, install_profile, set_yaml_key
from tomoseg.core.runlog import parse_run_context

from .cluster import CPU_NODE, GPU_NODE, GPU_TYPE, JobRecord, SlurmCluster

REPO = Path(__file__).resolve().parents[2]
CPU_PARTITION = "cpu"
GPU_PARTITION = "gpu"
_SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)")


def install_test_profile(config_home: Path, gpu_rules: tuple[str, ...]) -> dict:
    """Install the Slurm profile as users do (`tomoseg profile install slurm ...`) under `config_home`.

    The test cluster's site values go in through the install options: partition names, the GPU model,
    CPUs per GPU job (the test nodes have 2) and the status command of a cluster without an accounting
    database (squeue; MinJobAge is 600 s there). Then two keys only a test wants: a short first status
    poll and Slurm logs kept. Everything else (executor, retries, resources, rule routing) is the
    shipped profile. Snakemake finds it as `--profile slurm` with XDG_CONFIG_HOME=config_home.
    """
    site = SlurmSite(
        partition=CPU_PARTITION,
        gpu_partition=GPU_PARTITION,
        gpu_type=GPU_TYPE,
        gpu_cpus=2,
        status_command="squeue",
    )
    dest = install_profile("slurm", site, dest=config_home / "snakemake" / "slurm")
    text = (dest / "config.yaml").read_text()
    # first status poll 6 s after a success, then +10 s per poll without one: the jobs here
    # take ~12-22 s, so most are seen at the 2nd poll (22 s); 2 s measured slower (2, 14, 36 s)
    text = set_yaml_key(text, ("slurm-init-seconds-before-status-checks",), 6)
    text = set_yaml_key(text, ("slurm-keep-successful-logs",), True)
    (dest / "config.yaml").write_text(text)
    profile = yaml.safe_load(text)
    missing = [r for r in gpu_rules if r not in profile.get("set-resources", {})]
    if missing:
        raise AssertionError(f"{dest}: GPU rules {missing} are not routed in set-resources")
    return profile


def write_runs_sheet(path: Path, rows: list[dict]) -> None:
    """A runs sheet (TSV) with the schema's columns from row dicts (missing columns empty)."""
    lines = ["\t".join(RUNS_COLUMNS)]
    lines += ["\t".join(str(row.get(c, "")) for c in RUNS_COLUMNS) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def prepare_workdir(workdir: Path, config: dict, rows: list[dict]) -> Path:
    """A scratch working directory with the repository's configs, a runs sheet and `config` as smoke.yaml."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "config", workdir / "config", dirs_exist_ok=True)
    write_runs_sheet(workdir / "runs.tsv", rows)
    config = {**config, "runs": "runs.tsv"}
    configfile = workdir / "smoke.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    return configfile


@dataclass
class WorkflowRun:
    """One Snakemake invocation on the cluster and what it left behind."""

    workdir: Path
    returncode: int | None  # None: killed at the time limit (hung)
    output: str
    seconds: float
    # rule -> Slurm job ids Snakemake submitted for it (several when retried)
    submitted: dict[str, list[str]] = field(default_factory=dict)

    def job_rule(self) -> dict[str, str]:
        """Slurm job id -> rule, from Snakemake's submission messages."""
        return {job: rule for rule, jobs in self.submitted.items() for job in jobs}

    def run_contexts(self) -> list[dict[str, str]]:
        """Every run-context record the jobs wrote into their logs under results/logs/ (with `log`: its file)."""
        records = []
        for log in sorted((self.workdir / "results" / "logs").rglob("*.log")):
            for record in parse_run_context(log.read_text(errors="replace")):
                records.append({**record, "log": str(log.relative_to(self.workdir))})
        return records


@dataclass
class StartedRun:
    """A Snakemake process started by `start_workflow`."""

    workdir: Path
    proc: subprocess.Popen
    started: float
    timeout_s: float


def start_workflow(
    workdir: Path,
    config_home: Path,
    configfile: Path,
    targets: list[str] = (),
    timeout_s: float = 600,
) -> StartedRun:
    """Start `snakemake --profile slurm` (installed under `config_home`) in `workdir` (output to
    workdir/snakemake.out)."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(config_home))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    env.setdefault("OMP_NUM_THREADS", "1")
    argv = [
        sys.executable, "-m", "snakemake",
        *targets,  # before the options: --configfile takes several values
        "--profile", "slurm",
        "--snakefile", str(REPO / "workflow" / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(configfile),
    ]  # fmt: skip
    with open(workdir / "snakemake.out", "wb") as out:
        proc = subprocess.Popen(
            argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return StartedRun(workdir, proc, time.monotonic(), timeout_s)


def finish_workflows(*runs: StartedRun) -> list[WorkflowRun]:
    """Wait for runs started by `start_workflow`, timing each to its own exit; a run still going at
    its `timeout_s` is killed (its process group) and recorded as hung (returncode None). Slurm jobs
    it left behind end with the cluster."""
    ended: dict[int, tuple[int | None, float]] = {}
    while len(ended) < len(runs):
        for i, run in enumerate(runs):
            if i in ended:
                continue
            elapsed = time.monotonic() - run.started
            if run.proc.poll() is not None:
                ended[i] = (run.proc.returncode, elapsed)
            elif elapsed > run.timeout_s:
                os.killpg(run.proc.pid, signal.SIGKILL)
                run.proc.wait()
                ended[i] = (None, elapsed)
        time.sleep(0.5)
    results = []
    for i, run in enumerate(runs):
        output = (run.workdir / "snakemake.out").read_text(errors="replace")
        submitted: dict[str, list[str]] = defaultdict(list)
        for job_id, slurm_log in _SUBMITTED.findall(output):
            rule = next((p[len("rule_") :] for p in Path(slurm_log).parts if p.startswith("rule_")), "?")
            submitted[rule].append(job_id)
        returncode, seconds = ended[i]
        results.append(WorkflowRun(run.workdir, returncode, output, seconds, dict(submitted)))
    return results


def expected_node(rule: str, gpu_rules: tuple[str, ...]) -> str:
    return GPU_NODE if rule in gpu_rules else CPU_NODE


def placement_problems(run: WorkflowRun, cluster: SlurmCluster, gpu_rules: tuple[str, ...]) -> list[str]:
    """Every disagreement between where each job of `run` should have run and what the two records say.

    GPU rules must run on gpunode in the gpu partition with one GPU allocated (CUDA_VISIBLE_DEVICES set
    by Slurm), all other rules on cpunode without one. Checked per Slurm job id in the job-completion
    log and, per rule, in the jobs' own logs (whose job ids must be ones Snakemake submitted for it);
    GPU jobs that overlapped in time must have been given different GPUs.
    """
    problems = []
    jobs: dict[str, JobRecord] = cluster.jobs()
    job_rule = run.job_rule()
    for job_id, rule in sorted(job_rule.items(), key=lambda item: int(item[0])):
        node = expected_node(rule, gpu_rules)
        partition = GPU_PARTITION if node == GPU_NODE else CPU_PARTITION
        record = jobs.get(job_id)
        if record is None:
            problems.append(f"jobcomp: no record of Slurm job {job_id} ({rule})")
            continue
        if record.nodes != node or record.partition != partition:
            problems.append(
                f"jobcomp: job {job_id} ({rule}) ran on {record.nodes!r} in partition {record.partition!r}, "
                f"expected {node!r} in {partition!r}"
            )
    # The jobs' own records, matched to rules by the Slurm job id each record names (log paths are
    # the rules' business); a failed attempt's log is overwritten by the next attempt.
    by_job: dict[str, list[dict[str, str]]] = defaultdict(list)
    for record in run.run_contexts():
        job = record.get("SLURM_JOB_ID", "-")
        if job == "-":
            continue  # a local rule (not submitted to Slurm)
        if job not in job_rule:
            problems.append(f"job log: {record['log']} names Slurm job {job}, which Snakemake did not submit")
            continue
        by_job[job].append(record)
    gpu_jobs: list[tuple[str, str, str]] = []  # (Slurm job id, rule, CUDA_VISIBLE_DEVICES)
    for rule, job_ids in sorted(run.submitted.items()):
        node = expected_node(rule, gpu_rules)
        own = [record for job in job_ids for record in by_job.get(job, [])]
        if not own:
            problems.append(
                f"job log: no run-context line from Slurm jobs {job_ids} of rule {rule} in any log under "
                "results/logs/ (does its script call tomoseg.core.runlog.log_to?)"
            )
        for c in own:
            job = c["SLURM_JOB_ID"]
            if c.get("SLURMD_NODENAME") != node:
                problems.append(
                    f"job log: {rule} job {job} says SLURMD_NODENAME={c.get('SLURMD_NODENAME')}, expected {node}"
                )
            gpus = c.get("CUDA_VISIBLE_DEVICES")
            if node == GPU_NODE and gpus in (None, "-"):
                problems.append(
                    f"job log: {rule} job {job} got no GPU from Slurm (CUDA_VISIBLE_DEVICES unset)"
                )
            if node == CPU_NODE and gpus not in (None, "-"):
                problems.append(f"job log: {rule} job {job} on the CPU node sees CUDA_VISIBLE_DEVICES={gpus}")
            if node == GPU_NODE and gpus not in (None, "-"):
                if "," in gpus:
                    problems.append(f"job log: {rule} job {job} got several GPUs: {gpus}")
                gpu_jobs.append((job, rule, gpus))
    # GPU jobs that ran at the same time (job-completion log) must have been given different GPUs.
    for i, (job_a, rule_a, gpu_a) in enumerate(gpu_jobs):
        for job_b, rule_b, gpu_b in gpu_jobs[i + 1 :]:
            a, b = jobs.get(job_a), jobs.get(job_b)
            if a and b and a.start < b.end and b.start < a.end and gpu_a == gpu_b:
                problems.append(
                    f"GPU {gpu_a} shared: {rule_a} job {job_a} ({a.start}..{a.end}) and "
                    f"{rule_b} job {job_b} ({b.start}..{b.end}) ran at the same time on it"
                )
    return problems
