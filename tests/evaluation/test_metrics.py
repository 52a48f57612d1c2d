"""Metrics and histogram AUPRC against scikit-learn and hand-computed cases."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve

from tomoseg.core.io import InputError, write_volume
from tomoseg.evaluation.metrics import (
    ScoreHistogram,
    average_precision,
    evaluate_files,
    evaluate_volumes,
    histogram_path,
    pr_curve,
)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def etsam_like(shape, seed, pos_frac=0.03, floor_frac=0.3):
    """float16-rounded logits, ~30 % of voxels at the -1024 floor, 1-5 % positives."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(shape) < pos_frac).astype(np.uint8)
    logits = np.where(truth == 1, rng.normal(1.5, 2.0, shape), rng.normal(-2.5, 2.0, shape))
    logits[rng.random(shape) < floor_frac] = -1024
    logits = logits.astype(np.float16).astype(np.float32)
    return truth, logits


def write(tmp_path, name, array):
    path = tmp_path / name
    write_volume(path, array, 10.0)
    return path


def sklearn_etsam(truth, logits):
    x = logits.astype(np.float64)
    x[x < -x.max()] = -x.max()
    return sigmoid(x)


@pytest.mark.parametrize("pos_frac", [0.01, 0.05])
def test_auprc_matches_sklearn_on_a_million_voxels(tmp_path, pos_frac):
    truth, logits = etsam_like((64, 128, 128), seed=int(pos_frac * 100), pos_frac=pos_frac)
    assert truth.size >= 10**6 and abs((logits == -1024).mean() - 0.3) < 0.01
    pred = (logits > -0.25).astype(np.uint8)
    paths = [write(tmp_path, n, a) for n, a in (("p.mrc", pred), ("t.mrc", truth), ("s.mrc", logits))]
    result = evaluate_volumes(*paths, score_kind="etsam-logits", chunk_voxels=200_000)
    exact = average_precision_score(truth.ravel(), sklearn_etsam(truth, logits).ravel())
    err = abs(result.record["auprc"] - exact)
    msg = f"pos_frac={pos_frac}: histogram AUPRC {result.record['auprc']:.6f}, sklearn {exact:.6f}, |err| {err:.2e}"
    print(msg)  # noqa: T201 -- shown with -s/-rA: the measured error the docs quote
    assert err < 1e-3
    # the floor is an exact atom: all floor voxels counted there
    atoms = result.histogram.atoms
    assert sum(atoms[-float(logits.max())]) == int((logits <= -logits.max()).sum())


def test_pooled_auprc_matches_sklearn(tmp_path):
    hists, ys, ss = [], [], []
    for seed, shape in ((1, (20, 64, 64)), (2, (30, 50, 70))):
        truth, logits = etsam_like(shape, seed)
        paths = [write(tmp_path, f"{n}{seed}.mrc", a) for n, a in (("p", truth), ("t", truth), ("s", logits))]
        hists.append(evaluate_volumes(*paths, score_kind="etsam-logits").histogram)
        ys.append(truth.ravel())
        ss.append(sklearn_etsam(truth, logits).ravel())
    pooled = hists[0] + hists[1]
    exact = average_precision_score(np.concatenate(ys), np.concatenate(ss))
    assert abs(average_precision(pooled) - exact) < 1e-3


@pytest.mark.parametrize("kind", ["logits", "probabilities"])
def test_other_score_kinds_match_sklearn(tmp_path, kind):
    rng = np.random.default_rng(7)
    truth = (rng.random((16, 64, 64)) < 0.04).astype(np.uint8)
    logits = np.where(truth == 1, rng.normal(1, 1.5, truth.shape), rng.normal(-2, 1.5, truth.shape))
    scores = logits if kind == "logits" else sigmoid(logits)
    if kind == "probabilities":
        scores[0] = 0.0  # exact zeros and ones are atoms
        scores[1, :8] = 1.0
    scores = scores.astype(np.float32)
    paths = [write(tmp_path, n, a) for n, a in (("p.mrc", truth), ("t.mrc", truth), ("s.mrc", scores))]
    rec = evaluate_volumes(*paths, score_kind=kind).record
    ref_scores = sigmoid(scores.astype(np.float64)) if kind == "logits" else scores.astype(np.float64)
    assert abs(rec["auprc"] - average_precision_score(truth.ravel(), ref_scores.ravel())) < 1e-4


def test_hand_computed_average_precision():
    h = ScoreHistogram()
    for value, label in ((2.0, 1), (1.0, 0), (0.5, 1), (-1.0, 0)):
        h.add_atom(value, label, 1 - label)
    assert average_precision(h) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # ties: one threshold for the tied pair
    t = ScoreHistogram()
    t.add_atom(1.0, 1, 1)
    t.add_atom(0.0, 1, 0)
    assert average_precision(t) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    curve = pr_curve(h)
    p, r, _ = precision_recall_curve([1, 0, 1, 0], [2.0, 1.0, 0.5, -1.0])
    assert curve["precision"][-1] == pytest.approx(p[0]) and curve["recall"][-1] == pytest.approx(r[0])


def test_confusion_counts_and_metrics_hand_computed(tmp_path):
    truth = np.zeros((2, 3, 3), np.uint8)
    pred = np.zeros_like(truth)
    truth[0, :2, :2] = 1  # 4 positives
    pred[0, 0, :3] = 1  # 3 predicted: 2 tp, 1 fp; fn 2
    rec = evaluate_volumes(write(tmp_path, "p.mrc", pred), write(tmp_path, "t.mrc", truth)).record
    assert (rec["tp"], rec["fp"], rec["fn"], rec["tn"]) == (2, 1, 2, 13)
    assert rec["dice"] == pytest.approx(4 / 7)
    assert rec["iou"] == pytest.approx(2 / 5)
    assert rec["precision"] == pytest.approx(2 / 3)
    assert rec["recall"] == pytest.approx(2 / 4)


def test_threshold_table_exact_against_direct_counts(tmp_path):
    truth, logits = etsam_like((12, 40, 40), seed=3, pos_frac=0.05)
    logits[0, 0, :5] = [-0.25, 0.0, 0.5, 1.0, -2.0]  # values exactly on thresholds
    paths = [write(tmp_path, n, a) for n, a in (("p.mrc", truth), ("t.mrc", truth), ("s.mrc", logits))]
    rec = evaluate_volumes(*paths, score_kind="etsam-logits").record
    x = np.maximum(logits, -logits.max())
    for row in rec["thresholds"]:
        above = x > row["threshold"]
        assert row["tp"] == int((above & (truth == 1)).sum())
        assert row["fp"] == int((above & (truth == 0)).sum())
        tp, fp, fn = row["tp"], row["fp"], row["fn"]
        assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_empty_truth_gives_nan_with_reason(tmp_path):
    truth = np.zeros((2, 4, 4), np.uint8)
    pred = truth.copy()
    pred[0, 0, 0] = 1
    scores = np.random.default_rng(0).normal(size=truth.shape).astype(np.float32)
    out = tmp_path / "m.json"
    rec = evaluate_files(
        write(tmp_path, "p.mrc", pred),
        write(tmp_path, "t.mrc", truth),
        out,
        write(tmp_path, "s.mrc", scores),
        "logits",
    )
    assert math.isnan(rec["dice"]) and "empty" in rec["undefined"]["dice"]
    assert math.isnan(rec["auprc"]) and "auprc" in rec["undefined"]
    assert rec["precision"] == 0.0
    loaded = json.loads(out.read_text())  # NaN survives as JSON NaN
    assert math.isnan(loaded["dice"])
    assert ScoreHistogram.load(histogram_path(out)).n_neg == truth.size


def test_shape_mismatch_names_both_files(tmp_path, cli_main):
    p = write(tmp_path, "pred.mrc", np.zeros((2, 4, 4), np.uint8))
    t = write(tmp_path, "gt.mrc", np.zeros((2, 4, 5), np.uint8))
    with pytest.raises(InputError) as err:
        evaluate_volumes(p, t)
    msg = str(err.value)
    assert "pred.mrc" in msg and "gt.mrc" in msg and "(2, 4, 4)" in msg and "(2, 4, 5)" in msg
    out = tmp_path / "x.json"
    assert cli_main(["evaluate", "--pred", str(p), "--truth", str(t), "--json", str(out)]) == 2
    assert not out.exists()


def test_cli_evaluate(tmp_path, cli_main):
    truth, logits = etsam_like((6, 20, 20), seed=5, pos_frac=0.05)
    p = write(tmp_path, "p.mrc", (logits > -0.25).astype(np.uint8))
    t = write(tmp_path, "t.mrc", truth)
    s = write(tmp_path, "s.mrc", logits)
    out = tmp_path / "m.json"
    argv = [
        "evaluate",
        "--pred",
        str(p),
        "--truth",
        str(t),
        "--scores",
        str(s),
        "--score-kind",
        "etsam-logits",
    ]
    assert cli_main([*argv, "--json", str(out), "--method", "etsam"]) == 0
    rec = json.loads(out.read_text())
    assert rec["method"] == "etsam" and 0 <= rec["auprc"] <= 1 and len(rec["thresholds"]) == 9


def test_bad_scores_are_named_errors(tmp_path):
    truth = np.zeros((2, 4, 4), np.uint8)
    truth[0, 0, 0] = 1
    p, t = write(tmp_path, "p.mrc", truth), write(tmp_path, "t.mrc", truth)
    probs = np.full(truth.shape, 0.5, np.float32)
    probs[1, 1, 1] = 1.5
    with pytest.raises(InputError, match=r"probs\.mrc.*\[0, 1\]"):
        evaluate_volumes(p, t, write(tmp_path, "probs.mrc", probs), "probabilities")
    nan = np.zeros(truth.shape, np.float32)
    nan[1, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"nan\.mrc.*non-finite"):
        evaluate_volumes(p, t, write(tmp_path, "nan.mrc", nan), "logits")


def test_all_floor_volume(tmp_path):
    truth = np.zeros((2, 4, 4), np.uint8)
    truth[0, :2, :2] = 1
    logits = np.full(truth.shape, -1024, np.float32)
    paths = [write(tmp_path, n, a) for n, a in (("p.mrc", truth * 0), ("t.mrc", truth), ("s.mrc", logits))]
    rec = evaluate_volumes(*paths, score_kind="etsam-logits").record
    assert rec["auprc"] == pytest.approx(average_precision_score(truth.ravel(), np.zeros(truth.size)))
    assert math.isnan(rec["precision"]) and "prediction is empty" in rec["undefined"]["precision"]
