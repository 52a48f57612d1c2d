"""Planning cost of the workflow against the number of runs: `snakemake -n` of the default config.

For each source tree and each N, a scratch working directory gets the tree's `config/` and a runs sheet
of N made-up CryoET Data Portal rows (source cdp, truth cdp, split test); then `snakemake -n` of the
tree's Snakefile runs with the network off (a fresh network namespace when root, and a socket guard
that refuses and records every non-Unix connect). Recorded per point: wall time, user and system CPU
of the process tree, peak RSS of the process tree (sampled every 0.1 s, and the largest single
process from wait4), planned jobs (total and per rule, from Snakemake's job stats), the load average
before and after. Points are interleaved tree by tree (old N, new N, old N', ...) so that both trees
see the same machine load.

Run (from the repository root):

    PYTHONPATH=src /work/main/.venv/bin/python benchmarks/dag_scaling.py \
        --tree old=/work/base --tree new=. --runs 100 1000 3000 10000 --timeout 600

Results are appended as one session to benchmarks/results/dag_scaling.json, and
benchmarks/results/dag_scaling.md is rewritten from every session in that file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from tomoseg.testing.offline import offline_env

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "dag_scaling"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

HEADER = ["tomo", "source", "dataset_id", "run_id", "tomogram_id", "path", "truth_path", "truth", "split"]


def runs_sheet(path: Path, n: int) -> None:
    """N made-up portal rows: 100 runs per made-up dataset, every row with portal ground truth, split test."""
    lines = ["\t".join(HEADER)]
    for i in range(n):
        dataset, run = 20000 + i // 100, 100000 + i
        lines.append(
            "\t".join([f"cdp-{dataset}-{run}", "cdp", str(dataset), str(run), "", "", "", "cdp", "test"])
        )
    path.write_text("\n".join(lines) + "\n")


def snakefile(tree: Path) -> Path:
    """The tree's Snakefile: workflow/Snakefile (distribution layout), else the old one at the root."""
    for candidate in (tree / "workflow" / "Snakefile", tree / "Snakefile"):
        if candidate.exists():
            return candidate
    raise SystemExit(f"{tree}: no Snakefile")


def git_commit(tree: Path) -> str:
    """The tree's commit (+ '-dirty' when it has uncommitted changes)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")


class TreeSampler(threading.Thread):
    """Peak summed RSS of a process and all its descendants, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            total = 0
            try:
                for proc in [root, *root.children(recursive=True)]:
                    try:
                        total += proc.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, total)
            self.stop.wait(self.interval)


def job_stats(text: str) -> dict[str, int]:
    """Snakemake's job stats table of the dry run (rule -> count, and 'total')."""
    stats: dict[str, int] = {}
    block = text.rsplit("Job stats:", 1)
    if len(block) < 2:
        return stats
    for line in block[1].splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)\s*$", line.strip())
        if not match:
            if stats:
                break
            continue
        stats[match.group(1)] = int(match.group(2))
    return stats


def measure(tree: Path, n: int, timeout: float, scratch: Path) -> dict[str, Any]:
    """One dry run of `tree` with N runs; wall, CPU, peak RSS, jobs, load."""
    work = scratch / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(tree / "config", work / "config")
    runs_sheet(work / "config" / "bench_runs.tsv", n)
    env, attempts = offline_env(scratch, tree / "src")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [
        str(SNAKEMAKE),
        "-n",
        "--snakefile",
        str(snakefile(tree)),
        "--directory",
        str(work),
        "--configfile",
        str(work / "config" / "config.yaml"),
        "--config",
        "runs=config/bench_runs.tsv",
    ]
    if os.geteuid() == 0 and shutil.which("unshare"):
        cmd = ["unshare", "-n", *cmd]
    out_path = scratch / "snakemake.out"
    load_before = os.getloadavg()
    with open(out_path, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        status = None
        deadline = start + timeout
        signal.signal(signal.SIGTERM, lambda *_: (os.killpg(proc.pid, signal.SIGKILL), sys.exit(143)))
        while True:
            pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, 9)
                pid, wait_status, usage = os.wait4(proc.pid, 0)
                status = "timeout"
                break
            time.sleep(0.05)
        wall = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(wait_status)
    text = out_path.read_text(errors="replace")
    stats = job_stats(text)
    if status is None:
        status = "ok" if proc.returncode == 0 and stats else f"failed (exit {proc.returncode})"
    record = {
        "runs": n,
        "status": status,
        "jobs": stats.get("total"),
        "job_stats": stats,
        "wall_s": round(wall, 2),
        "user_s": round(usage.ru_utime, 2),
        "sys_s": round(usage.ru_stime, 2),
        "peak_rss_mib": round(max(sampler.peak, usage.ru_maxrss * 1024) / 2**20, 1),
        "peak_rss_single_process_mib": round(usage.ru_maxrss / 1024, 1),
        "output_mib": round(out_path.stat().st_size / 2**20, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "network_attempts": attempts.read_text().splitlines() if attempts.exists() else [],
    }
    if status.startswith("failed"):
        record["tail"] = text[-2000:]
    if record["network_attempts"]:
        record["status"] = "failed (network touched)"
    return record


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in ln
        ),
        platform.processor(),
    )
    snakemake_version = subprocess.run(
        [str(SNAKEMAKE), "--version"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "host_cpu": model,
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "snakemake": snakemake_version,
        "platform": platform.platform(),
    }


def fmt_rss(mib: float) -> str:
    """MiB below 1 GiB, GiB above."""
    return f"{mib / 1024:.2f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def render(sessions: list[dict[str, Any]]) -> str:
    """The Markdown page of every recorded session."""
    lines = [
        "# Planning cost against the number of runs (`benchmarks/dag_scaling.py`)",
        "",
        "`snakemake -n` of the default config (`config/config.yaml`: the paper's methods, metrics, overlays and "
        "ablations) with N made-up portal rows (source cdp, truth cdp, split test), network off. Wall time, "
        "user CPU and peak RSS of the whole process tree; load average (1 min) before and after each point. "
        "The machine is shared, so look at the load column before comparing numbers; trees are interleaved "
        "per N within a session so that both see the same load.",
        "",
    ]
    for session in reversed(sessions):
        m = session["machine"]
        lines += [
            f"## Session {session['started']}",
            "",
            f"{m['host_cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB; Python {m['python']}, "
            f"Snakemake {m['snakemake']}; timeout {session['timeout_s']:g} s per point"
            + "".join(f", {label} {t:g} s" for label, t in session.get("timeouts_s", {}).items())
            + ".",
            "",
            "| tree | commit | runs | jobs | wall | user CPU | peak RSS | wall/run | load before → after | status |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for p in session["points"]:
            ok = p["status"] == "ok"
            wall = f"{p['wall_s']:.1f} s" if ok else f"> {p['wall_s']:.0f} s"
            per_run = f"{1000 * p['wall_s'] / p['runs']:.1f} ms" if ok else "–"
            jobs = f"{p['jobs']:,}" if p.get("jobs") else "–"
            lines.append(
                f"| {p['tree']} | {p['commit']} | {p['runs']:,} | {jobs} | {wall} | {p['user_s']:.1f} s | "
                f"{fmt_rss(p['peak_rss_mib'])} | {per_run} | {p['loadavg_before'][0]:.2f} → "
                f"{p['loadavg_after'][0]:.2f} | {p['status']} |"
            )
        if session.get("note"):
            lines += ["", session["note"]]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Measure, append the session to the JSON file, rewrite the Markdown page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tree", action="append", required=True, help="LABEL=PATH of a source tree (repeatable)"
    )
    parser.add_argument("--runs", type=int, nargs="+", default=[100, 1000, 3000, 10000])
    parser.add_argument("--repeat", type=int, default=1, help="measurements per tree and N")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per point before it is killed")
    parser.add_argument(
        "--tree-timeout", action="append", default=[], help="LABEL=SECONDS: another timeout for one tree"
    )
    parser.add_argument(
        "--skip-after-timeout", action="store_true", help="skip a tree's larger N once it timed out"
    )
    parser.add_argument("--note", default="", help="a line recorded with the session")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results stem (.json and .md are written)")
    args = parser.parse_args()
    trees = {}
    for spec in args.tree:
        label, _, path = spec.partition("=")
        trees[label] = Path(path).resolve()
    session = {
        "started": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "machine": machine(),
        "timeout_s": args.timeout,
        "trees": {label: {"path": str(path), "commit": git_commit(path)} for label, path in trees.items()},
        "note": args.note,
        "points": [],
    }
    json_path = args.out.with_suffix(".json")
    data = json.loads(json_path.read_text()) if json_path.exists() else {"sessions": []}
    data["sessions"].append(session)
    json_path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        """Write both files now, so that an interrupted session keeps its finished points."""
        json_path.write_text(json.dumps(data, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(render(data["sessions"]))

    timeouts = {label: float(t) for label, _, t in (spec.partition("=") for spec in args.tree_timeout)}
    session["timeouts_s"] = timeouts
    timed_out: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="dag_scaling_") as tmp:
        for n in args.runs:
            for repeat in range(args.repeat):
                for label, path in trees.items():
                    if label in timed_out:
                        continue
                    record = measure(path, n, timeouts.get(label, args.timeout), Path(tmp))
                    record.update(tree=label, commit=session["trees"][label]["commit"], repeat=repeat)
                    session["points"].append(record)
                    save()
                    print(
                        f"{label:>5} N={n:>6} #{repeat} {record['status']:<10} jobs={record['jobs']} "
                        f"wall={record['wall_s']:.1f}s user={record['user_s']:.1f}s "
                        f"rss={fmt_rss(record['peak_rss_mib'])} load={record['loadavg_before'][0]:.2f}",
                        flush=True,
                    )
                    if record["status"] == "timeout" and args.skip_after_timeout:
                        timed_out.add(label)
    save()
    print(f"wrote {json_path} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
