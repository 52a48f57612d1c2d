"""The evaluation rules end to end with real Snakemake on fake-but-real-format method outputs.

The ETSAM and baseline rules live on other branches; this writes their outputs (MRC volumes,
provenance.json, benchmark records) into a scratch work folder and runs only the evaluation rules.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from snakemake_helpers import run_snakemake

from tomoseg.core.io import write_volume
from tomoseg.testing.synthetic import membrane_mask

pytestmark = pytest.mark.workflow  # runs Snakemake: left out of `make check`

REPO = Path(__file__).resolve().parents[2]
SHAPE = (16, 40, 40)
MY_RULES = [
    "postprocess",
    "evaluate_scored",
    "evaluate_mask",
    "summarize",
    "figures",
    "overlay",
    "tomogram_page",
    "theta_map",
    "views_figure",
]
BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def fake_outputs(work: Path, tomo: str, seed: int, with_truth: bool) -> None:
    rng = np.random.default_rng(seed)
    truth = membrane_mask(SHAPE, seed=seed, n_shells=3, n_specks=20)
    data = work / "results" / "data" / tomo
    write_volume(data / "tomogram.mrc", rng.normal(size=SHAPE).astype(np.float32) - truth, 13.48)
    if with_truth:
        write_volume(data / "groundtruth.mrc", truth, 13.48)
    noisy = lambda sd: (np.where(truth == 1, 2.0, -2.0) + rng.normal(0, sd, SHAPE)).astype(np.float32)  # noqa: E731
    s2, s1 = noisy(1.5), noisy(2.5)
    s2[0] = -1024.0  # a no-object frame
    etsam = work / "results" / "etsam" / tomo
    write_volume(etsam / "stage2_logits.mrc", s2, 13.48)
    write_volume(etsam / "mask.mrc", (s2 > -0.25).astype(np.uint8), 13.48)
    write_volume(etsam / "stage1_logits.mrc", s1, 13.48)
    write_volume(etsam / "stage1_mask.mrc", (s1 > 0).astype(np.uint8), 13.48)
    mb, td = noisy(2.0), sigmoid(noisy(2.2)).astype(np.float32)
    write_volume(work / "results" / "membrain" / tomo / "scores.mrc", mb, 13.48)
    write_volume(work / "results" / "membrain" / tomo / "mask.mrc", (mb > 0).astype(np.uint8), 13.48)
    write_volume(work / "results" / "tardis" / tomo / "probabilities.mrc", td, 13.48)
    write_volume(work / "results" / "tardis" / tomo / "mask.mrc", (td > 0.5).astype(np.uint8), 13.48)
    for method, folder in (
        ("etsam", etsam),
        ("membrain", etsam.parent.parent / "membrain" / tomo),
        ("tardis", etsam.parent.parent / "tardis" / tomo),
    ):
        (folder / "provenance.json").write_text(json.dumps({"method": method, "untrained": True}))
    for rule, gpu in (
        ("etsam_stage1", 900.0),
        ("etsam_stage2", 1000.0),
        ("membrain", 3000.0),
        ("tardis", 5000.0),
    ):
        bench = work / "results" / "benchmarks" / rule
        bench.mkdir(parents=True, exist_ok=True)
        (bench / f"{tomo}.tsv").write_text(
            BENCH_HEADER
            + f"{rng.uniform(5, 9):.2f}\t0:00:07\t{rng.uniform(500, 900):.1f}\t1\t1\t1\t0\t0\t50\t6\n"
        )
        (bench / f"{tomo}.gpu.json").write_text(
            json.dumps({"device": "cpu", "gpu_name": None, "peak_gpu_memory_mb": gpu})
        )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("wf")
    shutil.copytree(REPO / "config", work / "config")
    (work / "config" / "runs_test.tsv").write_text(
        "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"
        "t1\tphantom\t\t1\t\t\t\tphantom\ttest\n"
        "t2\tphantom\t\t2\t\t\t\tphantom\ttest\n"
        "t3\tlocal\t\t\t\tconfig/t3_source.mrc\t\tnone\ttest\n"
    )
    cfg = (
        (work / "config" / "demo" / "ci.yaml")
        .read_text()
        .replace("config/demo/runs_ci.tsv", "config/runs_test.tsv")
    )
    (work / "config" / "test.yaml").write_text(cfg)
    write_volume(
        work / "config" / "t3_source.mrc", np.zeros(SHAPE, np.float32), 13.48
    )  # older than its import
    for i, tomo in enumerate(("t1", "t2", "t3"), start=1):
        fake_outputs(work, tomo, i, with_truth=tomo != "t3")
    # failures: TARDIS produced nothing for t2; Membrain-Seg's scores for t2 have the wrong shape
    shutil.rmtree(work / "results" / "tardis" / "t2")
    write_volume(
        work / "results" / "membrain" / "t2" / "scores.mrc", np.zeros((16, 40, 41), np.float32), 13.48
    )
    return work


def snakemake(work: Path, *args: str, allow_missing: bool = False) -> subprocess.CompletedProcess:
    configs = [
        str(work / "config" / "test.yaml"),
        *([str(work / "config" / "allow_missing.yaml")] if allow_missing else []),
    ]
    return run_snakemake(work, "--cores", "2", "--configfile", *configs, *args, timeout=600, check=False)


TARGETS = [
    "results/tables/table1.csv",
    "results/figures/figure1b.png",
    *(f"results/figures/overlays/{t}.png" for t in ("t1", "t2", "t3")),
    *(f"results/report/tomograms/{t}.html" for t in ("t1", "t2", "t3")),
    *(f"results/theta/{t}/groundtruth_theta.mrc" for t in ("t1", "t2")),
    *(f"results/figures/{f}.png" for f in ("figure2", "figure3", "figure5")),
]


def test_strict_mode_refuses_missing_method_output(workdir):
    # Only the evaluation rules may run: the baseline rules that could remake the output are not allowed.
    proc = snakemake(workdir, "-n", "--allowed-rules", *MY_RULES, "--", *TARGETS)
    assert proc.returncode != 0
    assert "results/tardis/t2/mask.mrc" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def report_run(workdir):
    proc = snakemake(
        workdir, "--allowed-rules", *MY_RULES, "--keep-going", "--", *TARGETS, allow_missing=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return workdir


def test_tables_figures_and_failures(report_run):
    work = report_run
    res = work / "results"
    # metrics equal a direct computation on the volumes
    rec = json.loads((res / "metrics" / "etsam" / "t1.json").read_text())
    from tomoseg.core.io import read_volume

    pred, truth = (
        read_volume(res / "etsam" / "t1" / "mask.mrc")[0] != 0,
        read_volume(res / "data" / "t1" / "groundtruth.mrc")[0] != 0,
    )
    tp = int((pred & truth).sum())
    assert rec["dice"] == pytest.approx(2 * tp / (pred.sum() + truth.sum()))
    assert rec["untrained"] is True and rec["score_kind"] == "etsam-logits" and "auprc" in rec
    assert (res / "etsam" / "t1" / "mask_postprocessed.mrc").exists()
    assert "auprc" not in json.loads((res / "metrics" / "etsam_postprocessed" / "t1.json").read_text())
    # failures are listed with their reasons, the tomogram without truth as skipped
    failures = pd.read_csv(res / "tables" / "failures.csv")
    rows = {(r.tomo, r.method): (r.status, r.reason) for r in failures.itertuples()}
    assert (
        rows[("t2", "tardis")][0] == "missing" and "results/tardis/t2/mask.mrc" in rows[("t2", "tardis")][1]
    )
    assert rows[("t2", "membrain")][0] == "failed" and "shape mismatch" in rows[("t2", "membrain")][1]
    assert rows[("t3", "all")][0] == "skipped"
    # tables: untrained labels, Table 1 over what exists, Supplementary Table 3 from the benchmark records
    table1 = (res / "tables" / "table1.md").read_text()
    assert "etsam (untrained)" in table1 and "tardis (untrained)" in table1 and "failures.md" in table1
    t1 = pd.read_csv(res / "tables" / "table1.csv")
    assert list(t1["n"].astype(str)) == ["2", "1", "1"]
    s3 = pd.read_csv(res / "tables" / "supp_table3_runtime.csv").set_index("method")
    assert s3.loc["etsam (untrained)", "gpu_mem_mb_mean"] == 1000.0
    th = pd.read_csv(res / "tables" / "thresholds.csv")
    assert sorted(set(th["threshold"])) == [-2, -1, -0.5, -0.25, 0, 0.25, 0.5, 1, 2]
    # the threshold table at -0.25 reproduces the ETSAM mask's own metrics (mask = logits > -0.25)
    row = next(r for r in rec["thresholds"] if r["threshold"] == -0.25)
    assert row["dice"] == pytest.approx(rec["dice"])
    comp = pd.read_csv(res / "tables" / "paper_comparison.csv").set_index(["method", "quantity"])
    assert len(comp) == 3 * 11 + 9 * 4 + 4  # Table 1 + AUPRC + runtime, threshold sweep, stage 1
    assert comp.loc[("etsam (untrained)", "dice at logit > -0.25"), "paper"] == pytest.approx(
        0.7867, abs=5e-5
    )
    assert comp.loc[("etsam (untrained)", "dice"), "ours"] == pytest.approx(
        comp.loc[("etsam (untrained)", "dice at logit > -0.25"), "ours"]
    )
    curves = json.loads((res / "tables" / "pr_curves.json").read_text())
    assert set(curves) == {"etsam", "etsam_stage1", "membrain", "tardis"}
    # plane-wise and theta-wise metrics (on in the CI config) equal a direct computation; their tables
    from tomoseg.evaluation.orientation import theta_wise
    from tomoseg.evaluation.planewise import plane_wise

    mask, gt = res / "etsam" / "t1" / "mask.mrc", res / "data" / "t1" / "groundtruth.mrc"
    assert rec["plane_wise"] == json.loads(json.dumps(plane_wise(mask, gt)))
    assert rec["theta_wise"] == json.loads(json.dumps(theta_wise(mask, gt)["bins"]))
    assert len(pd.read_csv(res / "tables" / "plane_wise.csv")) == 3 * 5  # 5 methods x 3 planes
    assert len(pd.read_csv(res / "tables" / "theta_wise.csv")) == 3 * 5
    assert len(pd.read_csv(res / "stats" / "theta_wise_ttests.csv")) == 3 * 6
    assert read_volume(res / "theta" / "t1" / "groundtruth_theta.mrc")[0].max() <= 90
    for name in (
        "figure1a",
        "figure1b",
        "figure1c",
        "figure1d",
        "figure4",
        "figure_theta",
        "threshold_explorer",
    ):
        assert (res / "figures" / f"{name}.png").stat().st_size > 1000
        assert (res / "figures" / f"{name}.pdf").exists()
    for t in ("t1", "t2", "t3"):
        assert (res / "figures" / "overlays" / f"{t}.png").exists()
    # the 3-D views figures: none of the paper's tomograms is here, so Figures 2 and 5 draw the runs with
    # truth (t1, t2; Figure 5 the first) and Figure 3 the run without (t3)
    for name in ("figure2", "figure3", "figure5"):
        assert (res / "figures" / f"{name}.png").stat().st_size > 1000
        assert (res / "figures" / f"{name}.pdf").exists()
    log = (work / "results" / "logs" / "figures" / "figure5.log").read_text()
    assert "t1" in log and "t2" not in log


@pytest.fixture(scope="module")
def report_html(report_run):
    proc = snakemake(report_run, "--report", "report.html", "--", *TARGETS, allow_missing=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return report_run / "report.html"


def test_report(report_html):
    html = report_html.read_text()
    for item in ("figure1c", "failures", "paper_comparison", "overlays", "dice_z", "tomograms/t1.html"):
        assert item in html
    # every summary table as readable HTML, labelled with its CSV; the home page embeds the config
    for path in ("results/tables/table1.html", "results/stats/ttests.html", "results/tables/failures.html"):
        assert path in html and (report_html.parent / path).exists()
    assert "results/tables/table1.csv" in html and "UNTRAINED WEIGHTS" in html and "show the config" in html
    assert "System Message" not in html  # captions render without reStructuredText warnings


@pytest.mark.browser
def test_report_in_a_browser(report_html, tmp_path):
    """Open the report in headless Chromium and read what a scientist sees on the rendered pages."""
    from browser_helpers import report_browser

    shots = Path(os.environ.get("TOMOSEG_SCREENSHOTS", tmp_path))
    with report_browser(report_html) as page:
        home = page.home()
        assert "segments cell membranes" in home and "What ran" in home
        assert "Methods: etsam, etsam_stage1, etsam_postprocessed, membrain, tardis" in home
        assert "This run used untrained models" in home
        # preset-decided values as they ran and who decided them, never "None" (issue 26 item 3)
        assert "prompts grid_first (preset paper) / empty (preset paper)" in home
        assert "at least 10 (preset paper) Z slices" in home and "None" not in home.split("Results:")[0]
        page.screenshot(shots / "report_home.png")
        table = page.open_entry("Tables", "Table 1: mean ± sd")
        assert table["headers"][:5] == ["method", "dice", "iou", "precision", "recall"]
        assert [r[0] for r in table["rows"]] == [
            "etsam (untrained)",
            "membrain (untrained)",
            "tardis (untrained)",
        ]
        assert table["rows"][0][table["headers"].index("n")] == "2"  # two scored tomograms for ETSAM
        page.screenshot(shots / "report_table1.png")
        tomo = page.open_entry("Tomograms", "t1")
        assert tomo["title"] == "Tomogram t1"
        assert tomo["headers"][:3] == ["method", "status", "dice"]
        rows = {r[0]: r for r in tomo["rows"]}
        rec = json.loads((report_html.parent / "results" / "metrics" / "etsam" / "t1.json").read_text())
        assert rows["etsam (untrained)"][2] == f"{rec['dice']:.4f}"
        assert set(rows) >= {"etsam (untrained)", "membrain (untrained)", "tardis (untrained)"}
        assert tomo["images"] >= 2  # slice overlays and Dice along Z
        page.screenshot(shots / "report_tomogram.png")
