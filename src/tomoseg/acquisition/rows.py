"""Runs-sheet rows to downloads: a cdp row's tomogram and ground truth, and pinning the chosen tomograms."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

from tomoseg.core.fetch import DownloadOptions
from tomoseg.core.io import InputError, atomic_path, read_json

log = logging.getLogger(__name__)

PIN_COLUMNS = ("tomo", "dataset_id", "run_id", "tomogram_id", "url", "size", "sha256", "recorded")


def pins_path(runs: str | os.PathLike) -> Path:
    """The side file of a runs sheet that holds the pinned tomograms' URL, size and sha256."""
    runs = Path(runs)
    return runs.with_name(runs.name.removesuffix(".tsv") + ".pins.tsv")


def read_pins(path: str | os.PathLike | None) -> dict[str, dict[str, str]]:
    """Rows of a pins side file by tomo key ({} when the file is absent or unset)."""
    if not path or not Path(path).exists():
        return {}
    with open(path, newline="") as handle:
        return {
            r["tomo"]: r
            for r in csv.DictReader((ln for ln in handle if not ln.startswith("#")), delimiter="\t")
        }


def download_tomogram_row(
    row: dict[str, str],
    out: str | os.PathLike,
    source: str | os.PathLike,
    cfg: dict,
    target_voxel_size: float | None = None,
) -> dict:
    """Download the tomogram of one cdp runs-sheet row (honouring its tomogram_id pin and pinned sha256).

    `cfg["format"]` (the config's `download.format`) is "mrc" (default) or "ome-zarr"; with "ome-zarr" the
    level nearest `target_voxel_size` (the config's `ome_zarr.voxel_size`; None = level 0) is fetched.
    """
    from tomoseg.acquisition.portal import download_tomogram

    if row.get("source") != "cdp":
        raise InputError(f"runs sheet row {row.get('tomo')}: source is {row.get('source')!r}, not cdp")
    pin = int(row["tomogram_id"]) if row.get("tomogram_id") else None
    pinned = read_pins(cfg.get("pins")).get(row["tomo"], {})
    sha = pinned.get("sha256") if pin is not None and pinned.get("tomogram_id") == str(pin) else None
    return download_tomogram(
        int(row["dataset_id"]),
        int(row["run_id"]),
        out,
        source,
        pin=pin,
        portal_url=cfg.get("portal_url"),
        options=DownloadOptions.from_config(cfg),
        expected_sha256=sha or None,
        file_format=cfg.get("format") or "mrc",
        target_voxel_size=target_voxel_size,
    )


def download_groundtruth_row(
    row: dict[str, str],
    tomogram: str | os.PathLike,
    tomogram_source: str | os.PathLike,
    out: str | os.PathLike,
    source: str | os.PathLike,
    cfg: dict,
) -> dict:
    """Ground truth of one cdp row: Dataverse target mask (truth = dataverse) or portal membrane union (cdp)."""
    from tomoseg.acquisition.dataverse import (
        DEFAULT_DATAVERSE_URL,
        DEFAULT_DOI,
        download_dataverse_groundtruth,
    )
    from tomoseg.acquisition.portal import download_portal_groundtruth

    options = DownloadOptions.from_config(cfg)
    src = read_json(tomogram_source)
    if src.get("zarr_level_index"):
        raise InputError(
            f"runs sheet row {row['tomo']}: the tomogram is the portal's OME-Zarr level {src['zarr_level']} "
            f"(voxel size {src['level_voxel_size']} A), the ground truth is at full resolution "
            f"({src['voxel_spacing']} A); set ome_zarr.voxel_size to null (level 0) or truth to none"
        )
    if row["truth"] == "dataverse":
        names = [n for n in (src.get("run_name"), row["run_id"]) if n]
        return download_dataverse_groundtruth(
            row["dataset_id"],
            names,
            tomogram,
            out,
            source,
            base_url=cfg.get("dataverse_url") or DEFAULT_DATAVERSE_URL,
            doi=cfg.get("dataverse_doi") or DEFAULT_DOI,
            options=options,
        )
    if row["truth"] == "cdp":
        return download_portal_groundtruth(
            tomogram_source, out, source, portal_url=cfg.get("portal_url"), options=options
        )
    raise InputError(
        f"runs sheet row {row['tomo']}: truth {row['truth']!r} is not downloaded (dataverse or cdp)"
    )


def pin_runs(
    runs: Path, results: Path, portal_url: str | None, query_portal: bool, cfg: dict | None = None
) -> int:
    """Write chosen tomogram ids into the runs sheet and URL/size/sha256 into its `.pins.tsv` side file.

    Prefers what a download recorded (`results/data/{tomo}/tomogram.source.json`: id and sha256); rows not
    downloaded yet are resolved on the portal with the same rule the download uses (no checksum then).
    """
    from tomoseg.acquisition.portal import load_membrane_terms, portal_client, run_metadata, select_tomogram

    lines = runs.read_text().splitlines(keepends=True)
    comments = [ln for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if not ln.startswith("#") and ln.strip()]
    reader = csv.DictReader(body, delimiter="\t")
    fields = list(reader.fieldnames or [])
    rows = list(reader)
    if "tomogram_id" not in fields:
        raise InputError(f"{runs}: no tomogram_id column")
    pins_file = pins_path(runs)
    pins = read_pins(pins_file)
    client = None
    changed = 0
    for row in rows:
        if row.get("source") != "cdp":
            continue
        source = results / "data" / row["tomo"] / "tomogram.source.json"
        record: dict[str, Any] | None = None
        if source.exists():
            src = read_json(source)
            if row["tomogram_id"] and row["tomogram_id"] != str(src["tomogram_id"]):
                raise InputError(
                    f"{runs}: row {row['tomo']} pins tomogram {row['tomogram_id']} but {source} holds {src['tomogram_id']}"
                )
            record = {
                "tomogram_id": str(src["tomogram_id"]),
                "url": src["url"],
                "size": str(src["size"]),
                "sha256": src["sha256"],
                "recorded": src.get("downloaded", ""),
            }
        elif not row["tomogram_id"] and query_portal:
            client = client or portal_client(portal_url, DownloadOptions.from_config(cfg).query_timeout_s)
            meta = run_metadata(client, int(row["dataset_id"]), int(row["run_id"]), load_membrane_terms())
            tomo, _reason = select_tomogram(meta["tomograms"], meta["membrane_files"])
            record = {
                "tomogram_id": str(tomo["id"]),
                "url": tomo["https_mrc_file"],
                "size": str(int(tomo["file_size_mrc"] or 0)),
                "sha256": "",
                "recorded": "",
            }
        if record is None:
            continue
        if row["tomogram_id"] != record["tomogram_id"]:
            row["tomogram_id"] = record["tomogram_id"]
            changed += 1
        pins[row["tomo"]] = {
            "tomo": row["tomo"],
            "dataset_id": row["dataset_id"],
            "run_id": row["run_id"],
            **record,
        }
    with atomic_path(runs) as tmp, open(tmp, "w", newline="") as handle:
        handle.writelines(comments)
        writer = csv.DictWriter(handle, fieldnames=fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with atomic_path(pins_file) as tmp, open(tmp, "w", newline="") as handle:
        handle.write(
            f"# Tomograms pinned for {runs.name} by `tomoseg pin-runs` (sha256 of the downloaded MRC).\n"
        )
        writer = csv.DictWriter(handle, fieldnames=PIN_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(pins[k] for k in sorted(pins))
    log.info("%s: %d tomogram ids written; checksums in %s", runs, changed, pins_file)
    return 0
