"""Provenance records name the running tomoseg's version; the version has one source."""

from __future__ import annotations

from pathlib import Path

import yaml

import tomoseg
from tomoseg.core.provenance import provenance_record

REPO = Path(__file__).resolve().parents[2]


def test_provenance_records_the_running_package_version():
    assert provenance_record("step")["packages"]["tomoseg"] == tomoseg.__version__


def test_version_has_one_source():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "tomoseg.__version__"' in pyproject
    assert yaml.safe_load((REPO / "CITATION.cff").read_text())["version"] == tomoseg.__version__
