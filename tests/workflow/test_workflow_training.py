"""The workflow trains: `snakemake train` plans the training phantoms and one GPU training job, and the
method etsam_trained segments the selected runs with the trained checkpoints."""

from snakemake_helpers import make_workdir, run_snakemake

TRAINING = {"runs": "config/demo/train_runs.tsv", "preset": "demo", "device": "cpu"}


def _jobs(stdout: str) -> dict[str, int]:
    """Job counts of a dry run's 'Job stats' table."""
    table = stdout.split("Job stats:")[1].split("\n\n")[0]
    counts = {}
    for line in table.splitlines()[3:]:
        name, _, count = line.rpartition(" ")
        if count.isdigit():
            counts[name.strip()] = int(count)
    return counts


def test_train_target_plans_the_training_phantoms_and_one_training_job(tmp_path):
    workdir = make_workdir(tmp_path, training=TRAINING)
    proc = run_snakemake(workdir, "-n", "--cores", "1", "train")
    jobs = _jobs(proc.stdout)
    assert jobs["phantom"] == 4 and jobs["train_etsam"] == 1  # the data rule of every phantom row
    assert "results/data/phantom-101/groundtruth.mrc" in proc.stdout
    assert "etsam_trained_stage1" not in jobs
    assert "results/training/etsam_stage2.pt" in proc.stdout


def test_etsam_trained_segments_the_selected_runs_with_the_trained_model(tmp_path):
    workdir = make_workdir(tmp_path, training=TRAINING, methods=["etsam", "etsam_trained"])
    proc = run_snakemake(workdir, "-n", "--cores", "1")
    jobs = _jobs(proc.stdout)
    assert jobs["train_etsam"] == 1
    assert jobs["etsam_trained_stage1"] == jobs["etsam_trained_stage2"] == jobs["etsam_stage1"] == 2
    assert "results/etsam_trained/phantom-001/mask.mrc" in proc.stdout
    assert jobs["training_curves"] == 1  # the loss and validation curves go into the report


def test_train_without_a_training_sheet_says_so(tmp_path):
    workdir = make_workdir(tmp_path)
    proc = run_snakemake(workdir, "-n", "--cores", "1", "train", check=False)
    assert proc.returncode != 0
    assert "training.runs" in proc.stdout + proc.stderr


def test_portal_training_rows_are_downloaded_by_the_data_rules(tmp_path):
    """A training sheet's portal rows (train or val, any split the runs sheet selects or not) are downloaded
    to results/data/{tomo}/ by the portal rules, their truth from the Dataverse, as phantom rows are made
    there by the phantom rule. Planning stays offline."""
    sheet = (
        "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"
        "cdp-10000-245\tcdp\t10000\t245\t\t\t\tdataverse\ttrain\n"
        "phantom-104\tphantom\t\t104\t\t\t\tphantom\tval\n"
        "cdp-10001-258\tcdp\t10001\t258\t\t\t\tdataverse\ttest\n"
    )
    training = {**TRAINING, "runs": "config/train_portal.tsv"}
    workdir = make_workdir(tmp_path, training=training)
    (workdir / "config" / "train_portal.tsv").write_text(sheet)
    proc = run_snakemake(workdir, "-n", "--cores", "1", "train")
    jobs = _jobs(proc.stdout)
    assert jobs["download_tomogram"] == jobs["download_groundtruth"] == 1  # the test row is not trained on
    assert jobs["phantom"] == 1 and jobs["train_etsam"] == 1
    assert "results/data/cdp-10000-245/groundtruth.mrc" in proc.stdout
    assert "cdp-10001-258" not in proc.stdout


def test_a_key_in_both_sheets_must_be_the_same_row(tmp_path):
    sheet = (
        "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"
        "phantom-001\tphantom\t\t77\t\t\t\tphantom\ttrain\n"
    )
    workdir = make_workdir(tmp_path, training={**TRAINING, "runs": "config/clash.tsv"})
    (workdir / "config" / "clash.tsv").write_text(sheet)
    proc = run_snakemake(workdir, "-n", "--cores", "1", "train", check=False)
    assert proc.returncode != 0
    assert "'phantom-001' is a row of both" in proc.stdout + proc.stderr
