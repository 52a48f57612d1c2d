"""MRC volumes and JSON records: validated reads and atomic writes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np

from tomoseg.core.errors import InputError as InputError  # re-exported: every reader of files raises it

log = logging.getLogger(__name__)

VoxelSize = tuple[float, float, float]
"""Voxel size in Angstrom, ordered (z, y, x) like the array axes."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of `path` and rename it into place only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else ".part", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates files 0600; give the output the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, record: Any) -> None:
    """Write a JSON record atomically (NaN allowed, keys in insertion order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON record, naming the file when it is missing or malformed."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _voxel_size_of(mrc: mrcfile.mrcfile.MrcFile) -> VoxelSize:
    vs = mrc.voxel_size
    return (float(vs.z), float(vs.y), float(vs.x))


def _open_checked(path: Path, mode: str = "r") -> mrcfile.mrcfile.MrcFile:
    """Open an MRC file in permissive mode and translate every failure into an InputError."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    with open(path, "rb") as handle:
        head = handle.read(1024)
    # an MRC header starts with NX as int32, so a width of 60 (+ k * 256) px begins with the byte "<":
    # only a file without the MRC stamp can be an HTML/XML page
    looks_like_markup = head.lstrip()[:1] == b"<" or b"<html" in head[:512].lower()
    if looks_like_markup and head[208:212] != b"MAP ":
        raise InputError(f"{path}: not an MRC file (looks like an HTML/XML page, e.g. a failed download)")
    if len(head) < 1024:
        raise InputError(f"{path}: not an MRC file (only {len(head)} bytes, shorter than an MRC header)")
    if head[208:212] != b"MAP ":
        # Pre-2014 writers (TARDIS among them) omit the stamp; the header and size checks below still apply.
        log.debug("%s: no 'MAP ' identifier at byte 208 (old-style MRC header)", path)
    try:
        mrc = mrcfile.mmap(path, mode=mode, permissive=True)
    except Exception as err:  # mrcfile raises ValueError/TypeError/OSError for corrupt headers
        raise InputError(f"{path}: not a readable MRC file ({err})") from None
    if mrc.data is None:
        expected = _expected_bytes(mrc)
        mrc.close()
        actual = path.stat().st_size
        raise InputError(
            f"{path}: truncated or corrupt MRC file (header promises {expected} bytes, file has {actual})"
        )
    return mrc


def _expected_bytes(mrc: mrcfile.mrcfile.MrcFile) -> str:
    try:
        h = mrc.header
        n = int(h.nx) * int(h.ny) * int(h.nz)
        itemsize = mrcfile.utils.data_dtype_from_header(h).itemsize
        return str(1024 + int(h.next) + n * itemsize)
    except Exception:
        return "an unknown number of"


@contextlib.contextmanager
def open_volume(path: str | os.PathLike) -> Iterator[tuple[np.ndarray, VoxelSize]]:
    """Memory-map a 3-D MRC volume read-only for chunked processing, checking header and size."""
    path = Path(path)
    mrc = _open_checked(path)
    try:
        data = mrc.data
        if data.ndim != 3:
            raise InputError(f"{path}: expected a 3-D volume, found {data.ndim}-D with shape {data.shape}")
        if min(data.shape) < 1 or data.size == 0:
            raise InputError(f"{path}: empty volume (shape {data.shape})")
        yield data, _voxel_size_of(mrc)
    finally:
        mrc.close()


def read_volume(
    path: str | os.PathLike, dtype: np.dtype | type | None = None, check_finite: bool = True
) -> tuple[np.ndarray, VoxelSize]:
    """Read a whole 3-D MRC volume into memory, validated (3-D, non-empty, finite).

    Masks are stored as MRC mode 0 (int8 0/1); read them with dtype=np.uint8 or use read_mask.
    """
    path = Path(path)
    with open_volume(path) as (data, voxel_size):
        array = np.array(data, dtype=dtype if dtype is not None else data.dtype, copy=True)
    if check_finite and np.issubdtype(array.dtype, np.floating):
        check_finite_volume(array, path)
    return array, voxel_size


def read_mask(path: str | os.PathLike) -> tuple[np.ndarray, VoxelSize]:
    """Read a segmentation or ground-truth volume as uint8 0/1 (values > 0 are foreground).

    Mode-0 files are read as int8 by mrcfile although many tools write them unsigned (0/255 reads as
    0/-1), so for int8 data every non-zero value is foreground.
    """
    path = Path(path)
    with open_volume(path) as (data, voxel_size):
        mask = np.empty(data.shape, np.uint8)
        is_foreground = np.not_equal if data.dtype == np.int8 else np.greater
        for z in range(0, data.shape[0], 32):
            is_foreground(data[z : z + 32], 0, out=mask[z : z + 32].view(bool))
    return mask, voxel_size


def check_finite_volume(array: np.ndarray, path: str | os.PathLike, chunk: int = 16) -> None:
    """Raise InputError naming the file if any voxel is NaN or infinite (checked Z-chunk by Z-chunk)."""
    for z in range(0, array.shape[0], chunk):
        block = array[z : z + chunk]
        if not np.isfinite(block).all():
            bad = int(np.count_nonzero(~np.isfinite(block)))
            raise InputError(
                f"{path}: non-finite values (NaN or inf) in slices {z}..{z + len(block) - 1}, {bad} voxels"
            )


def read_header(path: str | os.PathLike) -> tuple[tuple[int, int, int], np.dtype, VoxelSize]:
    """Return (shape, dtype, voxel size) of a 3-D MRC file after header and size checks."""
    with open_volume(path) as (data, voxel_size):
        z, y, x = data.shape  # open_volume has checked that the volume is 3-D
        return (int(z), int(y), int(x)), data.dtype, voxel_size


def write_volume(
    path: str | os.PathLike, data: np.ndarray, voxel_size: VoxelSize | float, label: str | None = None
) -> None:
    """Write a 3-D array as MRC with its voxel size, atomically (temporary name, then rename)."""
    array = np.asarray(data)
    if array.ndim != 3:
        raise ValueError(f"{path}: refusing to write a {array.ndim}-D array as a volume")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.dtype == np.uint8:
        array = _as_mode0(array, path)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if isinstance(voxel_size, int | float):
        voxel_size = (float(voxel_size),) * 3
    with atomic_path(path, suffix=".mrc.part") as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(array))
            z, y, x = voxel_size
            mrc.voxel_size = (x, y, z)
            if label:
                mrc.header.label[0] = label.encode("ascii", "replace")[:80]
                mrc.header.nlabl = 1


def create_volume(
    path: str | os.PathLike, shape: tuple[int, int, int], dtype: np.dtype | type, voxel_size: VoxelSize
) -> contextlib.AbstractContextManager[np.ndarray]:
    """Create an MRC file of `shape` and yield its memory-mapped data for streaming writes; atomic."""
    return _create_volume(Path(path), shape, np.dtype(dtype), voxel_size)


def _as_mode0(array: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """uint8 masks are stored as MRC mode 0 (int8): identical bytes for values 0..127.

    mrcfile would otherwise widen uint8 to uint16 (mode 6), doubling the size of every mask.
    """
    if array.size and int(array.max()) > 127:
        log.warning("%s: uint8 values above 127 are stored as uint16 (MRC mode 6)", path)
        return array.astype(np.uint16)
    return array.view(np.int8)


@contextlib.contextmanager
def _create_volume(
    path: Path, shape: tuple[int, int, int], dtype: np.dtype, voxel_size: VoxelSize
) -> Iterator[np.ndarray]:
    # uint8 (masks) is streamed through a uint8 view of a mode-0 (int8) file; see _as_mode0.
    file_dtype = np.dtype(np.int8) if dtype == np.uint8 else dtype
    with atomic_path(path, suffix=".mrc.part") as tmp:
        mrc = mrcfile.new_mmap(
            tmp, shape=shape, mrc_mode=mrcfile.utils.mode_from_dtype(file_dtype), overwrite=True
        )
        try:
            z, y, x = voxel_size
            mrc.voxel_size = (x, y, z)
            yield mrc.data.view(dtype) if file_dtype != dtype else mrc.data
            mrc.update_header_stats()
        finally:
            mrc.close()


def sha256sum(path: str | os.PathLike, block: int = 1 << 22) -> str:
    """SHA-256 of a file, read in blocks (for provenance and download checks)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()
