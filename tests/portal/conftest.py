"""Fixtures for the portal tests: a stand-in portal/Dataverse on 127.0.0.1 and fast download options."""

import pytest
from cdp_standin import Portal

from tomoseg.core.fetch import DownloadOptions


@pytest.fixture
def portal():
    server = Portal().start()
    yield server
    server.stop()


@pytest.fixture
def fast():
    return DownloadOptions(connect_timeout_s=2.0, read_timeout_s=0.5, retries=2, backoff_s=0.01)
