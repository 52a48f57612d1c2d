"""`tomoseg nightly`: one nightly batch of new CryoET Data Portal runs (see docs/nightly.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(a: argparse.Namespace) -> int:
    from tomoseg.batch.nightly import run_night  # loaded only when a night runs

    return int(
        run_night(a.configfile.resolve(), find_repo(a.repo, a.workdir), a.workdir.resolve(), a.snakemake) or 0
    )


def find_repo(repo: Path | None, workdir: Path) -> Path:
    """The checkout holding workflow/Snakefile: `--repo`, else the working directory, else this source tree."""
    if repo is not None:
        return repo.resolve()
    if (workdir / "workflow" / "Snakefile").exists():
        return workdir.resolve()
    for parent in Path(__file__).resolve().parents:
        if (parent / "workflow" / "Snakefile").exists():
            return parent
    return workdir.resolve()


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `nightly` sub-command."""
    p = sub.add_parser(
        "nightly", help="one nightly batch: new portal runs -> segmentations, state and report"
    )
    p.add_argument(
        "--configfile",
        type=Path,
        default=Path("config/config.yaml"),
        help="workflow config with a nightly: section",
    )
    p.add_argument(
        "--workdir", type=Path, default=Path("."), help="where results/ and the nightly state live"
    )
    p.add_argument(
        "--repo",
        type=Path,
        default=None,
        help="checkout holding workflow/Snakefile (default: the working directory if it has one, else this "
        "source tree)",
    )
    p.add_argument("--snakemake", default=None, help="snakemake executable (default: the one on PATH)")
    p.set_defaults(func=_run)
