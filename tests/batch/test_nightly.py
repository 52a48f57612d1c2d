"""The nightly batch against the stand-in portal: paging, new runs, nothing new, a killed night, two at once."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from cdp_standin import add_run

from tomoseg.acquisition import listing as portal_listing
from tomoseg.acquisition import portal as cdp
from tomoseg.batch import lock as night_lock
from tomoseg.batch import nightly, queue
from tomoseg.batch.settings import night_settings
from tomoseg.core.io import read_volume
from tomoseg.reporting import night as night_report
from tomoseg.reporting import pages

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def test_listing_is_paged(portal):
    for k in range(5):
        add_run(
            portal,
            10000,
            100 + k,
            f"TS_{k}",
            membrane=[("GO:0016020", "membrane")],
            date="2024-05-01T00:00:00",
        )
    add_run(portal, 10000, 200, "old", membrane=[("GO:0016020", "membrane")], date="2023-01-01T00:00:00")
    add_run(
        portal,
        10000,
        201,
        "lumen_only",
        membrane=[("GO:0031974", "membrane-enclosed lumen")],
        date="2023-01-01T00:00:00",
    )
    portal.tables["Tomogram"][-1]["releaseDate"] = "2024-06-01T00:00:00"  # tomogram of run 201 is new
    client = cdp.portal_client(portal.graphql_url, 60)
    runs = portal_listing.list_new_runs(client, "2024-01-01", sorted(cdp.load_membrane_terms()), page_size=2)
    assert [r["name"] for r in runs] == [f"TS_{k}" for k in range(5)] + ["lumen_only"]
    assert [r["has_membrane"] for r in runs] == [True] * 5 + [False]
    listing = [e["detail"] for e in portal.log if e["kind"] == "graphql" and "Date" in e["detail"]]
    assert all("limitOffset: { limit: 2," in q for q in listing)
    # annotations.releaseDate, annotations.lastModifiedDate: 5 runs -> pages of 2, 2, 1 (3 requests each);
    # tomograms.releaseDate: 6 runs -> 2, 2, 2, 0 (4); tomograms.lastModifiedDate: 5 runs -> 3
    assert len(listing) == 3 + 3 + 4 + 3


def add_bare_runs(portal, count, date="2024-02-01T00:00:00", membrane_every=2, first_run=100000):
    """`count` portal runs with one tomogram each (no files; every `membrane_every`-th with a membrane mask)."""
    for i in range(count):
        run_id = first_run + i
        portal.add("Run", id=run_id, datasetId=20000 + i // 100, name=f"TS_{i}", s3Prefix="", httpsPrefix="")
        spacing = portal.add("TomogramVoxelSpacing", runId=run_id, voxelSpacing=13.48)
        portal.add(
            "Tomogram",
            id=run_id * 10,
            runId=run_id,
            tomogramVoxelSpacingId=spacing["id"],
            releaseDate=date,
            lastModifiedDate=date,
        )
        if membrane_every and i % membrane_every == 0:
            annotation = portal.add(
                "Annotation",
                runId=run_id,
                objectId="GO:0016020",
                objectName="membrane",
                releaseDate=date,
                lastModifiedDate=date,
            )
            shape = portal.add("AnnotationShape", annotationId=annotation["id"], shapeType="SegmentationMask")
            portal.add("AnnotationFile", annotationShapeId=shape["id"], format="mrc")


def test_listing_twenty_thousand_runs_through_the_real_client(portal):
    # The stand-in indexes its relations (and pages one listing from one filtered result), so the real
    # client can list the portal's size in a test; the nightly's requests grow linearly with the runs.
    add_bare_runs(portal, 20000)
    client = cdp.portal_client(portal.graphql_url, 60)
    runs = portal_listing.list_new_runs(
        client, "2024-01-01", sorted(cdp.load_membrane_terms()), page_size=5000
    )
    assert len(runs) == 20000 and len({(r["dataset_id"], r["name"]) for r in runs}) == 20000
    assert sum(r["has_membrane"] for r in runs) == 10000
    assert runs[0] == {"dataset_id": 20000, "run_id": 100000, "name": "TS_0", "has_membrane": True}
    # pages of 5000 (each listing ends with a short page): 2 annotation listings of 10,000 runs (3 pages
    # each), 2 tomogram listings of 20,000 (5 each), then 4 chunks of run ids asking which have a membrane
    assert portal.count("graphql") == 2 * 3 + 2 * 5 + 4


def _workdir(tmp_path, portal, **nightly_overrides):
    work = tmp_path / "work"
    shutil.copytree(REPO / "config", work / "config")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["methods"] = []
    config["download"].update(
        portal_url=portal.graphql_url,
        timeout_s=1.0,
        connect_timeout_s=2.0,
        retries=1,
        backoff_s=0.01,
        pins="",
    )
    settings = dict(
        start_date="2024-01-01",
        cap=10,
        page_size=2,
        max_attempts=1,
        metrics=False,
        cores=2,
        on_failure='echo "$TOMOSEG_NIGHT_STATUS" > on_failure.txt',
    )
    config["nightly"].update(settings, **nightly_overrides)
    (work / "config" / "nightly.yaml").write_text(yaml.safe_dump(config))
    return work


def _night(work, wait=True, timeout=300):
    cmd = [
        sys.executable,
        "-m",
        "tomoseg",
        "nightly",
        "--configfile",
        str(work / "config" / "nightly.yaml"),
        "--workdir",
        str(work),
        "--repo",
        str(REPO),
        "--snakemake",
        SNAKEMAKE,
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    if not wait:
        return subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _state(work):
    return json.loads((work / "nightly" / "state.json").read_text())


@pytest.mark.workflow
def test_night_with_new_runs_then_a_night_with_none(portal, tmp_path):
    a = add_run(
        portal, 10000, 245, "TS_026", membrane=[("GO:0016020", "membrane")], date="2024-02-01T00:00:00"
    )
    add_run(
        portal, 10438, 15936, "TS_1", membrane=[("GO:0005886", "plasma membrane")], date="2024-03-01T00:00:00"
    )
    bad = add_run(portal, 10002, 300, "TS_bad", date="2024-03-02T00:00:00")
    add_run(portal, 10003, 400, "TS_old", membrane=[("GO:0016020", "membrane")], date="2023-03-02T00:00:00")
    portal.faults[bad["url"].split("/files/")[1]] = ["404"] * 10
    work = _workdir(tmp_path, portal)

    first = _night(work)
    assert first.returncode == 1, first.stdout + first.stderr  # one run failed: the night reports failure
    state = _state(work)
    assert sorted(state["processed"]) == ["10000/TS_026", "10438/TS_1"]
    assert sorted(state["failed"]) == ["10002/TS_bad"] and state["pending"] == {}
    assert (work / "on_failure.txt").read_text().strip() == "1 of 3 runs failed"
    (night,) = (work / "nightly" / "nights").iterdir()
    sheet = (night / "runs.tsv").read_text().splitlines()
    assert [ln.split("\t")[0] for ln in sheet[1:]] == ["cdp-10000-245", "cdp-10002-300", "cdp-10438-15936"]
    assert [ln.split("\t")[7] for ln in sheet[1:]] == ["cdp", "none", "cdp"]
    tomogram, _ = read_volume(work / "results/data/cdp-10000-245/tomogram.mrc")
    np.testing.assert_array_equal(tomogram, a["volume"])
    truth, _ = read_volume(work / "results/data/cdp-10000-245/groundtruth.mrc")
    np.testing.assert_array_equal(truth, a["masks"]["GO:0016020"])
    assert (work / "results/data/cdp-10438-15936/normalized.mrc").exists()
    assert not (work / "results/data/cdp-10002-300/tomogram.mrc").exists()
    report = (night / "report.md").read_text()
    assert "cdp-10000-245" in report and "cdp-10438-15936" in report
    assert "## Failed" in report and "HTTP 404" in report.split("## Failed")[1]
    rows = (night / "report.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    fractions = {r.split("\t")[0]: r.split("\t")[header.index("truth_fraction")] for r in rows[1:]}
    assert float(fractions["cdp-10000-245"]) == float(a["masks"]["GO:0016020"].mean())
    assert (night / "figures" / "cdp-10000-245.png").stat().st_size > 0
    index = _Html(night / "index.html")  # the night's HTML page links each processed run to its page
    pages = ["pages/cdp-10000-245.html", "pages/cdp-10438-15936.html"]
    assert index.links == [*pages, "report.md", "report.tsv"] and "Status: 1 of 3 runs failed" in index.text
    page = _Html(night / pages[0])
    assert "Tomogram cdp-10000-245" in page.text and "Not scored: no metrics records" in page.text

    (work / "on_failure.txt").unlink()
    before = {p: p.stat().st_mtime_ns for p in (work / "results").rglob("*") if p.is_file()}
    second = _night(work)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing new" in second.stderr
    assert len(list((work / "nightly" / "nights").iterdir())) == 1  # no new night folder, no snakemake run
    assert {p: p.stat().st_mtime_ns for p in (work / "results").rglob("*") if p.is_file()} == before
    assert sorted(_state(work)["processed"]) == ["10000/TS_026", "10438/TS_1"]
    assert not (work / "on_failure.txt").exists()


@pytest.mark.workflow
def test_killed_night_resumes_and_a_second_night_is_refused(portal, tmp_path):
    info = add_run(portal, 10000, 245, "TS_026", shape=(32, 64, 64), date="2024-02-01T00:00:00")
    name = info["url"].split("/files/")[1]
    portal.slow_s = 60.0
    portal.faults[name] = ["slow"]  # half the bytes, then a long silence
    work = _workdir(tmp_path, portal, on_failure="")
    # a long read timeout, so that the first night is surely still downloading when it is killed
    config = yaml.safe_load((work / "config" / "nightly.yaml").read_text())
    config["download"]["timeout_s"] = 120.0
    (work / "config" / "nightly.yaml").write_text(yaml.safe_dump(config))

    first = _night(work, wait=False)
    part = work / "results" / "data" / "cdp-10000-245" / ".tomogram.mrc.part"
    deadline = time.time() + 120
    while not (part.exists() and part.stat().st_size > 0):
        assert first.poll() is None, first.stdout.read()
        assert time.time() < deadline, "the first night never started its download"
        time.sleep(0.2)
    state_before = (work / "nightly" / "state.json").read_bytes()

    second = _night(work)
    assert second.returncode == 75
    assert "another nightly run is in progress" in second.stderr
    assert (work / "nightly" / "state.json").read_bytes() == state_before

    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert not (work / "results/data/cdp-10000-245/tomogram.mrc").exists()
    assert _state(work)["processed"] == {} and list(_state(work)["pending"]) == ["10000/TS_026"]

    config["download"]["timeout_s"] = 5.0
    (work / "config" / "nightly.yaml").write_text(yaml.safe_dump(config))
    third = _night(work)
    assert third.returncode == 0, (
        third.stdout + third.stderr + (work / "nightly").joinpath("nights").as_posix()
    )
    assert (work / "results/data/cdp-10000-245/tomogram.mrc").read_bytes() == info["bytes"]
    assert list(_state(work)["processed"]) == ["10000/TS_026"]
    ranges = [e["detail"] for e in portal.log if e["kind"] == "file" and name in e["detail"]]
    assert (
        ranges[0].endswith("range=None") and "range=bytes=" in ranges[-1]
    )  # the rerun resumed the partial file


@pytest.mark.workflow
def test_snakemake_failing_outside_jobs_fails_the_night_not_the_runs(portal, tmp_path):
    add_run(portal, 10000, 245, "TS_026", date="2024-02-01T00:00:00")
    add_run(portal, 10000, 246, "TS_027", date="2024-02-01T00:00:00")
    work = _workdir(tmp_path, portal, snakemake_args=["--no-such-option"], cap=1)
    result = _night(work)
    assert result.returncode == 1
    assert (work / "on_failure.txt").read_text().startswith("error: snakemake failed outside any job")
    state = _state(work)
    assert state["processed"] == {} and sorted(state["pending"]) == ["10000/TS_026", "10000/TS_027"]
    assert {run["attempts"] for run in state["pending"].values()} == {0}
    (record,) = state["nights"]  # the night is recorded as failed, with its batch
    assert (
        record["batch"] == 1 and record["processed"] == 0 and record["status"].startswith("error: snakemake")
    )
    (night,) = (work / "nightly" / "nights").iterdir()
    assert len((night / "runs.tsv").read_text().splitlines()) == 1 + 1  # the per-night cap: one run


def test_per_run_targets_and_report_with_methods(tmp_path):
    from tomoseg.core.io import write_json, write_volume

    targets = queue.per_run_targets("t", True, ["etsam", "membrain"], metrics=True)
    assert targets == [
        "results/data/t/normalized.mrc",
        "results/data/t/groundtruth.mrc",
        "results/etsam/t/mask.mrc",
        "results/metrics/etsam/t.json",
        "results/membrain/t/mask.mrc",
        "results/metrics/membrain/t.json",
    ]
    assert queue.per_run_targets("t", False, ["tardis"], metrics=True) == [
        "results/data/t/normalized.mrc",
        "results/tardis/t/mask.mrc",
    ]
    mask = np.zeros((4, 8, 8), np.uint8)
    mask[2, :, :2] = 1
    write_volume(tmp_path / "results/etsam/t/mask.mrc", mask, 10.0)
    write_volume(tmp_path / "results/data/t/groundtruth.mrc", mask, 10.0)
    write_volume(tmp_path / "results/data/t/normalized.mrc", np.random.default_rng(0).random((4, 8, 8)), 10.0)
    record = {"status": "ok", "dice": 0.75, "iou": 0.6, "precision": 0.8125, "recall": 0.7, "auprc": 0.9}
    write_json(tmp_path / "results/metrics/etsam/t.json", record)
    write_json(tmp_path / "results/etsam/t/provenance.json", {"method": "etsam", "untrained": True})
    for rule, seconds in (("etsam_stage1", 2.0), ("etsam_stage2", 3.5)):
        bench = tmp_path / f"results/benchmarks/{rule}/t.tsv"
        bench.parent.mkdir(parents=True)
        bench.write_text(f"s\tmax_rss\n{seconds}\t100.0\n")
    stats = night_report.run_statistics(tmp_path, "t", ["etsam"], truth=True)
    assert stats["etsam_fraction"] == stats["truth_fraction"] == mask.mean()
    assert stats["etsam_dice"] == 0.75 and stats["etsam_iou"] == 0.6
    run = {"dataset_id": 1, "run_id": 2, "name": "r", "has_membrane": True}
    rules = {"etsam": ["etsam_stage1", "etsam_stage2"]}
    drawn = night_report.run_page(tmp_path, "t", ["etsam"], tmp_path / "night", run, rules)
    assert drawn == {"figure": str(tmp_path / "night/figures/t.png"), "page": "pages/t.html"}
    assert Path(drawn["figure"]).stat().st_size > 0
    assert (tmp_path / "night/figures/t_dice_z.png").read_bytes() != Path(drawn["figure"]).read_bytes()
    row = {"tomo": "t", **run, "status": "processed", **drawn, **stats}
    failed = {"tomo": "u", "dataset_id": 1, "run_id": 3, "name": "s", "status": "failed"}
    failed.update(reason="download_tomogram: HTTP 404", attempts=1, retry_after=None)
    report = night_report.write_report(tmp_path / "night", "N", "2024-01-01", [row], 0, ["etsam"]).read_text()
    assert "etsam_dice" in report and "0.75" in report and "figures/t.png" in report
    # the night's HTML index links each run to the workflow's per-tomogram page, which shows its metrics
    index = pages.write_index(
        tmp_path / "night", "N", "1 of 2 runs failed", "2024-01-01", [row, failed], 0, ["etsam"]
    )
    html = _Html(index)
    assert html.links == ["pages/t.html", "report.md", "report.tsv"] and "Untrained weights" in html.text
    assert "Night N" in html.text and "Status: 1 of 2 runs failed" in html.text and "HTTP 404" in html.text
    page = _Html(tmp_path / "night" / drawn["page"])
    metrics = page.tables["metrics"]
    assert metrics[0][:7] == ["method", "status", "dice", "iou", "precision", "recall", "auprc"]
    assert metrics[1][:7] == ["etsam (untrained)", "ok"] + [f"{record[k]:.4f}" for k in metrics[0][2:7]]
    runtime = dict(zip(page.tables["runtime"][0], page.tables["runtime"][1], strict=True))
    assert runtime["runtime_s"] == "5.5000" and runtime["rules"] == "etsam_stage1+etsam_stage2"
    assert "data:image/png;base64," in page.source and "dataset_id = 1" in page.text


class _Html(HTMLParser):
    """A page's links (href), text, and its tables (by id) as rows of cell texts."""

    def __init__(self, path):
        super().__init__()
        self.source = Path(path).read_text()
        self.links, self.tables, self.text, self._table, self._cell = [], {}, "", None, None
        self.feed(self.source)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.links.append(attrs["href"])
        elif tag == "table":
            self._table = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._table[-1].append("")
            self._cell = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text += data
        if self._cell:
            self._table[-1][-1] += data


def test_failure_reason_names_the_newest_log_with_an_error(tmp_path):
    logs = tmp_path / "results" / "logs"
    (logs / "download_tomogram").mkdir(parents=True)
    (logs / "normalize").mkdir()
    (logs / "download_tomogram" / "t.log").write_text(
        "INFO run context: host=h\nERROR tomoseg: FAILED: HTTP 404 for x\n"
    )
    os.utime(logs / "download_tomogram" / "t.log", (1, 1))
    (logs / "normalize" / "t.log").write_text("INFO run context: host=h\nINFO done\n")  # newer, no error
    assert (
        nightly.failure_reason(tmp_path, "t", ["a"], 1)
        == "download_tomogram: ERROR tomoseg: FAILED: HTTP 404 for x"
    )
    assert nightly.failure_reason(tmp_path, "u", ["a", "b"], 1) == "snakemake exit 1; missing a, b"


def test_report_labels_untrained_outputs(tmp_path):
    """Issue 13: the README promises every output made from random weights is labelled untrained."""
    from tomoseg.core.io import write_json, write_volume

    mask = np.zeros((4, 8, 8), np.uint8)
    for name, untrained in (("etsam", True), ("membrain", False)):
        write_volume(tmp_path / f"results/{name}/t/mask.mrc", mask, 10.0)
        write_json(tmp_path / f"results/{name}/t/provenance.json", {"untrained": untrained})
    stats = night_report.run_statistics(tmp_path, "t", ["etsam", "membrain"], truth=False)
    assert stats["untrained"] == "etsam"
    row = {"tomo": "t", "dataset_id": 1, "run_id": 2, "name": "r", "status": "processed", **stats}
    report = night_report.write_report(tmp_path / "night", "N", "2024-01-01", [row], 0, ["etsam", "membrain"])
    text = report.read_text()
    assert "**Untrained**: the outputs of etsam come from randomly initialised weights" in text
    header, line = (tmp_path / "night" / "report.tsv").read_text().splitlines()
    assert dict(zip(header.split("\t"), line.split("\t"), strict=True))["untrained"] == "etsam"
    write_json(tmp_path / "results/etsam/t/provenance.json", {"untrained": False})
    row.update(night_report.run_statistics(tmp_path, "t", ["etsam", "membrain"], truth=False))
    assert (
        "Untrained"
        not in night_report.write_report(tmp_path / "n2", "N", "x", [row], 0, ["etsam"]).read_text()
    )


@pytest.mark.workflow
def test_kill_9_of_the_night_alone_does_not_block_the_next_night(portal, tmp_path):
    """Issue 13: the night's own process killed, its Snakemake stops with it and the next night runs."""
    info = add_run(portal, 10000, 245, "TS_026", shape=(32, 64, 64), date="2024-02-01T00:00:00")
    name = info["url"].split("/files/")[1]
    portal.slow_s = 60.0
    portal.faults[name] = ["slow"]
    work = _workdir(tmp_path, portal, on_failure="")
    config = yaml.safe_load((work / "config" / "nightly.yaml").read_text())
    config["download"]["timeout_s"] = 120.0
    (work / "config" / "nightly.yaml").write_text(yaml.safe_dump(config))

    first = _night(work, wait=False)
    part = work / "results" / "data" / "cdp-10000-245" / ".tomogram.mrc.part"
    deadline = time.time() + 120
    while not (part.exists() and part.stat().st_size > 0):
        assert first.poll() is None, first.stdout.read()
        assert time.time() < deadline, "the first night never started its download"
        time.sleep(0.2)
    lock_text = (work / "nightly" / "nightly.lock").read_text()
    assert "snakemake pgid" in lock_text
    snakemake_pid = int(lock_text.rsplit("snakemake pgid", 1)[1].split()[0])
    os.kill(first.pid, signal.SIGKILL)  # the night's main process only, not its process group
    first.wait(timeout=30)

    config["download"]["timeout_s"] = 5.0
    (work / "config" / "nightly.yaml").write_text(yaml.safe_dump(config))
    second = _night(work)
    assert second.returncode == 0, second.stdout + second.stderr
    assert list(_state(work)["processed"]) == ["10000/TS_026"]
    try:
        os.kill(snakemake_pid, 0)
        state = Path(f"/proc/{snakemake_pid}/stat").read_text().rsplit(") ", 1)[1][0]
        assert state == "Z", "the dead night's Snakemake is still running"
    except ProcessLookupError:
        pass


def test_lock_held_by_a_dead_nights_snakemake_is_cleaned_up(tmp_path, monkeypatch):
    lock = tmp_path / "nightly.lock"
    lock.touch()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(300)",
            str(lock),
            "snakemake",  # what /proc/<pid>/cmdline of the dead night's Snakemake says
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"pid {dead.pid} since 2025-01-01T00:00:00+00:00; snakemake pgid {holder.pid}\n")
    monkeypatch.setattr(night_lock, "LOCK_CLEANUP_S", 20.0)
    try:
        fd = night_lock.acquire_lock(lock)
        os.close(fd)
        assert holder.wait(timeout=10) == -signal.SIGTERM
        assert lock.read_text().startswith(f"pid {os.getpid()} since")
        # A live holder is another night in progress: busy, nothing touched.
        live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        blocker = subprocess.Popen(
            [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
             "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)", str(lock)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert blocker.stdout.readline().strip() == "locked"
        lock.write_text(f"pid {live.pid} since now\n")
        try:
            night_lock.acquire_lock(lock)
            raise AssertionError("a live night's lock was taken")
        except night_lock.NightBusy as err:
            assert f"pid {live.pid}" in str(err)
        finally:
            live.kill()
            blocker.kill()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_the_night_hands_its_runs_to_snakemake_in_files_not_arguments(tmp_path):
    # 20,000 runs: the old command line (~416 bytes of targets a run) would exceed the kernel's limit
    runs = [
        (queue.run_key(20000 + k // 100, f"r{k}"), {"dataset_id": 20000 + k // 100, "run_id": 100000 + k})
        for k in range(20000)
    ]
    for _, run in runs:
        run.update(name=f"r{run['run_id']}", has_membrane=False, attempts=0)
    batch = nightly._Batch("N", tmp_path / "N", runs, ["etsam"], {}, True)
    sheet = nightly.write_runs_sheet(tmp_path / "N" / "runs.tsv", runs)
    night_config = nightly.write_night_config(tmp_path / "N" / "config.yaml", sheet, batch)
    assert yaml.safe_load(night_config.read_text()) == {
        "runs": str(sheet.resolve()),
        "splits": ["test"],
        "methods": ["etsam"],
        "targets": {"scope": "runs", "metrics": True},
    }
    assert len(sheet.read_text().splitlines()) == 20001
    stub = tmp_path / "snakemake"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$(dirname "$0")/argv.txt"\n')
    stub.chmod(0o755)
    config = tmp_path / "config.yaml"
    config.write_text("{}")
    lock_fd = night_lock.acquire_lock(
        tmp_path / "nightly.lock"
    )  # the night records its Snakemake in the lock
    try:
        code = nightly._run_snakemake(
            night_settings({"cores": 2}), config, night_config, REPO, tmp_path, batch, lock_fd, str(stub)
        )
    finally:
        os.close(lock_fd)
    argv = (tmp_path / "argv.txt").read_text().splitlines()
    assert code == 0 and len("".join(argv)) < 2000
    assert argv[argv.index("--configfile") + 1 :][:2] == [str(config.resolve()), str(night_config.resolve())]
    assert not any(arg.startswith(("results/", "cdp-")) for arg in argv)


def _made_already(work, runs):
    """The files a night would make for these runs, written in the order Snakemake makes them."""
    for k in range(runs):
        folder = work / "results" / "data" / f"cdp-{20000 + k // 100}-{100000 + k}"
        folder.mkdir(parents=True)
        for name, text in (
            ("tomogram.mrc", ""),
            ("tomogram.source.json", "{}"),
            ("normalized.mrc", ""),
            ("normalized.json", "{}"),
        ):
            (folder / name).write_text(text)


def _night_of(work, pattern):
    nights = sorted((work / "nightly" / "nights").glob(pattern))
    return nights[-1] if nights else None


@pytest.mark.slow
@pytest.mark.workflow
def test_twenty_thousand_pending_runs_in_one_night(portal, tmp_path):
    runs = int(os.environ.get("TOMOSEG_TEST_NIGHT_RUNS", 20000))
    add_bare_runs(portal, runs, membrane_every=0)
    work = _workdir(tmp_path, portal, cap=None, page_size=5000, report_figures=2, on_failure="")
    # So many runs are planned in shards (docs/scaling.md); a site running the night on one machine picks
    # large ones (every shard job is a process start).
    config_file = work / "config" / "nightly.yaml"
    config_file.write_text(
        yaml.safe_dump({**yaml.safe_load(config_file.read_text()), "shards": {"above": 500, "size": 5000}})
    )
    # Every run's files exist already (as a killed night may leave them), so the night's Snakemake plans all
    # the runs from the night's runs sheet and has nothing to run: the test is about the size of the night.
    _made_already(work, runs)

    first = _night(work, wait=False)  # killed midway: once its Snakemake has started planning
    deadline = time.time() + 600
    while not ((log := _night_of(work, "*/snakemake.log")) and "Building DAG" in log.read_text()):
        assert first.poll() is None, first.stdout.read()
        assert time.time() < deadline, "the first night never started Snakemake"
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    state = _state(work)
    assert len(state["pending"]) == runs and state["processed"] == {} and state["nights"] == []
    assert {r["attempts"] for r in state["pending"].values()} == {0}  # nothing lost, no attempt used up

    second = _night(work, timeout=1500)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    command = next(line for line in second.stderr.splitlines() if "running: " in line)
    assert len(command) < 2000  # the runs are in the night's runs sheet, not on the command line
    state = _state(work)
    assert len(state["processed"]) == runs and state["pending"] == {} and state["failed"] == {}
    (record,) = state["nights"]
    assert record["batch"] == record["processed"] == runs and record["status"] == "ok"
    assert record["backlog"]["pending"] == 0
    night = _night_of(work, "*/report.md").parent
    assert len((night / "runs.tsv").read_text().splitlines()) == runs + 1
    assert len((night / "report.tsv").read_text().splitlines()) == runs + 1
    assert (
        f"{runs} in this batch, {runs} processed, 0 failed, 0 still pending"
        in (night / "report.md").read_text()
    )
    assert len(list((night / "figures").glob("*.png"))) <= 2  # nightly.report_figures

    third = _night(work)
    assert third.returncode == 0 and "nothing new" in third.stderr
    assert len(list((work / "nightly" / "nights").iterdir())) == 2  # the killed night's and the second's
    assert len(_state(work)["processed"]) == runs


def test_an_unreachable_portal_is_one_line_and_leaves_the_state_alone(portal, tmp_path):
    """Issue 21: without network the night says so in one line (was a 110-line traceback), state untouched."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on: connection refused, as with no network
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    work = _workdir(tmp_path, portal)
    config_file = work / "config" / "nightly.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["download"]["portal_url"] = f"http://127.0.0.1:{closed_port}/graphql"
    config_file.write_text(yaml.safe_dump(config))
    state_file = work / "nightly" / "state.json"
    state_file.parent.mkdir(parents=True)
    state = {"since": "2024-03-01T00:00:00+00:00", "processed": {}, "pending": {}, "failed": {}, "nights": []}
    state_file.write_text(json.dumps(state))
    before = state_file.read_bytes()

    result = _night(work)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Portal" in lines[0] and "unreachable" in lines[0] and "Connection refused" in lines[0]
    assert state_file.read_bytes() == before
    assert sorted(p.name for p in state_file.parent.iterdir()) == ["nightly.lock", "state.json"]
    assert (work / "on_failure.txt").read_text().startswith("error: the CryoET Data Portal")
