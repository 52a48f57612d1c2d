"""Fetching the published ETSAM checkpoints from Zenodo (record 17571925) with the verified downloader, sha256 recorded."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tomoseg.core.io import InputError, read_json, sha256sum, write_json

log = logging.getLogger(__name__)

ZENODO_RECORD = "17571925"
WEIGHT_FILES = ("etsam_stage1_v1.pt", "etsam_stage2_v1.pt")


ZENODO = "https://zenodo.org"
# Fail fast when Zenodo cannot be reached (a short connect timeout, few retries): the error says what to do by hand.
CONNECT_TIMEOUT_S, RETRIES, BACKOFF_S = 5.0, 2, 1.0


def weight_url(name: str, record: str = ZENODO_RECORD, base: str = ZENODO) -> str:
    """Download address of one file of the Zenodo record."""
    return f"{base}/records/{record}/files/{name}?download=1"


def _pinned(out_dir: Path) -> dict[str, str]:
    """The sha256 sums an earlier fetch recorded in `weights.json` (a file fetched again must match them)."""
    record = out_dir / "weights.json"
    if not record.is_file():
        return {}
    sums = read_json(record).get("sha256") or {}
    return {str(k): str(v) for k, v in sums.items()}


def _download(
    url: str, dest: Path, what: str, expected: tuple[int | None, str | None], progress: bool | None
) -> None:
    """Fetch `url` with the verified downloader (retries, resume, size), check its sha256, then move it to `dest`."""
    from tomoseg.core.fetch import DownloadError, DownloadOptions, fetch  # requests: loaded only to download

    options = DownloadOptions(
        connect_timeout_s=CONNECT_TIMEOUT_S, retries=RETRIES, backoff_s=BACKOFF_S, progress=progress
    )
    size, sha = expected
    part = fetch(url, dest, what, size, options)
    digest = sha256sum(part)
    if sha is not None and digest != sha:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{what}: {url}: sha256 {digest} differs from the expected {sha} (nothing saved)")
    os.replace(part, dest)


def fetch_weights(
    out_dir: Path,
    record: str = ZENODO_RECORD,
    base: str = ZENODO,
    progress: bool | None = None,
    expected: dict[str, tuple[int | None, str | None]] | None = None,
) -> dict[str, str]:
    """Fetch both checkpoints into `out_dir` (skipping present ones), write `weights.json` with their sha256.

    `expected` gives (size, sha256) per file name (None = unchecked); without it a file is checked against
    the sha256 an earlier fetch recorded in `out_dir/weights.json`, and by size against Content-Length.
    `progress`: bytes-and-rate bar on stderr (None = when stderr is a terminal). A failed download raises
    InputError saying how to get the files by hand; a cut one resumes on the next call.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    where = (
        f"download {', '.join(WEIGHT_FILES)} from https://zenodo.org/records/{record} by hand and put them in "
        f"{out_dir}/ (or give their paths with --stage1-checkpoint/--stage2-checkpoint, or etsam.stage1_checkpoint/"
        "etsam.stage2_checkpoint in the workflow config)"
    )
    pinned = _pinned(out_dir)
    sums = {}
    for name in WEIGHT_FILES:
        dest = out_dir / name
        if not dest.is_file():
            want = (expected or {}).get(name, (None, pinned.get(name)))
            log.info("fetching %s", weight_url(name, record, base))
            try:
                _download(weight_url(name, record, base), dest, name, want, progress)
            except InputError as err:  # DownloadError: the download failed or delivered the wrong bytes
                raise InputError(f"{dest}: cannot download ({err}); {where}") from None
        sums[name] = sha256sum(dest)
        log.info("%s sha256 %s", dest, sums[name])
    write_json(out_dir / "weights.json", {"zenodo_record": record, "sha256": sums})
    log.info("wrote %s", out_dir / "weights.json")
    return sums
