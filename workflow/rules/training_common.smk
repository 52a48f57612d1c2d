# Training's rows and inputs (training.smk, docs/training.md): read once at parse time.

TRAINING = config.get("training") or {}
TRAIN_ROWS = {}
if TRAINING.get("runs"):
    _train_sheet = read_runs_sheet(TRAINING["runs"])
    TRAIN_ROWS = (
        _train_sheet[_train_sheet["split"].isin(["train", "val"])]
        .set_index("tomo", drop=False)
        .to_dict("index")
    )
TRAIN_DIR = "results/training"


def training_file(tomo, name):
    """A training row's tomogram or truth: its local file, else the phantom made under results/training/data."""
    row = TRAIN_ROWS[tomo]
    column = "path" if name == "tomogram.mrc" else "truth_path"
    return row[column] if row.get(column) else f"{TRAIN_DIR}/data/{tomo}/{name}"


def training_inputs(wildcards):
    """The training sheet and every train/val row's files (an error when no sheet is configured)."""
    if not TRAIN_ROWS:
        raise WorkflowError(
            "training: set training.runs to a runs sheet with split train rows (docs/training.md)"
        )
    files = {"runs": TRAINING["runs"]}
    for tomo in TRAIN_ROWS:
        files[f"{tomo}_tomogram"] = training_file(tomo, "tomogram.mrc")
        files[f"{tomo}_truth"] = training_file(tomo, "groundtruth.mrc")
    if TRAINING.get("init"):
        files["init"] = TRAINING["init"]
    return files
