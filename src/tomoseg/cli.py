"""The `tomoseg` command line: one sub-command per module in `tomoseg.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tomoseg import __version__
from tomoseg.io import InputError

# Each module in tomoseg.commands defines `register(subparsers)`; add a line here to add a command.
COMMAND_MODULES = (
    "tomoseg.commands.phantom",
    "tomoseg.commands.normalize",
    "tomoseg.commands.segment",
    "tomoseg.commands.etsam_weights",
    "tomoseg.commands.portal",
    "tomoseg.nightly",
    "tomoseg.commands.postprocess",
    "tomoseg.commands.evaluate",
    "tomoseg.commands.stats",
    "tomoseg.commands.baselines",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(prog="tomoseg", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tomoseg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input exits with status 2 and a one-line message naming the file."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        logging.getLogger("tomoseg").error("%s", err)
        sys.stderr.write(f"tomoseg {args.command}: error: {err}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
