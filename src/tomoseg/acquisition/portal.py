"""CryoET Data Portal: choose a run's tomogram, find membrane annotations, verified downloads.

Tomogram rule (deterministic, documented in docs/portal.md):
  1. a `tomogram_id` pin in the runs sheet wins (it must belong to the run);
  2. otherwise, among the tomograms that share voxel spacing *and* alignment with one of the run's
     membrane segmentation masks: the visualization default, then the portal standard, then the lowest id;
  3. without such a tomogram, the same order over all of the run's tomograms.
Membrane annotations are found by Gene Ontology id (data/membrane_go_terms.tsv), shape
SegmentationMask, file format mrc; never by name.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.core.fetch import DEFAULT_OPTIONS, DownloadError, DownloadOptions, fetch, partial_path
from tomoseg.core.io import (
    InputError,
    Placement,
    read_header,
    read_placement,
    read_volume,
    sha256sum,
    write_json,
    write_volume,
)
from tomoseg.core.zarrfetch import RemoteLevel, fetch_ome_zarr_level

log = logging.getLogger(__name__)

DEFAULT_PORTAL_URL = "https://graphql.cryoetdataportal.czscience.com/graphql"
SEGMENTATION_SHAPE = "SegmentationMask"
MASK_FORMAT = "mrc"
VOXEL_SIZE_RTOL = 0.01


def load_membrane_terms(path: str | os.PathLike | None = None) -> dict[str, str]:
    """The curated GO ids that count as membrane (id -> name), from the committed TSV."""
    if path is None:
        text = resources.files("tomoseg").joinpath("data/membrane_go_terms.tsv").read_text()
    else:
        text = Path(path).read_text()
    terms: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#") or line.startswith("go_id\t"):
            continue
        go_id, name = line.split("\t", 1)
        terms[go_id.strip()] = name.strip()
    if "GO:0016020" not in terms:
        raise InputError(f"{path or 'membrane_go_terms.tsv'}: GO:0016020 (membrane) missing from the list")
    return terms


def portal_client(url: str | None = None, timeout_s: float = 60.0) -> Any:
    """A cryoet-data-portal Client whose GraphQL requests time out (the stock client waits forever)."""
    from cryoet_data_portal import Client
    from gql import Client as GQLClient
    from gql.transport.requests import RequestsHTTPTransport

    class _TimeoutClient(Client):
        def get_client(self) -> GQLClient:
            transport = RequestsHTTPTransport(
                url=self.url,
                retries=3,
                timeout=timeout_s,
                headers={"User-agent": "tomoseg (cryoet-data-portal)"},
            )
            return GQLClient(transport=transport, schema=self.schema)

    return _TimeoutClient(url or DEFAULT_PORTAL_URL)


def run_metadata(client: Any, dataset_id: int, run_id: int, go_ids: Iterable[str]) -> dict[str, Any]:
    """The run, its tomograms and its membrane segmentation files (mrc), as plain dicts."""
    from cryoet_data_portal import Annotation, AnnotationFile, AnnotationShape, Run, Tomogram

    run = Run.get_by_id(client, int(run_id))
    if run is None:
        raise InputError(f"portal run {run_id} (dataset {dataset_id}): no such run on {client.url}")
    if int(run.dataset_id) != int(dataset_id):
        raise InputError(
            f"portal run {run_id}: belongs to dataset {run.dataset_id}, the runs sheet says {dataset_id}"
        )
    tomograms = [t.to_dict() for t in Tomogram.find(client, [Tomogram.run_id == int(run_id)])]
    annotations = {
        a.id: a.to_dict()
        for a in Annotation.find(
            client, [Annotation.run_id == int(run_id), Annotation.object_id._in(sorted(go_ids))]
        )
    }
    files: list[dict[str, Any]] = []
    if annotations:
        shapes = {
            s.id: s.to_dict()
            for s in AnnotationShape.find(
                client,
                [
                    AnnotationShape.annotation_id._in(sorted(annotations)),
                    AnnotationShape.shape_type == SEGMENTATION_SHAPE,
                ],
            )
        }
        if shapes:
            for f in AnnotationFile.find(
                client,
                [
                    AnnotationFile.annotation_shape_id._in(sorted(shapes)),
                    AnnotationFile.format == MASK_FORMAT,
                ],
            ):
                record = f.to_dict()
                annotation = annotations[shapes[record["annotation_shape_id"]]["annotation_id"]]
                record["annotation_id"] = annotation["id"]
                record["object_id"] = annotation["object_id"]
                record["object_name"] = annotation["object_name"]
                files.append(record)
    files.sort(key=lambda f: f["id"])
    return {
        "run": run.to_dict(),
        "tomograms": sorted(tomograms, key=lambda t: t["id"]),
        "membrane_files": files,
    }


def _preference(tomogram: dict[str, Any]) -> tuple[bool, bool, int]:
    return (
        not tomogram.get("is_visualization_default"),
        not tomogram.get("is_portal_standard"),
        int(tomogram["id"]),
    )


FILE_FIELDS = {"mrc": ("https_mrc_file", "MRC file"), "ome-zarr": ("https_omezarr_dir", "OME-Zarr image")}


def select_tomogram(
    tomograms: Sequence[dict[str, Any]],
    membrane_files: Sequence[dict[str, Any]],
    pin: int | None = None,
    file_format: str = "mrc",
) -> tuple[dict[str, Any], str]:
    """Pick the run's tomogram by the module's rule among those with a file of `file_format`; (tomogram, reason)."""
    field, label = FILE_FIELDS[file_format]
    if pin is not None:
        for t in tomograms:
            if int(t["id"]) == int(pin):
                if not t.get(field):
                    raise InputError(f"pinned tomogram_id {pin} has no {label} on the portal")
                return t, f"pinned tomogram_id {pin}"
        raise InputError(
            f"pinned tomogram_id {pin} is not one of the run's tomograms {[t['id'] for t in tomograms]}"
        )
    usable = [t for t in tomograms if t.get(field)]
    if not usable:
        raise InputError(f"the run has no tomogram with an {label} on the portal")
    keys = {(f["tomogram_voxel_spacing_id"], f["alignment_id"]) for f in membrane_files}
    matching = [t for t in usable if (t["tomogram_voxel_spacing_id"], t["alignment_id"]) in keys]
    order = "visualization default, then portal standard, then lowest id"
    if matching:
        return min(
            matching, key=_preference
        ), f"shares voxel spacing and alignment with a membrane annotation; {order}"
    if membrane_files:
        log.warning("membrane annotations exist but no tomogram shares their voxel spacing and alignment")
    return min(usable, key=_preference), f"no membrane annotation on a matching tomogram; {order}"


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value else None)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _check_volume(
    part: Path, what: str, url: str, shape_zyx: tuple[int, int, int], voxel: float | None
) -> None:
    """MRC header, size, shape and voxel size of a downloaded file against the portal's metadata."""
    try:
        shape, _dtype, voxel_size = read_header(part)
    except InputError as err:
        raise DownloadError(f"{what}: {url}: {str(err).replace(str(part), 'downloaded file')}") from None
    if tuple(shape) != tuple(shape_zyx):
        raise DownloadError(
            f"{what}: {url}: shape {shape} (z, y, x) differs from the portal's {tuple(shape_zyx)}"
        )
    if voxel and any(v > 0 for v in voxel_size):
        worst = max(abs(v - voxel) / voxel for v in voxel_size)
        if worst > VOXEL_SIZE_RTOL:
            raise DownloadError(
                f"{what}: {url}: voxel size {voxel_size} A differs from the portal's {voxel} A"
            )
    elif voxel:
        log.warning("%s: %s has no voxel size in its header (portal: %s A)", what, url, voxel)


def _dimensions_zyx(text: str | None) -> tuple[int, ...] | None:
    """The portal's `scale_k_dimensions` ("x,y,z") as (z, y, x); None when absent or unreadable."""
    try:
        return tuple(int(v) for v in reversed(text.split(","))) if text else None
    except ValueError:
        return None


def _check_zarr_levels(
    remote: RemoteLevel, tomogram: dict[str, Any], what: str, url: str, shape_zyx: tuple[int, int, int]
) -> None:
    """Level 0's shape and voxel size and the chosen level's shape and extent against the portal's metadata."""
    voxel = tomogram.get("voxel_spacing")
    full = remote.shapes[0][-3:]
    if tuple(full) != shape_zyx:
        raise DownloadError(
            f"{what}: {url}: level {remote.levels[0].path} has shape {full} (z, y, x), the portal's tomogram "
            f"{shape_zyx}"
        )
    if voxel:
        worst = max(abs(v - voxel) / voxel for v in remote.levels[0].voxel_size)
        if worst > VOXEL_SIZE_RTOL:
            raise DownloadError(
                f"{what}: {url}: level {remote.levels[0].path} has voxel size {remote.levels[0].voxel_size} A, "
                f"the portal's tomogram {voxel} A"
            )
    level, shape = remote.level, remote.shape[-3:]
    stated = _dimensions_zyx(tomogram.get(f"scale_{remote.index}_dimensions"))
    if stated is not None and tuple(shape) != stated:
        raise DownloadError(
            f"{what}: {url}: level {level.path} has shape {shape} (z, y, x), the portal's scale "
            f"{remote.index} {stated}"
        )
    base = remote.levels[0].voxel_size
    for n, v, n0, v0 in zip(shape, level.voxel_size, full, base, strict=True):
        if abs(n * v - n0 * v0) > v * (1 + VOXEL_SIZE_RTOL):  # a level covers level 0's extent
            raise DownloadError(
                f"{what}: {url}: level {level.path}'s voxel size {level.voxel_size} A and shape {shape} do not "
                f"cover level 0's {full} voxels of {base} A"
            )


def _download_omezarr(
    tomogram: dict[str, Any],
    out: Path,
    what: str,
    shape_zyx: tuple[int, int, int],
    target_voxel_size: float | None,
    options: DownloadOptions,
) -> dict[str, Any]:
    """Fetch the chosen level of the tomogram's OME-Zarr image and write it as `out` (MRC); record fields."""
    url = tomogram["https_omezarr_dir"].rstrip("/")
    store = out.with_suffix(".zarr")
    result = fetch_ome_zarr_level(
        url,
        store,
        what,
        target_voxel_size,
        options,
        check=lambda remote: _check_zarr_levels(remote, tomogram, what, url, shape_zyx),
    )
    try:  # the complete store is only the source of the MRC: removed whether or not the conversion works
        volume, voxel_size = read_volume(store, target_voxel_size=target_voxel_size)
        placement = read_placement(store, target_voxel_size)
        write_volume(out, volume, voxel_size, placement=placement)
    except InputError as err:
        raise DownloadError(f"{what}: {url}: {err}") from None
    finally:
        shutil.rmtree(store, ignore_errors=True)
    level = result.remote.level
    return {
        "format": "ome-zarr",
        "url": url,
        "zarr_level": level.path,
        "zarr_level_index": result.remote.index,
        "zarr_levels": {lv.path: list(lv.voxel_size) for lv in result.remote.levels},
        "target_voxel_size": target_voxel_size,
        "level_voxel_size": list(level.voxel_size),
        "origin": list(level.origin),
        "shape_zyx": list(volume.shape),
        "chunks": result.chunks,
        "size": result.size,
        "file_size_omezarr": tomogram.get("file_size_omezarr"),
        "sha256": None,  # a folder of chunk files has no single checksum (each chunk's size is checked)
    }


def download_tomogram(
    dataset_id: int,
    run_id: int,
    out: str | os.PathLike,
    source_out: str | os.PathLike,
    pin: int | None = None,
    portal_url: str | None = None,
    options: DownloadOptions = DEFAULT_OPTIONS,
    expected_sha256: str | None = None,
    file_format: str = "mrc",
    target_voxel_size: float | None = None,
) -> dict[str, Any]:
    """Choose and download a run's tomogram, verified, with a `source.json` record; atomic.

    `file_format` "mrc" fetches the portal's MRC file; "ome-zarr" the level of its OME-Zarr image nearest
    `target_voxel_size` (default level 0), written as MRC with the level's voxel size and origin.
    """
    if file_format not in FILE_FIELDS:
        raise InputError(f"download format {file_format!r}: one of {sorted(FILE_FIELDS)}")
    out, source_out = Path(out), Path(source_out)
    what = f"portal run {run_id} (dataset {dataset_id})"
    client = portal_client(portal_url, options.query_timeout_s)
    go_terms = load_membrane_terms()
    meta = run_metadata(client, dataset_id, run_id, go_terms)
    try:
        tomogram, reason = select_tomogram(meta["tomograms"], meta["membrane_files"], pin, file_format)
    except InputError as err:
        raise InputError(f"{what}: {err}") from None
    shape = (int(tomogram["size_z"]), int(tomogram["size_y"]), int(tomogram["size_x"]))
    matching = [
        f
        for f in meta["membrane_files"]
        if (f["tomogram_voxel_spacing_id"], f["alignment_id"])
        == (tomogram["tomogram_voxel_spacing_id"], tomogram["alignment_id"])
    ]
    record = {
        "kind": "cdp_tomogram",
        "portal_graphql": client.url,
        "dataset_id": int(dataset_id),
        "run_id": int(run_id),
        "run_name": meta["run"]["name"],
        "tomogram_id": int(tomogram["id"]),
        "tomogram_voxel_spacing_id": tomogram["tomogram_voxel_spacing_id"],
        "alignment_id": tomogram["alignment_id"],
        "voxel_spacing": tomogram.get("voxel_spacing"),
        "processing": tomogram.get("processing"),
        "shape_zyx": list(shape),
        "selection": reason,
        "pinned": pin is not None,
        "candidates": [t["id"] for t in meta["tomograms"]],
        "membrane_annotation_ids": sorted({f["annotation_id"] for f in matching}),
        "format": "mrc",
        "release_date": _iso(tomogram.get("release_date")),
        "last_modified_date": _iso(tomogram.get("last_modified_date")),
    }
    if file_format == "ome-zarr":
        log.info("%s: tomogram %s (%s), %s", what, tomogram["id"], reason, tomogram["https_omezarr_dir"])
        if expected_sha256:
            log.warning(
                "%s: the pinned sha256 is of an MRC file; an OME-Zarr download is checked by size, shape and "
                "voxel size only",
                what,
            )
        # the MRC is written before its record, so a failed conversion leaves neither behind
        record.update(_download_omezarr(tomogram, out, what, shape, target_voxel_size, options))
        record["downloaded"] = _now()
        try:
            write_json(source_out, record)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        return record
    url = tomogram["https_mrc_file"]
    size = int(tomogram["file_size_mrc"]) if tomogram.get("file_size_mrc") else None
    log.info("%s: tomogram %s (%s), %s", what, tomogram["id"], reason, url)
    part = fetch(url, out, what, size, options)
    try:
        _check_volume(part, what, url, shape, tomogram.get("voxel_spacing"))
        digest = sha256sum(part)
        if expected_sha256 and digest != expected_sha256:
            raise DownloadError(f"{what}: {url}: sha256 {digest} differs from the pinned {expected_sha256}")
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    record.update({"url": url, "size": part.stat().st_size, "sha256": digest, "downloaded": _now()})
    write_json(source_out, record)
    os.replace(part, out)
    return record


def download_portal_groundtruth(
    tomogram_source: str | os.PathLike,
    out: str | os.PathLike,
    source_out: str | os.PathLike,
    portal_url: str | None = None,
    options: DownloadOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """Ground truth from the portal: union (> 0) of the run's membrane masks on the tomogram's grid."""
    from tomoseg.core.io import read_json

    src = read_json(tomogram_source)
    out, source_out = Path(out), Path(source_out)
    dataset_id, run_id = src["dataset_id"], src["run_id"]
    what = f"portal run {run_id} (dataset {dataset_id}) ground truth"
    client = portal_client(portal_url or src.get("portal_graphql"), options.query_timeout_s)
    meta = run_metadata(client, dataset_id, run_id, load_membrane_terms())
    key = (src["tomogram_voxel_spacing_id"], src["alignment_id"])
    files = [f for f in meta["membrane_files"] if (f["tomogram_voxel_spacing_id"], f["alignment_id"]) == key]
    if not files:
        raise InputError(
            f"{what}: no membrane SegmentationMask (mrc) annotation on tomogram {src['tomogram_id']}'s voxel "
            f"spacing {key[0]} and alignment {key[1]}"
        )
    shape = tuple(src["shape_zyx"])
    union = np.zeros(shape, dtype=np.uint8)
    placement: Placement | None = None  # the annotation files', all on the tomogram's grid
    components = []
    scratch = out.parent / f".{out.name}.parts"
    for f in files:
        item = scratch / f"annotation_file_{f['id']}.mrc"
        part = fetch(
            f["https_path"], item, what, int(f["file_size"]) if f.get("file_size") else None, options
        )
        try:
            _check_volume(part, what, f["https_path"], shape, src.get("voxel_spacing"))
            mask, _ = read_volume(part)
            placement = placement or read_placement(part)
            digest = sha256sum(part)
        except (DownloadError, InputError):
            part.unlink(missing_ok=True)
            raise
        union |= (mask > 0).astype(np.uint8)
        components.append(
            {
                "annotation_id": f["annotation_id"],
                "annotation_file_id": f["id"],
                "object_id": f["object_id"],
                "object_name": f["object_name"],
                "url": f["https_path"],
                "size": part.stat().st_size,
                "sha256": digest,
                "foreground_voxels": int(np.count_nonzero(mask > 0)),
            }
        )
    voxel = src.get("voxel_spacing") or 1.0
    record = {
        "kind": "cdp_membrane_union",
        "description": "union (> 0) of the run's membrane segmentation masks on the chosen tomogram's voxel "
        "spacing and alignment, binarized to uint8 0/1",
        "portal_graphql": client.url,
        "dataset_id": dataset_id,
        "run_id": run_id,
        "run_name": src.get("run_name"),
        "tomogram_id": src["tomogram_id"],
        "tomogram_voxel_spacing_id": key[0],
        "alignment_id": key[1],
        "components": components,
        "shape_zyx": list(shape),
        "foreground_fraction": float(union.mean()),
        "downloaded": _now(),
    }
    write_json(source_out, record)
    write_volume(out, union, float(voxel), placement=placement)
    shutil.rmtree(scratch, ignore_errors=True)
    return record


__all__ = [
    "DEFAULT_PORTAL_URL",
    "DownloadError",
    "download_portal_groundtruth",
    "download_tomogram",
    "load_membrane_terms",
    "partial_path",
    "portal_client",
    "run_metadata",
    "select_tomogram",
]
