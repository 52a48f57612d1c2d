"""Every workflow script's log starts with where it ran (host, Slurm node and job, visible GPUs)."""

from __future__ import annotations

import logging
import sys

from tomoseg.core.runlog import log_to, parse_run_context


def test_log_to_records_run_context(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURMD_NODENAME", "gpunode")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # log_to replaces it; restored afterwards
    log = tmp_path / "rule.log"
    try:
        log_to(log, level=logging.WARNING)  # the context line is written even above INFO
        logging.getLogger("tomoseg.test").warning("step done")
    finally:
        logging.basicConfig(handlers=[logging.NullHandler()], force=True)
    text = log.read_text()
    records = parse_run_context(text)
    assert len(records) == 1
    assert records[0]["SLURMD_NODENAME"] == "gpunode"
    assert records[0]["SLURM_JOB_ID"] == "42"
    assert records[0]["CUDA_VISIBLE_DEVICES"] == "-"
    assert records[0]["host"]
    assert text.index("run context") < text.index("step done")


def test_parse_run_context_ignores_other_lines():
    assert parse_run_context("a line\nrun context: host=h SLURMD_NODENAME=cpunode\n") == [
        {"host": "h", "SLURMD_NODENAME": "cpunode"}
    ]
    assert parse_run_context("nothing here") == []


def test_last_error_line_prefers_the_closing_exception_line(tmp_path):
    from tomoseg.core.runlog import last_error_line

    log = tmp_path / "job.log"
    assert last_error_line(log) is None  # no log yet
    log.write_text(
        "2024 INFO tomoseg.core.runlog: run context: host=h\n"
        "2024 ERROR tomoseg: FAILED: ValueError: shape mismatch\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1\n'
        "ValueError: shape mismatch\n\n"
    )
    assert last_error_line(log) == "ValueError: shape mismatch"
    log.write_text("2024 INFO all fine\nKilled\n")
    assert last_error_line(log) is None
    assert last_error_line(log, fallback=True) == "Killed"
    log.write_text("x" * 50 + " exception " + "y" * 400 + "\n")
    assert last_error_line(log) == ("x" * 50 + " exception " + "y" * 400)[-300:]
