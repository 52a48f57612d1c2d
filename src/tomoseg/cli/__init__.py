"""The `tomoseg` command line: one sub-command per module of `tomoseg.cli` (argparse only; the work is
done by the stage APIs each module calls)."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from tomoseg import __version__
from tomoseg.core.errors import BusyError, InputError, TomosegError, ToolError

# Each module defines `register(subparsers)`; add a line here to add a command.
COMMAND_MODULES = (
    "tomoseg.cli.phantom",
    "tomoseg.cli.normalize",
    "tomoseg.cli.segment",
    "tomoseg.cli.train",
    "tomoseg.cli.etsam_weights",
    "tomoseg.cli.portal",
    "tomoseg.cli.nightly",
    "tomoseg.cli.postprocess",
    "tomoseg.cli.instances",
    "tomoseg.cli.evaluate",
    "tomoseg.cli.threshold",
    "tomoseg.cli.stats",
    "tomoseg.cli.baselines",
    "tomoseg.cli.profile",
    "tomoseg.cli.view",
    "tomoseg.cli.runs_sheet",
    "tomoseg.cli.copick",
)

# Packages that only some commands need (optional extras). Command modules import them when they run,
# so `tomoseg --help` and the other commands work without them; a command that needs a missing one
# says where it comes from, in one line (exit status 1).
_ETSAM = "the etsam extra: pip install 'tomoseg[etsam]' (docs/install.md)"
_SAM2 = "SAM2_BUILD_CUDA=0 pip install --no-build-isolation --no-deps sam2==1.1.0 (docs/install.md)"
_WORKFLOW = "the workflow extra: pip install 'tomoseg[workflow]'"
OPTIONAL_PACKAGES = {
    "torch": _ETSAM,
    "hydra": _ETSAM,
    "iopath": _ETSAM,
    "PIL": _ETSAM,
    "sam2": _SAM2,
    "snakemake": _WORKFLOW,
    "cryoet_data_portal": _WORKFLOW,
    "zarr": "the zarr extra: pip install 'tomoseg[zarr]'",
    "ome_zarr": "the zarr extra: pip install 'tomoseg[zarr]'",
    "copick": "the copick extra: pip install 'tomoseg[copick]'",
    "napari": "the view extra: pip install 'tomoseg[view]' (napari with a Qt backend)",
}

# Exit status of each deliberate error (the first matching class wins; order from specific to general).
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (InputError, 2),  # a file or setting tomoseg cannot use (argparse also exits 2 on bad arguments)
    (BusyError, 75),  # EX_TEMPFAIL: another process holds the lock; try again later
    (ToolError, 1),  # an external tool failed
    (TomosegError, 1),
)


# Errors of a path as given (too long, a loop of links, a file where a folder is expected): a bad argument,
# reported like an InputError (one line naming the path, exit status 2) wherever the path is first touched.
PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR})


def exit_code(error: BaseException) -> int:
    """The exit status for a deliberate error (see EXIT_CODES)."""
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))


def format_default(value: object) -> str:
    """A default as `--help` shows it: list items separated by spaces, as they are typed."""
    if isinstance(value, list | tuple):
        return " ".join(str(item) for item in value)
    return str(value)


def shows_default(action: argparse.Action) -> bool:
    """Whether `--help` shows this option's default: not for None, False, empty values or -h/--version."""
    default = action.default
    if default is None or default is False or default == argparse.SUPPRESS:
        return False
    if isinstance(default, list | tuple | str) and not default:
        return False
    return not isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction)


class HelpFormatter(argparse.HelpFormatter):
    """Help that ends every option's text with its default (when it has a meaningful one)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if shows_default(action):
            shown = format_default(action.default).replace("%", "%%")
            text = f"{text} (default: {shown})" if text else f"default: {shown}"
        return text


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose help shows defaults; sub-parsers (nested ones too) inherit the class."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered sub-command."""
    parser = Parser(prog="tomoseg", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"tomoseg {__version__}", help="print the version and exit"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a deliberate error is printed once, as one line, with its exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except TomosegError as err:
        if args.verbose:
            logging.getLogger("tomoseg").debug("traceback", exc_info=err)
        sys.stderr.write(f"tomoseg {args.command}: error: {err}\n")
        return exit_code(err)
    except OSError as err:
        if err.errno not in PATH_ERRNOS or isinstance(err, TomosegError):
            raise
        if args.verbose:
            logging.getLogger("tomoseg").debug("traceback", exc_info=err)
        sys.stderr.write(
            f"tomoseg {args.command}: error: {err.filename}: {err.strerror} (a path tomoseg cannot use)\n"
        )
        return 2
    except ModuleNotFoundError as err:
        package = (err.name or "").split(".")[0]
        if package not in OPTIONAL_PACKAGES:
            raise
        sys.stderr.write(
            f"tomoseg {args.command}: error: this command needs {package}, which is not installed; "
            f"install {OPTIONAL_PACKAGES[package]}\n"
        )
        return 1
