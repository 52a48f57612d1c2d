"""MRC (and OME-Zarr) volumes and JSON records: validated reads and atomic writes."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import stat
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np

from tomoseg.core.errors import InputError as InputError  # re-exported: every reader of files raises it
from tomoseg.core.errors import OutputError
from tomoseg.core.limits import require_memory, volume_bytes
from tomoseg.core.omezarr import is_zarr, open_zarr_volume, volume_to_write, write_ome_zarr

log = logging.getLogger(__name__)

VoxelSize = tuple[float, float, float]
"""Voxel size in Angstrom, ordered (z, y, x) like the array axes."""

_STANDARD_AXES = (1, 2, 3)


@dataclass(frozen=True)
class Placement:
    """Where a volume sits in its tomogram's frame, from the MRC header; copied to every derived volume.

    `origin` is the header's origin in Angstrom and `start` its grid start (nzstart, nystart, nxstart),
    both ordered (z, y, x) like the array axes; `axes` is (mapc, mapr, maps), the file's axis order.
    Viewers (napari, IMOD, ChimeraX) overlay a mask on its tomogram only when these agree.
    """

    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    start: tuple[int, int, int] = (0, 0, 0)
    axes: tuple[int, int, int] = _STANDARD_AXES


# File-system errors of writing an output: the user can act on them (free space, another folder).
WRITE_ERRNOS = frozenset(
    {
        errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR,
        errno.EEXIST, errno.ENOTEMPTY, errno.ENAMETOOLONG, errno.EFBIG,
    }
)  # fmt: skip


def write_error(path: str | os.PathLike, err: OSError, folder: bool = False) -> OutputError:
    """The one-line error for an output that could not be written (disk full, read-only, a folder in the way)."""
    reason = err.strerror or str(err)
    if not folder and (err.errno in (errno.EISDIR, errno.ENOTEMPTY) or Path(path).is_dir()):
        reason += "; a folder is in the way of this output file"
    elif err.errno in (errno.ENOTDIR, errno.EEXIST) and not Path(path).parent.is_dir():
        reason += "; a file is in the way of its folder"
    return OutputError(path, reason)


_SPECIAL_FILES = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def check_replaceable(path: str | os.PathLike, folder: bool = False) -> None:
    """Refuse an output path that is not a regular file (a device, FIFO or socket, or a symbolic link to one).

    A rename over it would replace the device itself (as root, `--out /dev/null` would replace the
    system's null device); tomoseg replaces only regular files (and, for `folder` outputs, folders).
    """
    try:
        mode = os.stat(path).st_mode  # follows a symbolic link: its target is what the user named
    except FileNotFoundError:
        return  # nothing there yet, or a dangling link: the rename replaces the link itself
    except OSError as err:
        raise write_error(path, err, folder) from None
    for test, kind in _SPECIAL_FILES:
        if test(mode):
            link = " (through a symbolic link)" if Path(path).is_symlink() else ""
            raise OutputError(path, f"{kind}{link}; tomoseg replaces only regular files")
    if stat.S_ISDIR(mode) and not folder:
        raise OutputError(path, "a folder is in the way of this output file")


def check_outputs(
    outputs: Iterable[str | os.PathLike | None], inputs: Iterable[str | os.PathLike | None]
) -> None:
    """Before any work: every output must be replaceable (`check_replaceable`) and none the same file as an input.

    Writing an output over its own input destroys the input (and a digest recorded afterwards would be the
    output's); a hard link or a symbolic link to the input counts as the same file.
    """
    sources = [Path(p) for p in inputs if p is not None]
    for out in (Path(p) for p in outputs if p is not None):
        check_replaceable(out, folder=out.is_dir() and is_zarr(out))
        for source in sources:
            if _same_file(out, source):
                raise OutputError(out, f"the same file as the input {source}; choose another output path")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (same device and inode), or `a` lies inside the folder `b` (an OME-Zarr input)."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    try:
        ra, rb = a.resolve(), b.resolve()
    except OSError:
        return False
    return ra == rb or (rb.is_dir() and rb in ra.parents)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of `path` and rename it into place only if the block succeeds.

    A file-system error while writing (disk full, read-only, a folder in the way) becomes an OutputError
    naming `path`; the temporary file is removed either way.
    """
    target = Path(path)
    check_replaceable(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix if suffix is not None else ".part", dir=target.parent
        )
        os.close(fd)
    except OSError as err:
        raise write_error(target, err) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates files 0600; give the output the permissions a plain open() would have.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno in WRITE_ERRNOS:
            raise write_error(target, err) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def require_space(path: str | os.PathLike, needed_bytes: int, what: str = "the outputs") -> None:
    """Refuse to start when the file system holding the folder `path` has less free space than `needed_bytes`."""
    free = shutil.disk_usage(path).free
    if free < needed_bytes:
        raise OutputError(
            path, f"{what} need about {_size(needed_bytes)}, only {_size(free)} free on its file system"
        )


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def require_writable_dir(path: str | os.PathLike) -> Path:
    """Create the output folder `path` if needed and prove a file can be made in it, before any work starts."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(folder, "not a folder; an output folder is needed here")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".tomoseg-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise write_error(folder, err, folder=True) from None
    return folder


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


def _placement_of(mrc: mrcfile.mrcfile.MrcFile) -> Placement:
    h = mrc.header
    axes = (int(h.mapc), int(h.mapr), int(h.maps))
    return Placement(
        origin=(float(h.origin.z), float(h.origin.y), float(h.origin.x)),
        start=(int(h.nzstart), int(h.nystart), int(h.nxstart)),
        # an invalid axis order (old writers leave zeros) is written as the standard one
        axes=axes if sorted(axes) == list(_STANDARD_AXES) else _STANDARD_AXES,
    )


def _set_placement(mrc: mrcfile.mrcfile.MrcFile, placement: Placement) -> None:
    h = mrc.header
    z, y, x = placement.origin
    h.origin = (x, y, z)
    h.nzstart, h.nystart, h.nxstart = placement.start
    h.mapc, h.mapr, h.maps = placement.axes


def read_placement(path: str | os.PathLike, target_voxel_size: float | None = None) -> Placement:
    """The origin, grid start and axis order of a 3-D MRC file (after header and size checks).

    For an OME-Zarr image: the chosen level's translation as origin (see `open_volume`), standard axes.
    """
    path = Path(path)
    if is_zarr(path):
        return Placement(origin=open_zarr_volume(path, target_voxel_size).level.origin)
    mrc = _open_checked(path)
    try:
        return _placement_of(mrc)
    finally:
        mrc.close()


# Compressed files by their first bytes (a .mrc.gz given as a tomogram is common): named, with the command.
_COMPRESSED = {
    b"\x1f\x8b": ("gzip", "gunzip -k"),
    b"BZh": ("bzip2", "bunzip2 -k"),
    b"\xfd7zXZ\x00": ("xz", "unxz -k"),
    b"\x28\xb5\x2f\xfd": ("zstd", "unzstd"),
}


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
    for magic, (kind, tool) in _COMPRESSED.items():
        if head.startswith(magic):
            raise InputError(
                f"{path}: a {kind}-compressed file, not an MRC file; decompress it first ({tool} {path.name})"
            )
    if len(head) < 1024:
        raise InputError(f"{path}: not an MRC file (only {len(head)} bytes, shorter than an MRC header)")
    if head[208:212] != b"MAP ":
        # Pre-2014 writers (TARDIS among them) omit the stamp; the header and size checks below still apply.
        log.debug("%s: no 'MAP ' identifier at byte 208 (old-style MRC header)", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # permissive mode warns about what the checks below report
            mrc = mrcfile.mmap(path, mode=mode, permissive=True)
    except Exception as err:  # mrcfile raises ValueError/TypeError/OSError for corrupt headers
        raise InputError(f"{path}: not a readable MRC file ({err})") from None
    mrc_mode = int(mrc.header.mode)
    if mrc_mode in COMPLEX_MODES:
        mrc.close()
        raise InputError(
            f"{path}: complex-valued data ({COMPLEX_MODES[mrc_mode]}, MRC mode {mrc_mode}); tomoseg reads "
            "real-valued volumes: take the real part or the amplitude first"
        )
    if mrc.data is None:
        expected = _expected_bytes(mrc)
        mrc.close()
        actual = path.stat().st_size
        raise InputError(
            f"{path}: truncated or corrupt MRC file (header promises {expected} bytes, file has {actual})"
        )
    _warn_about_header(mrc, path)
    return mrc


COMPLEX_MODES = {3: "complex int16", 4: "complex float32"}
_warned: set[tuple[str, str]] = set()


def _warn_about_header(mrc: mrcfile.mrcfile.MrcFile, path: Path) -> None:
    """Warn (once per file and problem) about headers that read but may not mean what the user thinks."""
    problems = []
    if not all(0 < float(v) < float("inf") for v in _voxel_size_of(mrc)):
        problems.append(
            ("voxel", f"no usable voxel size in the header ({_voxel_size_of(mrc)} A, z y x, must be > 0); "
             "tools that need one (TARDIS) must be told it, and outputs inherit it")
        )  # fmt: skip
    header = mrc.header
    if mrc.is_image_stack() and int(header.nz) > 1 and int(header.mz) != int(header.nz):
        problems.append(
            ("stack", f"the header says an image stack (ISPG 0, {int(header.nz)} images, e.g. a tilt series), "
             "not a volume; it is read as a volume of that many slices")
        )  # fmt: skip
    for kind, text in problems:
        if (str(path), kind) not in _warned:
            _warned.add((str(path), kind))
            log.warning("%s: %s", path, text)


def _expected_bytes(mrc: mrcfile.mrcfile.MrcFile) -> str:
    try:
        h = mrc.header
        n = int(h.nx) * int(h.ny) * int(h.nz)
        itemsize = mrcfile.utils.data_dtype_from_header(h).itemsize
        return str(1024 + int(h.next) + n * itemsize)
    except Exception:
        return "an unknown number of"


@contextlib.contextmanager
def open_volume(
    path: str | os.PathLike, target_voxel_size: float | None = None
) -> Iterator[tuple[np.ndarray, VoxelSize]]:
    """Memory-map a 3-D MRC volume read-only for chunked processing, checking header and size.

    A local OME-Zarr image (a `.zarr` folder) is opened lazily at the resolution level whose voxel size
    is nearest `target_voxel_size` in Angstrom (default: level 0, full resolution); MRC files have one
    level and ignore it.
    """
    path = Path(path)
    if is_zarr(path):
        volume = open_zarr_volume(path, target_voxel_size)
        _check_shape(volume.data, path)
        yield volume.data, volume.level.voxel_size
        return
    mrc = _open_checked(path)
    try:
        data = mrc.data
        _check_shape(data, path)
        yield data, _voxel_size_of(mrc)
    finally:
        mrc.close()


def _check_shape(data: np.ndarray, path: Path) -> None:
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3-D volume, found {data.ndim}-D with shape {data.shape}")
    if min(data.shape) < 1 or data.size == 0:
        raise InputError(f"{path}: empty volume (shape {data.shape})")
    volume_bytes(path, [int(n) for n in data.shape], data.dtype.itemsize)


def read_volume(
    path: str | os.PathLike,
    dtype: np.dtype | type | None = None,
    check_finite: bool = True,
    target_voxel_size: float | None = None,
) -> tuple[np.ndarray, VoxelSize]:
    """Read a whole 3-D MRC volume (or OME-Zarr level, see `open_volume`) into memory, validated (3-D, non-empty, finite).

    Masks are stored as MRC mode 0 (int8 0/1); read them with dtype=np.uint8 or use read_mask.
    """
    path = Path(path)
    with open_volume(path, target_voxel_size) as (data, voxel_size):
        itemsize = np.dtype(dtype if dtype is not None else data.dtype).itemsize
        require_memory(path, int(np.prod(data.shape, dtype=np.int64)) * itemsize, "reading the whole volume")
        array = np.array(data[...], dtype=dtype if dtype is not None else data.dtype, copy=True)
    if check_finite and np.issubdtype(array.dtype, np.floating):
        check_finite_volume(array, path)
    return array, voxel_size


def read_mask(
    path: str | os.PathLike, target_voxel_size: float | None = None
) -> tuple[np.ndarray, VoxelSize]:
    """Read a segmentation or ground-truth volume as uint8 0/1 (values > 0 are foreground).

    Mode-0 files are read as int8 by mrcfile although many tools write them unsigned (0/255 reads as
    0/-1), so for int8 data every non-zero value is foreground.
    """
    path = Path(path)
    with open_volume(path, target_voxel_size) as (data, voxel_size):
        require_memory(path, int(np.prod(data.shape, dtype=np.int64)), "reading the whole mask")
        mask = np.empty(data.shape, np.uint8)
        is_foreground = np.not_equal if data.dtype == np.int8 else np.greater
        for z in range(0, data.shape[0], 32):
            if np.issubdtype(data.dtype, np.floating):
                check_finite_volume(data[z : z + 32], path, first_slice=z)
            is_foreground(np.asarray(data[z : z + 32]), 0, out=mask[z : z + 32].view(bool))
    return mask, voxel_size


def check_finite_volume(
    array: np.ndarray, path: str | os.PathLike, chunk: int = 16, first_slice: int = 0
) -> None:
    """Raise InputError naming the file if any voxel is NaN or infinite (checked Z-chunk by Z-chunk).

    `first_slice` is the Z index of `array[0]` in the file, when `array` is a slab of it.
    """
    for z in range(0, array.shape[0], chunk):
        block = array[z : z + chunk]
        if not np.isfinite(block).all():
            bad = int(np.count_nonzero(~np.isfinite(block)))
            start = first_slice + z
            raise InputError(
                f"{path}: non-finite values (NaN or inf) in slices {start}..{start + len(block) - 1}, {bad} voxels"
            )


def read_header(
    path: str | os.PathLike, target_voxel_size: float | None = None
) -> tuple[tuple[int, int, int], np.dtype, VoxelSize]:
    """Return (shape, dtype, voxel size) of a 3-D MRC file (or OME-Zarr level) after header and size checks."""
    with open_volume(path, target_voxel_size) as (data, voxel_size):
        z, y, x = data.shape  # open_volume has checked that the volume is 3-D
        return (int(z), int(y), int(x)), data.dtype, voxel_size


def write_volume(
    path: str | os.PathLike,
    data: np.ndarray,
    voxel_size: VoxelSize | float,
    label: str | None = None,
    placement: Placement | None = None,
) -> None:
    """Write a 3-D array as MRC with its voxel size and placement, atomically (temporary name, then rename).

    Pass the input's `read_placement` for every volume derived from it, so that it overlays the input.
    """
    array, voxel_size = volume_to_write(path, data, voxel_size)
    if array.dtype == np.uint8:
        array = _as_mode0(array, path)
    with atomic_path(path, suffix=".mrc.part") as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(array))
            z, y, x = voxel_size
            mrc.voxel_size = (x, y, z)
            if placement is not None:
                _set_placement(mrc, placement)
            if label:
                mrc.header.label[0] = label.encode("ascii", "replace")[:80]
                mrc.header.nlabl = 1


def create_volume(
    path: str | os.PathLike,
    shape: tuple[int, int, int],
    dtype: np.dtype | type,
    voxel_size: VoxelSize,
    placement: Placement | None = None,
) -> contextlib.AbstractContextManager[np.ndarray]:
    """Create an MRC file of `shape` and yield its memory-mapped data for streaming writes; atomic."""
    return _create_volume(Path(path), shape, np.dtype(dtype), voxel_size, placement)


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
    path: Path,
    shape: tuple[int, int, int],
    dtype: np.dtype,
    voxel_size: VoxelSize,
    placement: Placement | None,
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
            if placement is not None:
                _set_placement(mrc, placement)
            yield mrc.data.view(dtype) if file_dtype != dtype else mrc.data
            mrc.update_header_stats()
        finally:
            mrc.close()


def copy_as_ome_zarr(source: str | os.PathLike, out: str | os.PathLike, mask: bool) -> None:
    """Write an MRC volume as a multiscale OME-Zarr image: the same array, voxel size and origin.

    `mask` reads it as 0/1 (uint8, levels by block maximum so thin membranes survive); otherwise the
    values (logits, probabilities) as stored, levels by block mean. Written atomically.
    """
    if mask:
        volume, voxel_size = read_mask(source)
    else:
        volume, voxel_size = read_volume(source, check_finite=False)
    origin = read_placement(source).origin
    write_ome_zarr(out, volume, voxel_size, origin=origin, name=Path(source).stem)
    log.info("%s: written as OME-Zarr %s (shape %s, voxel size %s A)", source, out, volume.shape, voxel_size)


VOLUME_SUFFIXES = (".ome.zarr", ".zarr", ".mrc", ".rec", ".map", ".st")
"""The file names of tomograms and masks (matched case-insensitively): a folder of tomograms is searched for
them, and a volume's name is its file name without one of them."""


def volume_name(path: str | os.PathLike) -> str:
    """A volume's name: its file name without its volume suffix (`mask_t0.5.mrc` -> `mask_t0.5`)."""
    name = Path(path).name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def volumes_in(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The tomograms named by `paths`: a file (or .zarr store) as given, a folder as the volumes directly in it
    (sorted by name); a folder with none is an InputError."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir() and not path.name.lower().endswith(".zarr"):
            inside = sorted(p for p in path.iterdir() if p.name.lower().endswith(VOLUME_SUFFIXES))
            if not inside:
                raise InputError(
                    f"{path}: a folder with no tomograms in it (looked for {', '.join(VOLUME_SUFFIXES)})"
                )
            found += inside
        else:
            found.append(path)
    return found


def sha256sum(path: str | os.PathLike, block: int = 1 << 22) -> str:
    """SHA-256 of a file, read in blocks (for provenance and download checks)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()
