"""The nightly queue and budget: the order nights take runs, retries, the GPU budget and the backlog."""

import datetime as dt

from tomoseg.batch import queue
from tomoseg.batch.settings import night_settings
from tomoseg.reporting import night


def _pending(dataset_id, run_id, attempts=0, retry_after=None):
    entry = {"dataset_id": dataset_id, "run_id": run_id, "name": f"r{run_id}", "has_membrane": False}
    entry["attempts"] = attempts
    if retry_after:
        entry["retry_after"] = retry_after
    return queue.run_key(dataset_id, f"r{run_id}"), entry


NOW = dt.datetime(2025, 3, 10, 2, 30, tzinfo=dt.timezone.utc)


def test_new_runs_come_first_and_failed_runs_wait_for_their_retry_time():
    pending = dict(
        [
            _pending(10001, 5, attempts=1, retry_after="2025-03-09T02:30:00+00:00"),  # due
            _pending(10002, 1),
            _pending(10001, 7, attempts=2, retry_after="2025-03-12T02:30:00+00:00"),  # not yet
            _pending(10000, 9),
            _pending(10001, 6, attempts=1, retry_after="2025-03-08T02:30:00+00:00"),  # due, waiting longer
        ]
    )
    order = [key for key, _ in queue.queue_order(pending, NOW)]
    assert order == ["10000/r9", "10002/r1", "10001/r6", "10001/r5"]


def test_failed_attempts_back_off_then_are_given_up():
    state = {"pending": dict([_pending(10000, 1)]), "failed": {}}
    cfg = night_settings({"retry_after_nights": 1, "max_attempts": 3})
    first = queue.count_attempt(state, "10000/r1", "boom", cfg, NOW)
    assert first["attempts"] == 1 and first["retry_after"] == "2025-03-11T02:30:00+00:00"
    second = queue.count_attempt(state, "10000/r1", "boom", cfg, NOW)
    assert second["retry_after"] == "2025-03-12T02:30:00+00:00"  # 2 nights after the second failure
    queue.count_attempt(state, "10000/r1", "boom again", cfg, NOW)
    assert state["pending"] == {} and state["failed"]["10000/r1"]["last_error"] == "boom again"
    assert "retry_after" not in state["failed"]["10000/r1"]


def test_the_night_budget_in_runs_and_in_gpu_hours():
    assumed = queue.RunCost(0.5, "assumed", 0)
    assert queue.batch_size(night_settings({"cap": 50}), 20000, assumed) == 50
    assert queue.batch_size(night_settings({"cap": None}), 20000, assumed) == 20000
    assert queue.batch_size(night_settings({"cap": None, "gpu_hours": 12}), 20000, assumed) == 24
    assert queue.batch_size(night_settings({"cap": 10, "gpu_hours": 12}), 20000, assumed) == 10
    assert (
        queue.batch_size(night_settings({"cap": None, "gpu_hours": 0.1}), 5, assumed) == 1
    )  # at least one run a night
    free = queue.RunCost(0.0, "no GPU rules", 0)
    assert queue.batch_size(night_settings({"cap": None, "gpu_hours": 1}), 300, free) == 300


def test_gpu_cost_is_measured_from_the_benchmark_records(tmp_path):
    cfg = night_settings({"gpu_hours_per_run": 0.75})
    state = {"costs": []}
    assert queue.run_cost(state, cfg, []) == queue.RunCost(0.0, "no GPU rules", 0)
    assert queue.run_cost(state, cfg, ["etsam_postprocessed"]) == queue.RunCost(0.75, "assumed", 0)
    for tomo, (s1, s2) in {"a": (1800, 1800), "b": (3600, 3600), "c": (900, 900)}.items():
        for rule, seconds in (("etsam_stage1", s1), ("etsam_stage2", s2)):
            record = tmp_path / "results" / "benchmarks" / rule / f"{tomo}.tsv"
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:00\t1.0\n")
    rules = queue.gpu_rules(["etsam", "etsam_postprocessed"])
    assert rules == ["etsam_stage1", "etsam_stage2"]
    assert queue.gpu_hours(tmp_path, "a", rules) == 1.0
    assert queue.gpu_hours(tmp_path, "missing", rules) is None
    state["costs"] = [{"hours": queue.gpu_hours(tmp_path, t, rules), "rules": rules} for t in "abc"]
    assert queue.run_cost(state, cfg, ["etsam"]) == queue.RunCost(1.0, "measured", 3)
    assert queue.run_cost(state, cfg, ["membrain"]).source == "assumed"  # other GPU rules: not measured


def test_backlog_estimate_in_the_report(tmp_path):
    state = {
        "pending": dict([_pending(10000, k) for k in range(95)] + [_pending(10001, 1, attempts=1)]),
        "nights": [{"batch": 0}, {"batch": 50, "processed": 40}, {"batch": 50, "processed": 50}],
    }
    backlog = queue.backlog_estimate(state, NOW, queue.RunCost(0.5, "measured", 12))
    assert backlog == {
        "pending": 96,
        "new": 95,
        "retrying": 1,
        "rate": 45.0,
        "rate_nights": 2,
        "nights": 3,
        "gpu_hours_per_run": 0.5,
        "cost_source": "measured",
        "gpu_hours": 48.0,
    }
    text = night.backlog_sentence(backlog)
    assert "96 runs pending (95 new, 1 waiting to retry)" in text
    assert "45 runs a night (mean of the last 2 nights) it takes about 3 more nights" in text
    assert "48.0 h for the backlog" in text
    stalled = queue.backlog_estimate(
        {**state, "nights": [{"batch": 5, "processed": 0}]}, NOW, queue.RunCost(0, "", 0)
    )
    assert stalled["nights"] is None and "does not drain" in night.backlog_sentence(stalled)
    report = night.write_report(tmp_path, "N", "2024-01-01", [], 96, [], backlog).read_text()
    assert "## Backlog" in report and "about 3 more nights" in report
