"""tomoseg.batch.shards: per-run steps run in one process, skipped when done, failures kept to their run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tomoseg.batch.shards import Files, run_shard, write_status
from tomoseg.core.io import read_json
from tomoseg.core.layout import shard_failures

# A workflow script as the per-run rules have them: it reads the `snakemake` object, logs, writes its output.
SCRIPT = """
import logging
from pathlib import Path
from tomoseg.core.runlog import log_to

log_to(snakemake.log[0])
text = Path(snakemake.input[0]).read_text()
if "bad" in text:
    raise ValueError(f"{snakemake.input[0]}: bad content")
logging.getLogger("tomoseg.test").info("scaling %s", snakemake.wildcards.tomo)
Path(snakemake.output.result).write_text(text * snakemake.params.factor)
"""


def step(root: Path, tomo: str, factor: int = 2, source: str = "in", out: str = "out") -> dict:
    return {
        "rule": "scale",
        "script": str(root / "scale.py"),
        "input": {"_0": str(root / source / f"{tomo}.txt")},
        "output": {"result": str(root / out / f"{tomo}.txt")},
        "log": str(root / "logs" / f"{tomo}.log"),
        "benchmark": str(root / "bench" / f"{tomo}.tsv"),
        "params": {"factor": factor},
        "wildcards": {"tomo": tomo},
    }


@pytest.fixture
def shard(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # done records live under results/shards/done/ of the working directory
    (tmp_path / "scale.py").write_text(SCRIPT)
    (tmp_path / "in").mkdir()
    for tomo, text in {"a": "x", "b": "bad", "c": "y"}.items():
        (tmp_path / "in" / f"{tomo}.txt").write_text(text)
    return tmp_path


def test_files_read_like_snakemake_namedlists():
    files = Files({"tomogram": "t.mrc", "truth": "g.mrc"})
    assert files.tomogram == "t.mrc" and files[0] == "t.mrc" and files[1] == "g.mrc"
    assert files.get("scores") is None
    with pytest.raises(AttributeError):
        _ = files.scores


def test_each_run_runs_its_steps_and_a_failure_stays_with_its_run(shard):
    runs = {t: [step(shard, t), step(shard, t, source="out", out="twice")] for t in "abc"}
    record = run_shard(runs, shard / "marker.json", config={})
    assert (shard / "out" / "a.txt").read_text() == "xx" and (shard / "twice" / "c.txt").read_text() == "yyyy"
    assert record["failed"] == ["b"] and record["blocked"] == [] and record["ran"] == 4
    failed = record["runs"]["b"]
    assert failed["step"] == "scale" and "bad content" in failed["reason"]
    # the failure is in b's own log, as a per-run job's would be; the others logged to theirs
    assert "FAILED: ValueError" in (shard / "logs" / "b.log").read_text()
    assert "scaling a" in (shard / "logs" / "a.log").read_text()
    assert not (shard / "out" / "b.txt").exists()
    # per-run benchmark records in Snakemake's format, and the shard's record on disk
    assert (shard / "bench" / "a.tsv").read_text().startswith("s\th:m:s\n")
    assert read_json(shard / "marker.json") == record
    assert shard_failures(shard / "marker.json") == ["b"]
    assert shard_failures(shard / "no-such-marker.json") == []


def test_a_rerun_skips_finished_steps_and_redoes_what_changed(shard):
    runs = {t: [step(shard, t)] for t in "ac"}
    run_shard(runs, shard / "marker.json", config={})
    before = (shard / "out" / "a.txt").stat().st_mtime_ns
    again = run_shard(runs, shard / "marker.json", config={})
    assert again["ran"] == 0 and again["skipped"] == 2
    assert (shard / "out" / "a.txt").stat().st_mtime_ns == before
    # a changed param redoes every run; a changed input only its own run
    changed = run_shard({t: [step(shard, t, factor=3)] for t in "ac"}, shard / "marker.json", config={})
    assert changed["ran"] == 2 and (shard / "out" / "a.txt").read_text() == "xxx"
    (shard / "in" / "c.txt").write_text("z")
    os.utime(shard / "in" / "c.txt", ns=(1, 1))  # another mtime, whatever the clock's resolution
    rerun = run_shard({t: [step(shard, t, factor=3)] for t in "ac"}, shard / "marker.json", config={})
    assert rerun["runs"]["a"]["steps"] == {"scale": "done before"}
    assert rerun["ran"] == 1 and (shard / "out" / "c.txt").read_text() == "zzz"
    # a deleted output is made again
    (shard / "out" / "a.txt").unlink()
    assert (
        run_shard({t: [step(shard, t, factor=3)] for t in "ac"}, shard / "marker.json", config={})["ran"] == 1
    )


def test_a_run_whose_input_is_missing_is_blocked_not_failed(shard):
    record = run_shard({"a": [step(shard, "a", source="nowhere")]}, shard / "marker.json", config={})
    assert record["blocked"] == ["a"] and "input missing" in record["runs"]["a"]["reason"]


def test_status_lists_runs_that_are_not_ok_and_is_strict_by_default(shard):
    (shard / "results/shards/data").mkdir(parents=True)
    marker = shard / "results/shards/data/s00000.json"
    run_shard({t: [step(shard, t)] for t in "ab"}, marker, config={})
    with pytest.raises(RuntimeError, match="1 of 2 run-stages failed"):
        write_status([marker], shard / "status.tsv", allow_failures=False)
    assert not (shard / "status.tsv").exists()
    rows = write_status([marker], shard / "status.tsv", allow_failures=True)
    assert [(r["stage"], r["shard"], r["tomo"], r["status"]) for r in rows] == [
        ("data", "s00000", "b", "failed")
    ]
    lines = (shard / "status.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["stage", "shard", "tomo", "status", "step", "reason", "log"]
    assert len(lines) == 2 and lines[1].startswith("data\ts00000\tb\tfailed\tscale\t")


def test_outputs_of_a_per_run_job_are_adopted_when_newer_than_their_inputs(shard):
    (shard / "out").mkdir()
    (shard / "out" / "a.txt").write_text("made by a per-run job")
    os.utime(shard / "in" / "c.txt", ns=(1, 1))
    (shard / "out" / "c.txt").write_text("older than its input")
    os.utime(shard / "out" / "c.txt", ns=(0, 0))
    record = run_shard({t: [step(shard, t)] for t in "ac"}, shard / "marker.json", config={})
    assert record["runs"]["a"]["steps"] == {"scale": "done before (adopted)"}
    assert (shard / "out" / "a.txt").read_text() == "made by a per-run job"
    assert (
        record["runs"]["c"]["steps"]["scale"].startswith("ran in")
        and (shard / "out" / "c.txt").read_text() == "yy"
    )
    # adopted once, then done like any other step; a changed param is not adopted
    assert run_shard({"a": [step(shard, "a")]}, shard / "marker.json", config={})["runs"]["a"]["steps"] == {
        "scale": "done before"
    }
    assert run_shard({"a": [step(shard, "a", factor=3)]}, shard / "marker.json", config={})["ran"] == 1


# Issue 21, item 4: sharded runs are as careful as Snakemake. On 41766b8 a deleted per-run output left the
# shard's job parameters unchanged (Snakemake: "Nothing to be done"), and a truncated shard record made
# `shards_status` fail on every rerun (a JSON error) while the shard itself was never rerun.


def test_a_deleted_per_run_output_changes_the_shards_retry_token(shard, caplog):
    from tomoseg.core.layout import shard_retry_token

    runs = {t: [step(shard, t)] for t in "ac"}
    marker = shard / "marker.json"
    assert shard_retry_token(marker, runs) == ""  # no record yet: Snakemake runs the shard anyway
    run_shard(runs, marker, config={})
    assert shard_retry_token(marker, runs) == ""  # complete: nothing to redo
    (shard / "out" / "c.txt").unlink()
    token = shard_retry_token(marker, runs)
    assert token.startswith("missing 1 ") and "out/c.txt" in caplog.text and str(marker) in caplog.text
    again = run_shard(runs, marker, config={})
    assert again["ran"] == 1 and (shard / "out" / "c.txt").read_text() == "yy"
    assert shard_retry_token(marker, runs) == ""


@pytest.mark.parametrize("content", ['{"runs": {"a": {"status": "ok"', "", "[1, 2]", "\x00\xff"])
def test_a_truncated_shard_record_is_not_done_with_a_warning(shard, caplog, content):
    from tomoseg.core.layout import shard_retry_token

    (shard / "results/shards/data").mkdir(parents=True)
    marker = shard / "results/shards/data/s00000.json"
    runs = {t: [step(shard, t)] for t in "ac"}
    run_shard(runs, marker, config={})
    marker.write_bytes(content.encode("latin-1"))
    assert shard_failures(marker) == []
    assert shard_retry_token(marker, runs).startswith("unreadable ")  # the shard runs again
    assert f"{marker}: " in caplog.text and "treated as not done" in caplog.text
    rows = write_status([marker], shard / "status.tsv", allow_failures=True)
    assert [(r["shard"], r["tomo"], r["status"]) for r in rows] == [("s00000", "*", "not done")]
    with pytest.raises(RuntimeError, match="0 of 0 run-stages|failed or were blocked"):
        write_status([marker], shard / "status2.tsv", allow_failures=False)
    # the rerun the token asks for rewrites the record, and the status reads it again
    run_shard(runs, marker, config={})
    assert write_status([marker], shard / "status.tsv", allow_failures=False) == []


def test_a_truncated_done_record_reruns_its_step_with_a_warning(shard, caplog):
    runs = {"a": [step(shard, "a")]}
    run_shard(runs, shard / "marker.json", config={})
    done = shard / "results/shards/done/scale/a.json"
    done.write_text(done.read_text()[:5])
    record = run_shard(runs, shard / "marker.json", config={})
    assert record["ran"] == 1 and record["failed"] == []
    assert "results/shards/done/scale/a.json: unreadable done record" in caplog.text
