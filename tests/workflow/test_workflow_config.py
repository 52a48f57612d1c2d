"""Config and runs-sheet validation: malformed input is rejected with a message naming the field."""

import pytest
from snakemake_helpers import make_workdir, run_snakemake

pytestmark = pytest.mark.workflow  # runs Snakemake: left out of `make check`

HEADER = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"


def write_runs(workdir, *rows):
    (workdir / "config" / "runs_test.tsv").write_text(HEADER + "".join("\t".join(r) + "\n" for r in rows))
    return "config/runs_test.tsv"


def dry_run(workdir, extra=(), **kwargs):
    return run_snakemake(workdir, "-n", "--cores", "1", *extra, check=False, **kwargs)


def test_demo_config_plans_phantom_and_normalize_jobs(tmp_path):
    workdir = make_workdir(tmp_path)
    proc = dry_run(workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "phantom-001" in proc.stdout and "phantom-002" in proc.stdout


@pytest.mark.parametrize(
    "row, field",
    [
        (["bad key!", "phantom", "", "1", "", "", "", "phantom", "test"], "tomo"),
        (["p1", "ftp", "", "1", "", "", "", "phantom", "test"], "source"),
        (["p1", "phantom", "", "1", "", "", "", "phantom", "validation"], "split"),
        (["c1", "cdp", "10000", "", "", "", "", "dataverse", "test"], "run_id"),
        (["c1", "cdp", "abc", "245", "", "", "", "dataverse", "test"], "dataset_id"),
        (["l1", "local", "", "", "", "", "", "none", "test"], "path"),
        (["l1", "local", "", "", "", "/x.mrc", "", "local", "test"], "truth_path"),
        (["c1", "cdp", "10000", "TS_1", "", "", "", "dataverse", "test"], "run_id"),
        (["k1", "copick", "", "", "", "/p.json", "", "none", "test"], "run_id"),
        (["k1", "copick", "", "TS_1", "", "", "", "none", "test"], "path"),
        (["k1", "copick", "", "TS_1", "", "/p.json", "", "local", "test"], "truth"),
    ],
)
def test_malformed_runs_sheet_is_rejected_naming_the_field(tmp_path, row, field):
    workdir = make_workdir(tmp_path)
    runs = write_runs(workdir, row)
    proc = run_snakemake(workdir, "-n", "--cores", "1", "--config", f"runs={runs}", check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert f"instance['{field}']" in output and "config/runs_test.tsv: invalid runs sheet" in output, output[
        -3000:
    ]


def test_missing_column_is_rejected(tmp_path):
    workdir = make_workdir(tmp_path)
    (workdir / "config" / "runs_test.tsv").write_text("tomo\tsource\np1\tphantom\n")
    proc = run_snakemake(workdir, "-n", "--cores", "1", "--config", "runs=config/runs_test.tsv", check=False)
    assert proc.returncode != 0 and "dataset_id" in (proc.stdout + proc.stderr)


def test_duplicate_keys_are_rejected(tmp_path):
    workdir = make_workdir(tmp_path)
    row = ["p1", "phantom", "", "1", "", "", "", "phantom", "test"]
    runs = write_runs(workdir, row, row)
    proc = run_snakemake(workdir, "-n", "--cores", "1", "--config", f"runs={runs}", check=False)
    assert proc.returncode != 0 and "duplicate tomo keys ['p1']" in (proc.stdout + proc.stderr)


@pytest.mark.parametrize(
    "override, field",
    [
        ("normalization=zscore", "normalization"),
        ("splits=[]", "splits"),
        ("methods=[deeplabv3]", "methods"),
    ],
)
def test_malformed_config_is_rejected_naming_the_field(tmp_path, override, field):
    workdir = make_workdir(tmp_path)
    proc = run_snakemake(workdir, "-n", "--cores", "1", "--config", override, check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert f"['{field}']" in output and "invalid configuration" in output, output[-3000:]


def planned_rules(output):
    """(rule, tomo) of every job a dry run lists."""
    planned, rule = set(), None
    for line in output.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("wildcards:") and "tomo=" in line:
            planned.add((rule, line.split("tomo=")[1].split(",")[0]))
    return planned


def test_each_source_makes_its_own_rows_in_a_mixed_sheet(tmp_path):
    # No per-key wildcard constraints: the rule of each row's source is chosen by its input function.
    workdir = make_workdir(tmp_path, methods=[], copick={"voxel_spacing": 10.0})
    for name in ("l1.mrc", "l1_truth.mrc", "l2.mrc", "copick.json"):
        (tmp_path / name).touch()
    runs = write_runs(
        workdir,
        ["p1", "phantom", "", "1", "", "", "", "phantom", "test"],
        [
            "l1",
            "local",
            "",
            "",
            "",
            str(tmp_path / "l1.mrc"),
            str(tmp_path / "l1_truth.mrc"),
            "local",
            "test",
        ],
        ["l2", "local", "", "", "", str(tmp_path / "l2.mrc"), "", "none", "test"],
        ["c1", "cdp", "10000", "245", "", "", "", "cdp", "test"],
        ["c2", "cdp", "10000", "246", "", "", "", "none", "test"],
        ["c3", "cdp", "10000", "247", "", "", "", "cdp", "train"],
        ["k1", "copick", "", "TS_001", "", str(tmp_path / "copick.json"), "", "copick", "test"],
        ["k2", "copick", "", "16193", "", str(tmp_path / "copick.json"), "", "none", "test"],
    )
    proc = dry_run(workdir, extra=("--config", f"runs={runs}"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    makers = {
        (rule, tomo) for rule, tomo in planned_rules(proc.stdout) if rule not in ("normalize", "overlay")
    }
    assert makers == {
        ("phantom", "p1"),
        ("import_local_tomogram", "l1"),
        ("import_local_truth", "l1"),
        ("import_local_tomogram", "l2"),
        ("download_tomogram", "c1"),
        ("download_groundtruth", "c1"),
        ("download_tomogram", "c2"),
        ("import_copick_tomogram", "k1"),
        ("import_copick_truth", "k1"),
        ("import_copick_tomogram", "k2"),
    }
    assert "Warning" not in proc.stdout + proc.stderr

    # a key that is not a selected row (c3 is in the train split) is an error naming the sheet
    proc = dry_run(workdir, extra=("--config", f"runs={runs}", "--", "results/data/c3/normalized.mrc"))
    assert proc.returncode != 0
    assert f"'c3' is not a row of {runs} in the selected splits ['test']" in proc.stdout + proc.stderr


def test_copick_rows_need_a_voxel_spacing_and_methods_distinct_segmentations(tmp_path):
    (tmp_path / "copick.json").touch()
    row = ["k1", "copick", "", "TS_1", "", str(tmp_path / "copick.json"), "", "none", "test"]

    def plan(name, **overrides):
        workdir = make_workdir(tmp_path / name, methods=["etsam", "etsam_stage1"], **overrides)
        proc = dry_run(workdir, extra=("--config", f"runs={write_runs(workdir, row)}"))
        return proc.returncode, proc.stdout + proc.stderr

    code, output = plan("unset")
    assert code != 0 and "has copick rows but copick.voxel_spacing is not set" in output
    code, output = plan(
        "same", copick={"voxel_spacing": 10.0, "segmentation": {"write": True, "user_id": "tomoseg"}}
    )
    assert code != 0
    assert "copick.segmentation gives several methods the same name, user id and session id" in output
    # with the default ids ({method} in the user id) both masks are exported, and OME-Zarr copies planned
    code, output = plan(
        "fine", copick={"voxel_spacing": 10.0, "segmentation": {"write": True}}, output_format="both"
    )
    assert code == 0, output[-3000:]
    for path in (
        "results/copick/etsam/k1.json",
        "results/copick/etsam_stage1/k1.json",
        "results/etsam/k1/mask.zarr",
        "results/etsam/k1/stage1_logits.zarr",
        "results/etsam/k1/stage2_logits.zarr",
        "results/etsam/k1/stage1_mask.zarr",
    ):
        assert path in output, path
