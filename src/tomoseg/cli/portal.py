"""`tomoseg pin-runs`: write the chosen portal tomogram ids (and sha256) back into a runs sheet."""

from __future__ import annotations

import argparse
from pathlib import Path


def _run(a: argparse.Namespace) -> int:
    from tomoseg.acquisition.rows import pin_runs  # the portal client: loaded only when it runs

    return int(pin_runs(a.runs, a.results, a.portal_url, not a.offline) or 0)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `pin-runs` sub-command."""
    p = sub.add_parser(
        "pin-runs", help="write the chosen portal tomogram ids (and sha256) back into a runs sheet"
    )
    p.add_argument("--runs", type=Path, default=Path("config/runs.tsv"), help="runs sheet to update in place")
    p.add_argument(
        "--results", type=Path, default=Path("results"), help="workflow results folder (source.json records)"
    )
    p.add_argument("--portal-url", default=None, help="GraphQL endpoint (default: the public portal)")
    p.add_argument(
        "--offline", action="store_true", help="only use downloaded records; do not query the portal"
    )
    p.set_defaults(func=_run)
