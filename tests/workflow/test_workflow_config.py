"""Config and runs-sheet validation: malformed input is rejected with a message naming the field."""

import pytest
from snakemake_helpers import make_workdir, run_snakemake

HEADER = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"


def write_runs(workdir, *rows):
    (workdir / "config" / "runs_test.tsv").write_text(HEADER + "".join("\t".join(r) + "\n" for r in rows))
    return "config/runs_test.tsv"


def dry_run(workdir, **kwargs):
    return run_snakemake(workdir, "-n", "--cores", "1", check=False, **kwargs)


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
