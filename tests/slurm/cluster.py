"""A real single-host Slurm cluster for tests: munge, slurmctld and two slurmd (cpunode, gpunode).

gpunode carries fake GPUs (gres `gpu:fakegpu:N`, each backed by a device file such as /dev/null), so
jobs asking for a GPU are placed there by Slurm's own scheduler, which gives each its own GPU index
in CUDA_VISIBLE_DEVICES. Every daemon this module starts runs in the foreground as
our child; it is stopped by its process id when the context ends, also on failure. Needs root and
Debian's `slurmctld slurmd slurm-client munge` packages; facts and pitfalls: shared notes
`slurm-ci.md`. Job status is read with `squeue` (no slurmdbd/MariaDB): `MinJobAge` is set high so
finished jobs stay visible to it.

Run by hand: `python tests/slurm/cluster.py` brings a cluster up, prints `sinfo` and waits for Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SLURM_CONF = Path("/etc/slurm/slurm.conf")  # the jobstep's inner srun drops SLURM_CONF: must live here
GRES_CONF = Path("/etc/slurm/gres.conf")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
REQUIRED_PROGRAMS = (
    "munged",
    "munge",
    "slurmctld",
    "slurmd",
    "sbatch",
    "squeue",
    "sinfo",
    "scontrol",
    "setpriv",
)
CPU_NODE = "cpunode"
GPU_NODE = "gpunode"
GPU_TYPE = "fakegpu"
CONTROLLER_PORT = 6817
NODE_PORTS = {CPU_NODE: 6818, GPU_NODE: 6820}
# One existing file per fake GPU: gres.conf needs File= (without it the node is INVAL).
FAKE_GPU_FILES = ("/dev/null", "/dev/zero", "/dev/full")


def missing_requirements() -> list[str]:
    """What this machine lacks to run the cluster (empty when it can): root and the Debian programs."""
    missing = [] if os.geteuid() == 0 else ["root (euid 0)"]
    missing += [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None]
    return missing


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def slurm_conf(scratch: Path, node_cpus: int, node_memory_mb: int, gpus: int) -> str:
    """slurm.conf of the two-node cluster, with state, spool, logs and pid files under `scratch`."""
    host = socket.gethostname().split(".")[0]
    common = (
        f"NodeAddr=127.0.0.1 NodeHostname={host} CPUs={node_cpus} RealMemory={node_memory_mb} State=UNKNOWN"
    )
    return f"""\
# Written by tomoseg tests/slurm/cluster.py for a throw-away test cluster; restored afterwards.
ClusterName=tomoseg-test
SlurmctldHost=localhost
SlurmctldPort={CONTROLLER_PORT}
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={scratch / "jobcomp.log"}
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmdParameters=config_overrides
GresTypes=gpu
MinJobAge=600
SchedulerParameters=sched_interval=5
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
StateSaveLocation={scratch / "state"}
SlurmdSpoolDir={scratch / "spool" / "%n"}
SlurmctldPidFile={scratch / "slurmctld.pid"}
SlurmdPidFile={scratch / "slurmd.%n.pid"}
SlurmctldLogFile={scratch / "slurmctld.log"}
SlurmdLogFile={scratch / "slurmd.%n.log"}
SlurmctldDebug=info
SlurmdDebug=info
NodeName={CPU_NODE} Port={NODE_PORTS[CPU_NODE]} {common}
NodeName={GPU_NODE} Port={NODE_PORTS[GPU_NODE]} {common} Gres=gpu:{GPU_TYPE}:{gpus}
PartitionName=cpu Nodes={CPU_NODE} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={GPU_NODE} Default=NO MaxTime=INFINITE State=UP
"""


def gres_conf(gpus: int) -> str:
    """gres.conf: `gpus` fake GPUs on gpunode, one device file each."""
    lines = [
        f"# Written by tomoseg tests/slurm/cluster.py: {gpus} fake GPU(s) on {GPU_NODE}.",
        "AutoDetect=off",
    ]
    lines += [f"NodeName={GPU_NODE} Name=gpu Type={GPU_TYPE} File={f}" for f in FAKE_GPU_FILES[:gpus]]
    return "\n".join(lines) + "\n"


@dataclass
class JobRecord:
    """One line of Slurm's job-completion log (jobcomp/filetxt)."""

    job_id: str
    name: str
    state: str
    partition: str
    nodes: str
    exit_code: str
    start: str  # ISO timestamps, second resolution
    end: str
    fields: dict[str, str] = field(repr=False)


def parse_jobcomp(path: Path) -> dict[str, JobRecord]:
    """Job-completion log -> {job id: record}; a job logged twice (requeue) keeps its last line."""
    records: dict[str, JobRecord] = {}
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "JobId" not in fields:
            continue
        records[fields["JobId"]] = JobRecord(
            job_id=fields["JobId"],
            name=fields.get("Name", ""),
            state=fields.get("JobState", ""),
            partition=fields.get("Partition", ""),
            nodes=fields.get("NodeList", ""),
            exit_code=fields.get("ExitCode", ""),
            start=fields.get("StartTime", ""),
            end=fields.get("EndTime", ""),
            fields=fields,
        )
    return records


class SlurmCluster:
    """Context manager: bring the test cluster up in `scratch`, yield it, stop what it started by PID."""

    def __init__(
        self,
        scratch: Path,
        node_cpus: int = 4,
        node_memory_mb: int = 64000,
        gpus: int = 2,
        start_timeout_s: float = 60,
    ):
        if not 1 <= gpus <= len(FAKE_GPU_FILES):
            raise ValueError(f"gpus must be 1..{len(FAKE_GPU_FILES)}")
        self.scratch = Path(scratch).resolve()
        self.node_cpus = node_cpus  # declared, not real: jobs may oversubscribe the host's cores
        self.gpus = gpus
        self.node_memory_mb = node_memory_mb  # fake (not enforced: no cgroups); large so rules' mem_mb fit
        self.start_timeout_s = start_timeout_s
        self.procs: dict[str, subprocess.Popen] = {}
        self._saved_configs: dict[Path, bytes | None] = {}

    @property
    def jobcomp_log(self) -> Path:
        return self.scratch / "jobcomp.log"

    def jobs(self) -> dict[str, JobRecord]:
        """Finished jobs, from Slurm's job-completion log."""
        return parse_jobcomp(self.jobcomp_log)

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- start -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Write the configs, start munged (unless one answers already), slurmctld and both slurmd."""
        missing = missing_requirements()
        if missing:
            raise RuntimeError(f"cannot start a Slurm test cluster, missing: {', '.join(missing)}")
        busy = [p for p in (CONTROLLER_PORT, *NODE_PORTS.values()) if _port_in_use(p)]
        if busy:
            raise RuntimeError(f"ports {busy} already in use: is another Slurm (test) cluster running?")
        for sub in ("state", *(f"spool/{node}" for node in NODE_PORTS)):
            (self.scratch / sub).mkdir(parents=True, exist_ok=True)
        self._write_config(
            SLURM_CONF, slurm_conf(self.scratch, self.node_cpus, self.node_memory_mb, self.gpus)
        )
        self._write_config(GRES_CONF, gres_conf(self.gpus))
        self._start_munge()
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        for node in (CPU_NODE, GPU_NODE):
            self._spawn(f"slurmd-{node}", ["slurmd", "-D", "-N", node])
        self._wait_idle()

    def _write_config(self, path: Path, text: str) -> None:
        if path not in self._saved_configs:
            self._saved_configs[path] = path.read_bytes() if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def _munge_answers(self) -> bool:
        try:
            cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
            if cred.returncode != 0:
                return False
            return (
                subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, timeout=5).returncode == 0
            )
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _start_munge(self) -> None:
        if self._munge_answers():
            log.info("using the munged that is already running")
            return
        if not MUNGE_KEY.exists():
            subprocess.run(["mungekey", "--create", "--keyfile", str(MUNGE_KEY)], check=True)
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o400)
        for d in (MUNGE_SOCKET.parent, Path("/var/lib/munge"), Path("/var/log/munge")):
            d.mkdir(parents=True, exist_ok=True)
            shutil.chown(d, "munge", "munge")
        self._spawn(
            "munged",
            ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "munged", "--foreground"],
        )
        self._wait(self._munge_answers, 15, "munged to answer")

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.scratch / f"{name}.out", "wb")
        with out:
            self.procs[name] = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        log.info("started %s (pid %d)", name, self.procs[name].pid)

    def node_states(self) -> dict[str, str]:
        """{node: state} as `sinfo` reports it (empty when slurmctld does not answer)."""
        try:
            out = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, timeout=10
            ).stdout
        except subprocess.TimeoutExpired:
            return {}
        return dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)

    def _wait_idle(self) -> None:
        def ready() -> bool:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.diagnostics()}")
            states = self.node_states()
            return all(states.get(n) == "idle" for n in (CPU_NODE, GPU_NODE))

        self._wait(ready, self.start_timeout_s, "both nodes idle")

    def _wait(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"timed out after {timeout_s:.0f} s waiting for {what}\n{self.diagnostics()}"
                )
            time.sleep(0.5)

    def diagnostics(self) -> str:
        """The tail of every daemon log and `sinfo`, for failure messages."""
        parts = [f"node states: {self.node_states()}"]
        for f in sorted(self.scratch.glob("*.log")) + sorted(self.scratch.glob("*.out")):
            lines = f.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {f.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    # -- stop --------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the daemons this object started, by their PIDs (slurmd first), and restore the configs."""
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                log.info("stopping %s (pid %d)", name, proc.pid)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()
        for path, old in self._saved_configs.items():
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(old)
        self._saved_configs.clear()


def main() -> None:
    """Bring a cluster up in ./slurm-scratch (or $1), print `sinfo`, wait for Ctrl-C/SIGTERM, stop it."""
    import sys

    logging.basicConfig(level=logging.INFO)
    scratch = Path(sys.argv[1] if len(sys.argv) > 1 else "slurm-scratch")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill PID` also stops the daemons
    with SlurmCluster(scratch) as cluster:
        subprocess.run(["sinfo", "-N", "-l"], check=False)
        print(f"cluster up; daemons: { {n: p.pid for n, p in cluster.procs.items()} }; Ctrl-C stops it")  # noqa: T201
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
