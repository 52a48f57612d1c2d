"""Ground truth of the paper's test set from the authors' Harvard Dataverse deposit (HTTP API)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import requests

from tomoseg.core.fetch import DEFAULT_OPTIONS, USER_AGENT, DownloadError, DownloadOptions, fetch
from tomoseg.core.io import (
    InputError,
    read_header,
    read_placement,
    read_volume,
    sha256sum,
    write_json,
    write_volume,
)

log = logging.getLogger(__name__)

DEFAULT_DATAVERSE_URL = "https://dataverse.harvard.edu"
DEFAULT_DOI = "doi:10.7910/DVN/K4JKCW"
MRC_SUFFIXES = (".mrc", ".rec", ".map")
PAGE_SIZE = 1000


def list_dataset_files(
    base_url: str, doi: str, options: DownloadOptions = DEFAULT_OPTIONS, page_size: int = PAGE_SIZE
) -> list[dict[str, Any]]:
    """All file entries of a published Dataverse dataset (by persistent id), paged with limit/offset."""
    url = f"{base_url.rstrip('/')}/api/datasets/:persistentId/versions/:latest-published/files"
    entries: list[dict[str, Any]] = []
    seen: set[int] = set()
    offset = 0
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        while True:
            params = {"persistentId": doi, "limit": page_size, "offset": offset}
            page = _get_json(session, url, params, options)
            data = page.get("data") or []
            fresh = [e for e in data if e.get("dataFile", {}).get("id") not in seen]
            entries.extend(fresh)
            seen.update(e.get("dataFile", {}).get("id") for e in fresh)
            total = page.get("totalCount")
            # Stop at a short page, at the announced total, or when a server ignoring limit/offset repeats itself.
            if len(data) < page_size or not fresh or (total is not None and len(entries) >= int(total)):
                return entries
            offset += page_size


def _get_json(session: requests.Session, url: str, params: dict, options: DownloadOptions) -> dict[str, Any]:
    last = ""
    for attempt in range(options.retries + 1):
        if attempt:
            import time

            time.sleep(min(options.backoff_s * 2 ** (attempt - 1), options.max_backoff_s))
        try:
            response = session.get(
                url, params=params, timeout=(options.connect_timeout_s, options.read_timeout_s)
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            last = f"{type(err).__name__}: {err}"
            continue
        if response.status_code in (429, 500, 502, 503, 504):
            last = f"HTTP {response.status_code}"
            continue
        if response.status_code != 200:
            raise DownloadError(
                f"Dataverse {url} ({params.get('persistentId')}): HTTP {response.status_code}"
            )
        try:
            body = response.json()
        except ValueError:
            raise DownloadError(f"Dataverse {url}: answer is not JSON") from None
        if body.get("status") != "OK":
            raise DownloadError(f"Dataverse {url}: status {body.get('status')}: {body.get('message')}")
        return body
    raise DownloadError(f"Dataverse {url}: failed after {options.retries + 1} attempts: {last}")


def find_target_mask(
    entries: list[dict[str, Any]], dataset: str, runs: list[str], doi: str
) -> dict[str, Any]:
    """The single MRC file under `<dataset>/<run>/target_mask/` (run = name or id); clear errors otherwise."""
    hits = []
    for entry in entries:
        parts = [p for p in (entry.get("directoryLabel") or "").split("/") if p]
        for i in range(len(parts) - 2):
            if parts[i] == str(dataset) and parts[i + 1] in runs and parts[i + 2] == "target_mask":
                hits.append(entry)
                break
    where = f"{doi}: {dataset}/{{{','.join(runs)}}}/target_mask/"
    if not hits:
        raise InputError(f"{where}: no file there")
    mrc = [e for e in hits if _name(e).lower().endswith(MRC_SUFFIXES)]
    if not mrc:
        names = ", ".join(sorted(_name(e) for e in hits))
        raise InputError(f"{where}: expected an MRC file (.mrc/.rec/.map), found only other formats: {names}")
    if len(mrc) > 1:
        raise InputError(
            f"{where}: several MRC files, cannot tell which is the mask: {sorted(_name(e) for e in mrc)}"
        )
    return mrc[0]


def _name(entry: dict[str, Any]) -> str:
    return entry.get("dataFile", {}).get("filename") or entry.get("label") or "?"


def download_dataverse_groundtruth(
    dataset_id: str | int,
    run_names: list[str],
    tomogram: str | os.PathLike,
    out: str | os.PathLike,
    source_out: str | os.PathLike,
    base_url: str = DEFAULT_DATAVERSE_URL,
    doi: str = DEFAULT_DOI,
    options: DownloadOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """Fetch a run's target mask, binarize (> 0) to uint8 0/1, check its shape against the tomogram."""
    out, source_out = Path(out), Path(source_out)
    what = f"ground truth of dataset {dataset_id} run {'/'.join(run_names)}"
    entry = find_target_mask(list_dataset_files(base_url, doi, options), str(dataset_id), run_names, doi)
    datafile = entry["dataFile"]
    url = f"{base_url.rstrip('/')}/api/access/datafile/{datafile['id']}"
    size = int(datafile["filesize"]) if datafile.get("filesize") else None
    part = fetch(url, out, what, size, options)
    try:
        checksum = datafile.get("checksum") or (
            {"type": "MD5", "value": datafile["md5"]} if datafile.get("md5") else None
        )
        if checksum and checksum.get("type", "").upper().replace("-", "") in (
            "MD5",
            "SHA1",
            "SHA256",
            "SHA512",
        ):
            algo = checksum["type"].lower().replace("-", "")
            digest = hashlib.new(algo)
            with open(part, "rb") as handle:
                while block := handle.read(1 << 22):
                    digest.update(block)
            if digest.hexdigest() != checksum["value"]:
                raise DownloadError(
                    f"{what}: {url}: {algo} {digest.hexdigest()} differs from Dataverse's {checksum['value']}"
                )
        try:
            mask, _ = read_volume(part)
        except InputError as err:
            raise DownloadError(
                f"{what}: {url} ({_name(entry)}): {str(err).replace(str(part), 'downloaded file')}"
            ) from None
        shape, _dtype, voxel_size = read_header(tomogram)
        if tuple(mask.shape) != tuple(shape):
            raise DownloadError(
                f"{what}: {url} ({_name(entry)}): mask shape {mask.shape} differs from tomogram {tomogram} shape {shape}"
            )
        binary = (mask > 0).astype(np.uint8)
        record = {
            "kind": "dataverse_target_mask",
            "description": "authors' target mask, binarized > 0 to uint8 0/1",
            "dataverse": base_url,
            "doi": doi,
            "dataset_id": str(dataset_id),
            "run": run_names,
            "directory": entry.get("directoryLabel"),
            "filename": _name(entry),
            "datafile_id": datafile["id"],
            "url": url,
            "size": part.stat().st_size,
            "sha256": sha256sum(part),
            "dataverse_checksum": checksum,
            "source_dtype": str(mask.dtype),
            "shape_zyx": list(mask.shape),
            "foreground_fraction": float(binary.mean()),
            "downloaded": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(source_out, record)
        # on the tomogram's grid: its voxel size and placement, so that it overlays the tomogram
        write_volume(out, binary, voxel_size, placement=read_placement(tomogram))
    finally:
        part.unlink(missing_ok=True)
    return record
