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


@pytest.fixture
def portal():
    """A stand-in CryoET Data Portal (GraphQL + file server) and Dataverse on 127.0.0.1."""
    from cdp_standin import Portal

    server = Portal().start()
    yield server
    server.stop()


@pytest.fixture
def fast():
    """Download options with short timeouts and quick retries, for tests against the stand-in."""
    from tomoseg.core.fetch import DownloadOptions

    return DownloadOptions(connect_timeout_s=2.0, read_timeout_s=0.5, retries=2, backoff_s=0.01)
