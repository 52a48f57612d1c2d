"""`tomoseg stats`: Table 1 (mean ± sd), paired t-tests with Bonferroni markers, and Figure 1b."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoseg.core.errors import InputError


def _parse_methods(items: list[str]) -> dict[str, Path]:
    methods: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--method {item!r}: expected NAME=PER_TOMOGRAM.csv")
        if name in methods:
            raise InputError(f"--method {name} given twice")
        methods[name] = Path(path)
    return methods


def _run(a: argparse.Namespace) -> int:
    from tomoseg.reporting.paper import run_stats  # pandas, scipy, matplotlib: loaded only when it runs

    run_stats(_parse_methods(a.method), a.out, a.untrained, figure=not a.no_figure)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `stats` sub-command."""
    p = sub.add_parser("stats", help="Table 1, paired tests and box plots from per-tomogram metric CSVs")
    p.add_argument(
        "--method",
        action="append",
        required=True,
        metavar="NAME=CSV",
        help="a method and its per-tomogram CSV (columns tomo or dataset_id+run_id, dice, iou, precision, "
        "recall); repeat per method; the first is compared against the others in the figure",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--untrained", nargs="*", default=[], metavar="NAME", help="methods to label as untrained")
    p.add_argument("--no-figure", action="store_true", help="tables only")
    p.set_defaults(func=_run)
