"""The errors tomoseg raises on purpose: each says what went wrong and where, and maps to one exit code."""

from __future__ import annotations


class TomosegError(Exception):
    """Base of every error tomoseg raises deliberately (the CLI prints its message once, no traceback)."""


class InputError(TomosegError, ValueError):
    """A file or setting that tomoseg cannot use; the message names the file and the problem."""


class OutputError(InputError):
    """An output that cannot be written (disk full, read-only, a folder in the way); names the file."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: cannot write here ({reason})")
        self.path, self.reason = path, reason


class ToolError(TomosegError, RuntimeError):
    """An external tool (Membrain-Seg, TARDIS) failed or produced no usable output."""


class BusyError(TomosegError, RuntimeError):
    """Another process holds a lock this command needs (e.g. another nightly run); nothing was changed."""
