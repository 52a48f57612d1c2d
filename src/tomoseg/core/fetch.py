"""Robust HTTP downloads: timeouts, retries with backoff, resume of partial files, size checks."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from tomoseg import __version__
from tomoseg.core.io import InputError

log = logging.getLogger(__name__)

USER_AGENT = f"tomoseg/{__version__}"
CHUNK = 1 << 16
# Statuses worth retrying (transient); every other non-2xx status is a permanent error.
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(InputError):
    """A download that failed or delivered the wrong bytes; the message names the item and the URL."""


class _Transient(Exception):
    """A failure worth another attempt (timeouts, broken connections, short reads, 5xx)."""


@dataclass(frozen=True)
class DownloadOptions:
    """How hard to try: connect/read timeouts (s), attempts after the first, backoff base (s), query timeout.

    `progress`: a bytes-and-rate bar on stderr; None = only when stderr is a terminal, False = never.
    """

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    retries: int = 5
    backoff_s: float = 5.0
    max_backoff_s: float = 120.0
    query_timeout_s: float = 120.0
    progress: bool | None = None

    @classmethod
    def from_config(cls, cfg: dict | None) -> DownloadOptions:
        """Build options from the workflow's `download:` config section (missing keys keep defaults)."""
        cfg = cfg or {}
        timeout = cfg.get("timeout_s")
        return cls(
            connect_timeout_s=float(cfg.get("connect_timeout_s", cls.connect_timeout_s)),
            read_timeout_s=float(timeout if timeout is not None else cls.read_timeout_s),
            retries=int(cfg.get("retries", cls.retries)),
            backoff_s=float(cfg.get("backoff_s", cls.backoff_s)),
            query_timeout_s=float(cfg.get("query_timeout_s", cls.query_timeout_s)),
        )


DEFAULT_OPTIONS = DownloadOptions()


def progress_bar(what: str, options: DownloadOptions, total: int | None = None) -> tqdm:
    """A bytes-and-rate bar on stderr for one download (shown per `options.progress`, see DownloadOptions)."""
    return tqdm(
        total=total,
        desc=what,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=None if options.progress is None else not options.progress,
    )


def partial_path(dest: Path) -> Path:
    """The hidden sibling a download streams into (kept between attempts and runs for resume)."""
    return dest.with_name(f".{dest.name}.part")


def _partial_meta(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def same_download(meta: Path, signature: dict[str, Any]) -> bool:
    """Whether the signature recorded beside a partial download is `signature` (only the same download resumes)."""
    try:
        return bool(json.loads(meta.read_text()) == signature)
    except (OSError, ValueError):
        return False


def fetch(
    url: str,
    dest: str | os.PathLike,
    what: str,
    expected_size: int | None,
    options: DownloadOptions = DEFAULT_OPTIONS,
    session: requests.Session | None = None,
    bar: tqdm | None = None,
) -> Path:
    """Download `url` into the partial file of `dest` (resuming if possible) and return that path.

    The caller validates the content and renames it into place, so `dest` itself never holds a
    partial or unchecked file. `what` names the item (e.g. the run) in every error message.
    `bar` is a shared progress bar that only counts bytes (many files, one bar); without it the
    download shows its own bar, from the resumed offset to `expected_size`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest)
    meta = _partial_meta(part)
    signature = {"url": url, "expected_size": expected_size}
    if part.exists():
        if not same_download(meta, signature):
            log.info("%s: discarding a partial download of another file (%s)", what, part)
            part.unlink()
    meta.write_text(json.dumps(signature))
    own_session, own_bar = session is None, bar is None
    session = session or requests.Session()
    bar = bar if bar is not None else progress_bar(what, options, expected_size)
    session.headers.setdefault("User-Agent", USER_AGENT)
    last_error = "no attempt made"
    try:
        for attempt in range(options.retries + 1):
            if attempt:
                delay = min(options.backoff_s * 2 ** (attempt - 1), options.max_backoff_s)
                log.warning(
                    "%s: attempt %d failed (%s); retrying in %.1f s", what, attempt, last_error, delay
                )
                time.sleep(delay)
            try:
                _attempt(session, url, part, what, expected_size, options, bar, own_bar)
                log.info("%s: downloaded %s (%d bytes)", what, url, part.stat().st_size)
                meta.unlink(missing_ok=True)
                return part
            except _Transient as err:
                last_error = str(err)
            except (requests.ConnectionError, requests.Timeout) as err:
                last_error = f"{type(err).__name__}: {err}"
            except requests.exceptions.ChunkedEncodingError as err:
                last_error = f"connection broken: {err}"
            except DownloadError:
                part.unlink(missing_ok=True)
                meta.unlink(missing_ok=True)
                raise
    finally:
        if own_session:
            session.close()
        if own_bar:
            bar.close()
    raise DownloadError(
        f"{what}: download of {url} failed after {options.retries + 1} attempts: {last_error}"
    )


def _total(start: int, announced: str | None) -> int | None:
    """The whole file's size from the resume offset and the announced length, None when not announced."""
    return start + int(announced) if announced is not None else None


def _attempt(
    session: requests.Session,
    url: str,
    part: Path,
    what: str,
    expected: int | None,
    options: DownloadOptions,
    bar: tqdm,
    own_bar: bool,
) -> None:
    """One GET (ranged when a partial file exists); raises _Transient for retryable failures."""
    offset = part.stat().st_size if part.exists() else 0
    if expected is not None and offset > expected:
        part.unlink()
        offset = 0
    if expected is not None and offset == expected and offset > 0:
        return
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    timeout = (options.connect_timeout_s, options.read_timeout_s)
    with session.get(url, stream=True, timeout=timeout, headers=headers) as response:
        status = response.status_code
        if status == 416 and offset:
            part.unlink()
            raise _Transient(f"server refused to resume at byte {offset} (416); restarting from scratch")
        if status in RETRY_STATUS:
            raise _Transient(f"HTTP {status} {response.reason}")
        if status not in (200, 206):
            raise DownloadError(f"{what}: {url}: HTTP {status} {response.reason} (nothing saved)")
        content_type = response.headers.get("Content-Type", "")
        if "text/html" in content_type.lower():
            raise DownloadError(
                f"{what}: {url}: server sent an HTML page instead of the file (nothing saved)"
            )
        mode = "wb"
        if status == 206 and offset:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                part.unlink()
                raise _Transient(f"unexpected Content-Range {content_range!r} for a resume at {offset}")
            mode = "ab"
            log.info("%s: resuming %s at byte %d", what, url, offset)
        # Content-Length counts encoded bytes; with a Content-Encoding requests decodes, so it cannot be compared.
        announced = (
            None if response.headers.get("Content-Encoding") else response.headers.get("Content-Length")
        )
        start = offset if mode == "ab" else 0
        if own_bar:  # this attempt starts at `start` bytes of the whole file
            bar.reset(total=expected if expected is not None else _total(start, announced))
            bar.update(start)
        with open(part, mode) as handle:
            for chunk in response.iter_content(CHUNK):
                handle.write(chunk)
                bar.update(len(chunk))
        size = part.stat().st_size
        if announced is not None and size != start + int(announced):
            raise _Transient(f"connection closed early: {size - start} of {announced} announced bytes")
    if expected is not None and size < expected:
        raise _Transient(f"truncated file: {size} of {expected} bytes (portal file size)")
    if expected is not None and size > expected:
        raise DownloadError(
            f"{what}: {url}: size mismatch: got {size} bytes, the portal says {expected} (nothing saved)"
        )
