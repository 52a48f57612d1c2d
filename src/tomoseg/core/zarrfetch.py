"""One resolution level of a remote OME-Zarr image (zarr v2, over HTTPS), verified, resumable and atomic.

A plain HTTPS server cannot list a folder, so the files are named from the metadata: the group's
`.zgroup` and `.zattrs`, every level's `.zarray` (ome-zarr reads them to list the levels), then the
chunks of the one level chosen by voxel size (`tomoseg.core.omezarr.choose_level`), each fetched by
`tomoseg.core.fetch.fetch` (timeouts, retries, HTTP Range resume, Content-Length checked) and decoded
with the array's codecs to check its size before it is kept. Everything goes into a hidden sibling
folder (`.<name>.part`) that is renamed to `dest` only when complete; a chunk already complete there is
not fetched again, so an interrupted download resumes where it stopped.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
from tqdm import tqdm

from tomoseg.core.errors import InputError
from tomoseg.core.fetch import (
    DEFAULT_OPTIONS,
    USER_AGENT,
    DownloadError,
    DownloadOptions,
    fetch,
    partial_path,
    progress_bar,
    same_download,
)
from tomoseg.core.omezarr import ZarrLevel, check_multiscales, check_zarray, choose_level, zarr_levels

log = logging.getLogger(__name__)

GROUP_FILES = (".zgroup", ".zattrs")


@dataclass(frozen=True)
class RemoteLevel:
    """The metadata of a remote image: its levels (finest first), each level's array shape, the chosen one."""

    levels: tuple[ZarrLevel, ...]
    shapes: tuple[tuple[int, ...], ...]
    index: int

    @property
    def level(self) -> ZarrLevel:
        """The chosen level."""
        return self.levels[self.index]

    @property
    def shape(self) -> tuple[int, ...]:
        """The chosen level's array shape."""
        return self.shapes[self.index]


@dataclass(frozen=True)
class ZarrDownload:
    """What `fetch_ome_zarr_level` did: the level, the chunk count, how many were fetched now, bytes on disk."""

    remote: RemoteLevel
    chunks: int
    fetched: int
    size: int


def _signature_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _start_partial(part: Path, signature: dict[str, Any], what: str) -> None:
    """Keep a partial folder of the same download (for resume); discard one of another URL or level."""
    meta = _signature_path(part)
    if part.exists():
        if not same_download(meta, signature):
            log.info("%s: discarding a partial download of another image (%s)", what, part)
            shutil.rmtree(part)
    part.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps(signature))


def _fetch_file(
    url: str, dest: Path, what: str, options: DownloadOptions, session: requests.Session, bar: tqdm
) -> bytes:
    """Fetch one (small) metadata file into `dest` and return its bytes."""
    part = fetch(url, dest, what, None, options, session, bar)
    os.replace(part, dest)
    return dest.read_bytes()


def _metadata(
    url: str, part: Path, what: str, options: DownloadOptions, session: requests.Session, bar: tqdm
) -> tuple[tuple[ZarrLevel, ...], dict[str, dict[str, Any]]]:
    """Fetch the group's and every level's metadata into `part`; the levels and each level's `.zarray`.

    Metadata is fetched again on every run: when it changed since an interrupted run, the chunks fetched
    then belong to another image and are discarded.
    """
    fresh = {}
    for name in GROUP_FILES:
        old = (part / name).read_bytes() if (part / name).exists() else None
        fresh[name] = _fetch_file(f"{url}/{name}", part / name, what, options, session, bar)
        if old is not None and old != fresh[name]:
            log.info("%s: %s/%s changed since the interrupted download; starting again", what, url, name)
            for child in part.iterdir():
                if child.name not in GROUP_FILES:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
    try:
        attrs = json.loads(fresh[".zattrs"])
    except ValueError as err:
        raise DownloadError(f"{what}: {url}/.zattrs: not valid JSON ({err})") from None
    try:  # the server's values are data: checked before any local or remote path is built from them
        datasets = check_multiscales(url, ".zattrs", attrs)
    except InputError as err:
        raise DownloadError(f"{what}: {err}") from None
    arrays = {}
    for path in datasets:
        name = f"{path}/.zarray"
        raw = _fetch_file(f"{url}/{name}", part / path / ".zarray", what, options, session, bar)
        try:
            arrays[path] = check_zarray(url, name, json.loads(raw))
        except ValueError as err:  # InputError from the check, or JSON that does not parse
            raise DownloadError(
                f"{what}: {err if isinstance(err, InputError) else f'{url}/{name}: not valid JSON ({err})'}"
            ) from None
    try:
        levels = zarr_levels(part)
    except InputError as err:  # it names the hidden folder: name the URL instead
        raise DownloadError(f"{what}: {url}: {str(err).replace(str(part), 'OME-Zarr metadata')}") from None
    return levels, arrays


def chunk_keys(array: dict[str, Any]) -> list[str]:
    """The keys of every chunk of a zarr v2 array (`z.y.x`, or `z/y/x` with dimension_separator "/")."""
    grid = [range(math.ceil(n / c)) for n, c in zip(array["shape"], array["chunks"], strict=True)]
    separator = array.get("dimension_separator") or "."
    return [separator.join(str(i) for i in index) for index in itertools.product(*grid)]


class ChunkTooLarge(ValueError):
    """A chunk that would decode to more bytes than a full chunk (refused before it is inflated further)."""


def _inflate(raw: bytes, codec: dict[str, Any], limit: int) -> Any:
    """Decompress `raw` with the compressor `codec`, never producing more than `limit` + 1 bytes.

    Streaming codecs (zlib, gzip, bz2, lzma) stop at the limit; blosc and lz4 state their decoded size
    in a header read before decoding. Another compressor's output cannot be bounded before it is spent,
    so it is refused.
    """
    import bz2
    import lzma
    import struct
    import zlib

    kind = codec.get("id")
    if kind in ("zlib", "gzip", "bz2", "lzma"):
        if kind == "zlib":
            stream: Any = zlib.decompressobj()
        elif kind == "gzip":
            stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif kind == "bz2":
            stream = bz2.BZ2Decompressor()
        else:
            fmt = int(codec.get("format", lzma.FORMAT_XZ))
            filters = codec.get("filters") if fmt == lzma.FORMAT_RAW else None
            stream = lzma.LZMADecompressor(format=fmt, filters=filters)
        data = stream.decompress(raw, limit + 1)
        if len(data) > limit:
            raise ChunkTooLarge(f"inflates to more than {limit} bytes")
        if kind in ("zlib", "gzip") and not stream.eof:
            raise ValueError("incomplete compressed stream")
        return data
    if kind == "blosc":  # the 16-byte blosc header: version, versionlz, flags, typesize, nbytes (uint32), ...
        stated = struct.unpack("<I", raw[4:8])[0] if len(raw) >= 16 else -1
    elif kind == "lz4":
        stated = struct.unpack("<i", raw[:4])[0] if len(raw) >= 4 else -1
    else:
        raise ValueError(
            f"compressor {kind!r}: tomoseg bounds decoding of blosc, zlib, gzip, bz2, lzma and lz4 only"
        )
    if stated > limit:
        raise ChunkTooLarge(f"its header states {stated} decoded bytes")
    from numcodecs import get_codec

    return get_codec(dict(codec)).decode(raw)


def _decoded_size(raw: bytes, array: dict[str, Any], expected: int) -> int:
    """The byte count of a chunk after the array's compressor and filters (raises on undecodable data).

    Decompression stops once it exceeds `expected` (a full chunk), so a small hostile chunk cannot make
    the job allocate gigabytes.
    """
    from numcodecs import get_codec

    data: Any = raw
    if array.get("compressor"):
        data = _inflate(raw, array["compressor"], expected)
    for config in reversed(array.get("filters") or []):
        data = get_codec(dict(config)).decode(data)
    return int(data.nbytes) if isinstance(data, np.ndarray) else memoryview(data).nbytes


def _check_chunk(part: Path, url: str, what: str, array: dict[str, Any]) -> None:
    """A fetched chunk must decode to a full chunk (chunk shape x item size) with the array's codecs."""
    expected = math.prod(array["chunks"]) * np.dtype(array["dtype"]).itemsize
    try:
        size = _decoded_size(part.read_bytes(), array, expected)
    except ChunkTooLarge as err:
        raise DownloadError(
            f"{what}: {url}: chunk decodes to more than a chunk of {array['chunks']} {array['dtype']} "
            f"({expected} bytes): {err}; refused before decoding further"
        ) from None
    except Exception as err:  # numcodecs raises RuntimeError/ValueError for corrupt data
        raise DownloadError(
            f"{what}: {url}: chunk does not decode with the array's codecs ({type(err).__name__}: {err})"
        ) from None
    if size != expected:
        raise DownloadError(
            f"{what}: {url}: chunk decodes to {size} bytes, a chunk of {array['chunks']} {array['dtype']} "
            f"is {expected}"
        )


def fetch_ome_zarr_level(
    url: str,
    dest: str | os.PathLike,
    what: str,
    target_voxel_size: float | None = None,
    options: DownloadOptions = DEFAULT_OPTIONS,
    check: Callable[[RemoteLevel], None] | None = None,
) -> ZarrDownload:
    """Download the level of the OME-Zarr image at `url` nearest `target_voxel_size` into `dest`, atomically.

    `check` sees the levels, their shapes and the chosen one before any chunk is fetched (raise to stop).
    Only the chosen level's chunks are fetched; `dest` holds the group's metadata, every level's
    `.zarray` and that level's chunks. A failure keeps the hidden `.<name>.part` folder (complete chunks
    only) for the next run and leaves nothing at `dest`.
    """
    dest = Path(dest)
    url = url.rstrip("/")
    part = partial_path(dest)
    _start_partial(part, {"url": url, "target_voxel_size": target_voxel_size}, what)
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    bar = progress_bar(what, options)  # one bar for all files: bytes so far and the rate
    try:
        levels, arrays = _metadata(url, part, what, options, session, bar)
        index = choose_level(levels, target_voxel_size)
        shapes = tuple(tuple(arrays[level.path]["shape"]) for level in levels)
        remote = RemoteLevel(levels, shapes, index)
        array = arrays[remote.level.path]
        if len(remote.shape) < 3 or any(n != 1 for n in remote.shape[:-3]):
            raise DownloadError(
                f"{what}: {url}: level {remote.level.path} has shape {remote.shape}, not one volume"
            )
        if check is not None:
            check(remote)
        keys = chunk_keys(array)
        log.info(
            "%s: OME-Zarr level %s of %s (voxel size %s A, shape %s): %d chunks",
            what,
            remote.level.path,
            url,
            remote.level.voxel_size,
            remote.shape,
            len(keys),
        )
        fetched = 0
        for key in keys:
            target = part / remote.level.path / key
            if target.exists():
                continue  # verified and kept by an earlier, interrupted run
            chunk_url = f"{url}/{remote.level.path}/{key}"
            chunk = fetch(chunk_url, target, what, None, options, session, bar)
            try:
                _check_chunk(chunk, chunk_url, what, array)
            except DownloadError:
                chunk.unlink(missing_ok=True)
                raise
            os.replace(chunk, target)
            fetched += 1
    finally:
        session.close()
        bar.close()
    if len(keys) - fetched:
        log.info("%s: %d chunks were already complete from an earlier run", what, len(keys) - fetched)
    size = sum(p.stat().st_size for p in part.rglob("*") if p.is_file())
    if dest.is_dir():
        shutil.rmtree(dest)
    elif dest.exists():
        dest.unlink()
    os.replace(part, dest)
    _signature_path(part).unlink(missing_ok=True)
    return ZarrDownload(remote, len(keys), fetched, size)
