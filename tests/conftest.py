import sys
from pathlib import Path

import pytest

# Test helpers (tests/snakemake_helpers.py, tests/etsam_helpers.py) are imported as plain modules.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def cli_main():
    """The `tomoseg` command line's entry point, called in-process with an argv list."""
    from tomoseg.cli import main

    return main
