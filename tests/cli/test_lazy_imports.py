"""The command line without the optional heavy packages: `tomoseg --help` and the commands that do not
need torch run where torch, sam2, pandas and matplotlib cannot be imported, and `tomoseg --help` loads
none of the heavy packages. (The installed wheel in a fresh venv: tests/test_install.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = (
    "torch",
    "sam2",
    "hydra",
    "scipy",
    "pandas",
    "matplotlib",
    "requests",
    "cryoet_data_portal",
    "napari",
)
ABSENT = ("torch", "sam2", "hydra", "pandas", "matplotlib")  # what a base install may lack
COMMANDS = (
    "phantom", "normalize", "segment", "train", "fetch-weights", "make-test-checkpoints", "pin-runs", "nightly",
    "postprocess", "instances", "evaluate", "threshold", "stats", "make-baseline-checkpoints", "baseline", "profile",
    "view", "runs-sheet", "copick",
)  # fmt: skip

# Runs `tomoseg.cli.main(argv)` with imports of BLOCKED failing like absent packages, then prints the
# exit status and the heavy packages that got loaded, as JSON on the last line.
RUNNER = """
import json, sys
blocked, heavy, argv = sys.argv[1].split(","), sys.argv[2].split(","), sys.argv[3:]

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Absent())
from tomoseg.cli import main
try:
    status = main(argv)
except SystemExit as stop:
    status = stop.code
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
print(json.dumps({"status": status, "loaded": loaded}))
"""


def run(*argv: str, blocked: tuple[str, ...] = ABSENT, cwd: Path | None = None) -> tuple[dict, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, ",".join(blocked), ",".join(HEAVY), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    return json.loads(lines[-1]), proc.stdout + proc.stderr


def test_help_loads_no_heavy_package():
    result, output = run("--help", blocked=())
    assert result == {"status": 0, "loaded": []}, output
    assert all(command in output for command in COMMANDS), output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_parses_without_the_heavy_packages(command):
    result, output = run(command, "--help")
    assert result == {"status": 0, "loaded": []}, output


def test_phantom_and_evaluate_run_without_torch_pandas_matplotlib(tmp_path):
    result, output = run("phantom", "--out", "ph", "--seed", "1", "--shape", "16", "32", "32", cwd=tmp_path)
    assert result["status"] == 0, output
    result, output = run(
        "evaluate",
        "--pred", "ph/groundtruth.mrc", "--truth", "ph/groundtruth.mrc", "--json", "m.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert result["status"] == 0, output
    assert not {"torch", "pandas", "matplotlib"} & set(result["loaded"])
    assert json.loads((tmp_path / "m.json").read_text())["dice"] == 1.0


def test_segment_without_torch_says_which_extra(tmp_path):
    result, output = run("segment", "tomo.mrc", "--out", "out", cwd=tmp_path)
    assert result["status"] == 1, output
    assert "needs torch" in output and "tomoseg[etsam]" in output
    assert "Traceback" not in output
