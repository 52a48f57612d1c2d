"""Documentation points at files that exist: every repository path and relative link in the Markdown."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOP_FOLDERS = ("src/", "tests/", "workflow/", "docs/", "benchmarks/", "config/", "profiles/", ".ci/")
# `path` in backticks, or a Markdown link target, that starts at a tracked top folder
CODE_PATH = re.compile(r"`((?:" + "|".join(re.escape(f) for f in TOP_FOLDERS) + r")[^`\s]*)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
DOTTED = re.compile(r"`(tomoseg(?:\.\w+)+)`")
# Files a user or a command creates (the docs tell how), not files of the repository.
CREATED_BY_USERS = {"profiles/slurm/partitions.yaml", "config/runs.pins.tsv"}


def _documents() -> list[Path]:
    docs = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    docs += [p for p in (REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md") if p.exists()]
    return docs


def _exists(base: Path, ref: str) -> bool:
    ref = ref.split("::")[0].rstrip(".,:;")
    if any(ch in ref for ch in "*{}<>$") or ref.startswith("results/") or ref in CREATED_BY_USERS:
        return True  # a pattern or a workflow output, not a file of the repository
    return (base / ref).exists()


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_paths_and_links_exist(doc):
    text = doc.read_text()
    missing = [ref for ref in CODE_PATH.findall(text) if not _exists(REPO, ref)]
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        if not _exists(doc.parent, target):
            missing.append(target)
    assert not missing, f"{doc.relative_to(REPO)} points at files that do not exist: {missing}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_named_modules_and_functions_exist(doc):
    missing = [name for name in DOTTED.findall(doc.read_text()) if not _resolves(name)]
    assert not missing, f"{doc.relative_to(REPO)} names modules or functions that do not exist: {missing}"


def test_readme_layout_section_names_real_folders():
    readme = (REPO / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1]
    block = layout.split("```", 2)[1]
    package = REPO / "src" / "tomoseg"
    for line in block.strip().splitlines():
        if not line.strip() or line.startswith(" " * 10):
            continue  # a continuation line of a description
        names = line.strip().split("  ")[0]
        base = package if line.startswith("  ") else REPO
        for item in names.replace(",", " ").split():
            assert (base / item).exists(), f"README layout names {item}, which does not exist"
