"""OME-Zarr volumes: reading a resolution level chosen by voxel size, and atomic multiscale writes.

The metadata is read and written by the `ome-zarr` package (the `zarr` extra); this module only picks
the level, converts the axis units to Angstrom and maps the coordinate transforms to a `Placement`
(translation -> origin), so that an OME-Zarr volume reads like an MRC file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.core.errors import InputError, OutputError
from tomoseg.core.limits import MAX_CHUNKS, volume_bytes

log = logging.getLogger(__name__)

ZARR_EXTRA = "pip install 'tomoseg[zarr]' (zarr and ome-zarr)"

# Length units of the OME-NGFF axes (the UDUNITS-2 names the spec allows) in Angstrom.
_UNIT_IN_ANGSTROM = {
    "angstrom": 1.0,
    "nanometer": 10.0,
    "micrometer": 1e4,
    "millimeter": 1e7,
    "picometer": 1e-2,
    "meter": 1e10,
}
_SPATIAL = ("z", "y", "x")
# One component of a dataset path: a plain name (no "." or ".." component, no separator, no control character).
_PATH_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ARRAY_ORDERS = ("C", "F")
_SEPARATORS = (".", "/")


def check_dataset_path(source: object, key: str, value: object) -> str:
    """A dataset path from OME-Zarr metadata, as a relative path that stays inside the store; else InputError naming `source` and `key`.

    Metadata is data, never a path of our choosing: the same check guards a local store and a download
    (where `source` is the URL), so that no value can climb out of the folder, name an absolute path or
    carry a separator other than "/" between plain names.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"{source}: {key} {value!r}: a dataset path must be a string")
    text = str(value)
    parts = text.split("/")
    if len(text) > 255 or not all(_PATH_PART.fullmatch(part) for part in parts):
        raise InputError(
            f"{source}: {key} {text!r}: not a dataset path inside the image (plain names such as '0' or 's1' "
            "joined by '/'; no '..', absolute path, backslash or empty part)"
        )
    return text


def check_multiscales(source: object, key: str, attrs: object) -> list[str]:
    """The dataset paths of an OME-Zarr group's `.zattrs` (multiscales[0].datasets), each checked by `check_dataset_path`."""
    try:
        datasets = attrs["multiscales"][0]["datasets"]  # type: ignore[index]
        raw = [d["path"] for d in datasets]
    except (KeyError, IndexError, TypeError) as err:
        raise InputError(
            f"{source}: {key}: no OME-Zarr multiscales datasets ({type(err).__name__}: {err})"
        ) from None
    if not raw:
        raise InputError(f"{source}: {key}: OME-Zarr multiscales metadata lists no datasets")
    return [
        check_dataset_path(source, f"{key} multiscales[0].datasets[{k}].path", p) for k, p in enumerate(raw)
    ]


def check_zarray(source: object, key: str, meta: object) -> dict[str, Any]:
    """A zarr v2 array's metadata (`.zarray`) checked as data before any path or buffer is built from it.

    shape and chunks positive integers of one length, the volume within `MAX_VOLUME_BYTES`, at most
    `MAX_CHUNKS` chunks, a numeric dtype, `dimension_separator` "." or "/", codecs named by a string id.
    Returns the metadata with shape and chunks as int lists; InputError naming `source` and `key` otherwise.
    """
    where = f"{source}: {key}"
    if not isinstance(meta, dict):
        raise InputError(f"{where}: not zarr array metadata (a JSON object is needed)")
    if meta.get("zarr_format") != 2:
        raise InputError(f"{where}: zarr format {meta.get('zarr_format')!r}, not 2")
    shape, chunks = meta.get("shape"), meta.get("chunks")
    if not isinstance(shape, list) or not isinstance(chunks, list) or not shape or len(shape) != len(chunks):
        raise InputError(f"{where}: shape {shape!r} and chunks {chunks!r} must be lists of one length")
    try:
        dtype = np.dtype(meta.get("dtype"))
    except (TypeError, ValueError):
        raise InputError(f"{where}: dtype {meta.get('dtype')!r} is not a numeric type") from None
    if dtype.kind not in "biuf" or dtype.itemsize > 8:
        raise InputError(f"{where}: dtype {meta.get('dtype')!r} is not a numeric type")
    volume_bytes(f"{where} shape", shape, dtype.itemsize)
    volume_bytes(f"{where} chunks", chunks, dtype.itemsize)
    grid = math.prod(math.ceil(n / c) for n, c in zip(shape, chunks, strict=True))
    if grid > MAX_CHUNKS:
        raise InputError(f"{where}: {grid} chunks (shape {shape}, chunks {chunks}); at most {MAX_CHUNKS}")
    separator = meta.get("dimension_separator")
    if separator is not None and separator not in _SEPARATORS:
        raise InputError(f"{where}: dimension_separator {separator!r}; zarr allows '.' or '/'")
    if meta.get("order", "C") not in _ARRAY_ORDERS:
        raise InputError(f"{where}: order {meta.get('order')!r}; zarr allows 'C' or 'F'")
    compressor, filters = meta.get("compressor"), meta.get("filters")
    codecs = ([compressor] if compressor is not None else []) + (filters if isinstance(filters, list) else [])
    if (filters is not None and not isinstance(filters, list)) or not all(
        isinstance(c, dict) and isinstance(c.get("id"), str) for c in codecs
    ):
        raise InputError(
            f"{where}: compressor {compressor!r} / filters {filters!r}: codecs must be objects with an id"
        )
    return {**meta, "shape": list(shape), "chunks": list(chunks)}


@dataclass(frozen=True)
class ZarrLevel:
    """One resolution level of an OME-Zarr image: its dataset path, voxel size and origin (Angstrom, z y x)."""

    path: str
    voxel_size: tuple[float, float, float]
    origin: tuple[float, float, float]


@dataclass(frozen=True)
class ZarrVolume:
    """An opened OME-Zarr level: the lazily read 3-D array (slicing gives numpy) and its geometry."""

    data: Any
    level: ZarrLevel
    levels: tuple[ZarrLevel, ...]


def is_zarr(path: str | os.PathLike) -> bool:
    """Whether `path` names a Zarr store (a folder, or a name ending in .zarr) rather than an MRC file."""
    p = Path(path)
    return p.suffix.lower() == ".zarr" or p.is_dir()


def _require_packages(path: Path) -> tuple[Any, Any, Any]:
    """Import zarr and ome-zarr, or say which extra to install (they are optional dependencies)."""
    try:
        import zarr
        from ome_zarr import io as ome_io
        from ome_zarr import reader as ome_reader
    except ImportError as err:
        raise InputError(f"{path}: reading or writing OME-Zarr needs {err.name}; {ZARR_EXTRA}") from None
    return zarr, ome_io, ome_reader


def _axis_factors(path: Path, axes: Sequence[Any] | None) -> tuple[list[str], list[float]]:
    """Axis names and their unit in Angstrom (1 where no unit is given); the last three must be z, y, x."""
    if not axes or not isinstance(axes, list):
        raise InputError(f"{path}: OME-Zarr multiscales metadata has no axes (needs z, y, x)")
    if not all(isinstance(a, str) or (isinstance(a, dict) and isinstance(a.get("name"), str)) for a in axes):
        raise InputError(f"{path}: OME-Zarr axes {axes!r}: each axis must be a name or an object with a name")
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    if tuple(names[-3:]) != _SPATIAL:
        raise InputError(f"{path}: OME-Zarr axes {names}; tomoseg reads volumes whose last axes are z, y, x")
    factors = []
    for axis in axes[-3:]:
        unit = axis.get("unit") if isinstance(axis, dict) else None
        if unit is None:
            factors.append(1.0)
            continue
        if not isinstance(unit, str) or unit not in _UNIT_IN_ANGSTROM:
            raise InputError(f"{path}: OME-Zarr axis {axis['name']!r} has unit {unit!r}, not a length")
        factors.append(_UNIT_IN_ANGSTROM[unit])
    if all(isinstance(a, dict) and a.get("unit") is None for a in axes[-3:]):
        log.warning("%s: OME-Zarr axes state no unit; the scale is taken as Angstrom", path)
    return names, factors


def _transform(path: Path, transforms: Sequence[dict] | None, kind: str, ndim: int) -> list[float] | None:
    """The `scale` or `translation` vector of one dataset's coordinate transforms (None when absent)."""
    if transforms is not None and not isinstance(transforms, list):
        raise InputError(f"{path}: OME-Zarr coordinateTransformations {transforms!r} is not a list")
    for t in transforms or ():
        if isinstance(t, dict) and t.get("type") == kind:
            values = t.get(kind)
            if not isinstance(values, list) or len(values) != ndim:
                raise InputError(
                    f"{path}: OME-Zarr {kind} {values!r} does not have one value per axis ({ndim})"
                )
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                raise InputError(f"{path}: OME-Zarr {kind} {values!r}: every value must be a number")
            return [float(v) for v in values]
    return None


def zarr_levels(path: str | os.PathLike) -> tuple[ZarrLevel, ...]:
    """The resolution levels of a local OME-Zarr image, finest first, with voxel size and origin in Angstrom."""
    levels, _ = _read_levels(Path(path))
    return levels


def _read_levels(path: Path) -> tuple[tuple[ZarrLevel, ...], int]:
    """Levels and the number of axes of the OME-Zarr image at `path` (InputError naming it when unusable)."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    _zarr, ome_io, ome_reader = _require_packages(path)
    attrs_file = path / ".zattrs"
    if attrs_file.is_file():  # zarr v2: the dataset paths are checked before ome-zarr opens anything by them
        try:
            attrs = json.loads(attrs_file.read_bytes())
        except ValueError as err:
            raise InputError(f"{path}: .zattrs: not valid JSON ({err})") from None
        if isinstance(attrs, dict) and "multiscales" in attrs:
            check_multiscales(path, ".zattrs", attrs)
    location = ome_io.parse_url(str(path), mode="r")
    if location is None:
        raise InputError(f"{path}: not a Zarr store (no .zgroup/.zarray or zarr.json metadata)")
    try:
        node = next(iter(ome_reader.Reader(location)()), None)
        spec = node.load(ome_reader.Multiscales) if node is not None else None
    except Exception as err:  # ome-zarr raises ValueError/KeyError/TypeError for malformed metadata
        raise InputError(f"{path}: unreadable OME-Zarr metadata ({type(err).__name__}: {err})") from None
    if spec is None or node is None:
        raise InputError(f"{path}: a Zarr store without OME-Zarr multiscales metadata (not an image)")
    try:
        return _levels_of(path, node.metadata, spec.datasets)
    except InputError:
        raise
    except (TypeError, KeyError, AttributeError, IndexError, ValueError) as err:  # any other malformed value
        raise InputError(f"{path}: unreadable OME-Zarr metadata ({type(err).__name__}: {err})") from None


def _levels_of(
    path: Path, metadata: dict[str, Any], datasets: Sequence[Any]
) -> tuple[tuple[ZarrLevel, ...], int]:
    """The levels described by ome-zarr's reading of the multiscales metadata (axes, datasets, transforms)."""
    names, factors = _axis_factors(path, metadata.get("axes"))
    ndim = len(names)
    transforms = metadata.get("coordinateTransformations") or [None] * len(datasets)
    levels = []
    if not isinstance(transforms, list) or len(transforms) != len(datasets):
        raise InputError(
            f"{path}: OME-Zarr metadata has {len(datasets)} datasets but transforms {transforms!r}"
        )
    for k, (dataset, transform) in enumerate(zip(datasets, transforms, strict=True)):
        dataset = check_dataset_path(path, f".zattrs multiscales[0].datasets[{k}].path", dataset)
        scale = _transform(path, transform, "scale", ndim)
        if scale is None:
            raise InputError(f"{path}: OME-Zarr dataset {dataset!r} has no scale transform (no voxel size)")
        translation = _transform(path, transform, "translation", ndim) or [0.0] * ndim
        voxel = tuple(s * f for s, f in zip(scale[-3:], factors, strict=True))
        if not all(0 < v < math.inf for v in voxel):
            raise InputError(f"{path}: OME-Zarr dataset {dataset!r} has voxel size {voxel} A; must be > 0")
        origin = tuple(t * f for t, f in zip(translation[-3:], factors, strict=True))
        levels.append(ZarrLevel(str(dataset), voxel, origin))  # type: ignore[arg-type]
    if not levels:
        raise InputError(f"{path}: OME-Zarr multiscales metadata lists no datasets")
    return tuple(levels), ndim


def choose_level(levels: Sequence[ZarrLevel], target_voxel_size: float | None) -> int:
    """Index of the level whose voxel size (mean over z, y, x) is nearest `target_voxel_size` by ratio.

    None picks level 0 (full resolution); of two equally near levels the finer one wins.
    """
    if target_voxel_size is None:
        return 0
    if not target_voxel_size > 0:
        raise InputError(f"target voxel size {target_voxel_size} A: must be > 0")

    def distance(i: int) -> float:
        return abs(math.log(sum(levels[i].voxel_size) / 3 / target_voxel_size))

    return min(range(len(levels)), key=lambda i: (round(distance(i), 9), i))


def zarr_target_voxel_size(
    path: str | os.PathLike, voxel_size: float | None = None, level: int | None = None
) -> float | None:
    """The target voxel size (Angstrom) that picks the resolution a user asked for in a local OME-Zarr
    image: `level` (an index into its multiscales, 0 = full resolution) or `voxel_size`; None for an MRC file
    (one level) or when neither is given. An index the image does not have is an InputError listing its levels."""
    path = Path(path)
    if not is_zarr(path):
        return None
    if level is None:
        return voxel_size
    levels, _ = _read_levels(path)
    if not 0 <= level < len(levels):
        sizes = ", ".join(f"{i}: {lv.path} at {sum(lv.voxel_size) / 3:g} A" for i, lv in enumerate(levels))
        raise InputError(f"{path}: no resolution level {level}; its levels are {sizes}")
    return sum(levels[level].voxel_size) / 3


class CheckedArray:
    """A lazily read zarr array whose reads raise InputError naming the store when a chunk does not decode.

    A chunk that another codec wrote, or that is cut short, otherwise surfaces as a zlib, blosc or reshape
    error from deep inside zarr.
    """

    def __init__(self, array: Any, where: str) -> None:
        self._array, self._where = array, where
        self.shape: tuple[int, ...] = tuple(int(n) for n in array.shape)
        self.dtype, self.ndim = np.dtype(array.dtype), int(array.ndim)
        self.size = int(math.prod(self.shape))

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self._array[key])
        except Exception as err:  # numcodecs/zarr raise zlib.error, RuntimeError, ValueError for bad chunks
            raise InputError(
                f"{self._where}: a chunk does not decode ({type(err).__name__}: {err})"
            ) from None

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self[...], dtype=dtype)


def open_zarr_volume(path: str | os.PathLike, target_voxel_size: float | None = None) -> ZarrVolume:
    """Open the level of a local OME-Zarr image nearest `target_voxel_size` (default level 0) as a 3-D array.

    Axes before z, y, x (t, c) must have length 1; the array is read lazily (zarr) when it is 3-D.
    """
    path = Path(path)
    levels, ndim = _read_levels(path)
    level = levels[choose_level(levels, target_voxel_size)]
    zarr, _, _ = _require_packages(path)
    meta = path / level.path / ".zarray"
    if meta.is_file():  # zarr v2: checked like a download's before zarr builds anything from it
        try:
            stated = json.loads(meta.read_bytes())
        except ValueError as err:
            raise InputError(f"{path}: {level.path}/.zarray: not valid JSON ({err})") from None
        check_zarray(path, f"{level.path}/.zarray", stated)
    try:
        array = zarr.open_group(str(path), mode="r")[level.path]
    except Exception as err:
        raise InputError(f"{path}: cannot open OME-Zarr dataset {level.path!r} ({err})") from None
    if array.ndim != ndim:
        raise InputError(f"{path}: dataset {level.path!r} has {array.ndim} axes, the metadata names {ndim}")
    data: Any = CheckedArray(array, f"{path}: OME-Zarr dataset {level.path!r}")
    if ndim > 3:
        if any(n != 1 for n in array.shape[:-3]):
            raise InputError(
                f"{path}: OME-Zarr image of shape {array.shape}; tomoseg reads one 3-D volume (t and c of length 1)"
            )
        data = np.asarray(data[...]).reshape(array.shape[-3:])
    if target_voxel_size is not None:
        log.info(
            "%s: level %s, voxel size %s A (target %s A)",
            path,
            level.path,
            level.voxel_size,
            target_voxel_size,
        )
    return ZarrVolume(data, level, levels)


def _downsample(array: np.ndarray, is_mask: bool) -> np.ndarray:
    """Halve every axis (odd lengths rounded up): each 2x2x2 block's maximum for masks (thin membranes survive), else its mean."""
    pads = [(0, n % 2) for n in array.shape]
    padded = np.pad(array, pads, mode="edge") if any(p for _, p in pads) else array
    z, y, x = (n // 2 for n in padded.shape)
    blocks = padded.reshape(z, 2, y, 2, x, 2)
    if is_mask:
        return np.asarray(blocks.max(axis=(1, 3, 5)), dtype=array.dtype)
    return np.asarray(blocks.mean(axis=(1, 3, 5), dtype=np.float64), dtype=array.dtype)


def pyramid_levels(shape: Sequence[int], chunk: int, max_levels: int = 4) -> int:
    """How many levels to write: halve until the volume fits in one chunk along its longest axis."""
    levels, longest = 1, max(shape)
    while levels < max_levels and longest > chunk:
        longest = (longest + 1) // 2
        levels += 1
    return levels


def volume_to_write(
    path: str | os.PathLike, data: np.ndarray, voxel_size: tuple[float, float, float] | float
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The array and (z, y, x) voxel size a volume writer stores: 3-D only, bool as uint8, float64 as float32."""
    array = np.asarray(data)
    if array.ndim != 3:
        raise ValueError(f"{path}: refusing to write a {array.ndim}-D array as a volume")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if isinstance(voxel_size, int | float):
        voxel_size = (float(voxel_size),) * 3
    return array, voxel_size


def write_ome_zarr(
    path: str | os.PathLike,
    data: np.ndarray,
    voxel_size: tuple[float, float, float] | float,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    levels: int | None = None,
    chunk: int = 64,
    name: str | None = None,
) -> None:
    """Write a 3-D array as a multiscale OME-Zarr image (axes z, y, x in Angstrom), atomically.

    Level k halves level k-1 (block maximum for masks, block mean otherwise); its scale is the voxel
    size times 2**k and its translation the position of its first voxel's centre, `origin` at level 0.
    The image is written into a temporary sibling folder and renamed into place.
    """
    path = Path(path)
    array, voxel_size = volume_to_write(path, data, voxel_size)
    zarr, ome_io, _ = _require_packages(path)
    from ome_zarr.writer import write_multiscale

    is_mask = np.issubdtype(array.dtype, np.integer)
    n_levels = levels if levels is not None else pyramid_levels(array.shape, chunk)
    pyramid = [array]
    for _ in range(1, n_levels):
        pyramid.append(_downsample(pyramid[-1], is_mask))
    transforms = []
    for k in range(n_levels):
        factor = 2**k
        transforms.append(
            [
                {"type": "scale", "scale": [v * factor for v in voxel_size]},
                {"type": "translation", "translation": [o + (factor - 1) / 2 * v for o, v in zip(origin, voxel_size, strict=True)]},
            ]
        )  # fmt: skip
    axes = [{"name": a, "type": "space", "unit": "angstrom"} for a in _SPATIAL]
    with atomic_folder(path) as tmp:
        # ome-zarr's own store: nested chunk keys ("0/1/2"), as the portal and copick write and read them
        group = zarr.group(store=ome_io.parse_url(str(tmp), mode="w").store, overwrite=True)
        write_multiscale(
            pyramid,
            group,
            axes=axes,
            coordinate_transformations=transforms,
            storage_options={"chunks": tuple(min(chunk, n) for n in array.shape)},
            name=name or path.name.removesuffix(".zarr").removesuffix(".ome"),
        )


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder of `path` and rename it into place only if the block succeeds.

    An existing `path` is moved aside first and removed after the rename, so a reader sees either the
    old folder or the new one; a failed write removes the temporary folder and keeps the old one.
    """
    target = Path(path)
    if target.exists() and not (target.is_dir() and not target.is_symlink()):
        # before any work: a file, a device, a FIFO or a link is never replaced by a folder
        raise OutputError(target, "a file is in the way of this output folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    except OSError as err:
        raise OutputError(target, err.strerror or str(err)) from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_current_umask())
        old = None
        if target.is_dir() and not target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
        elif target.exists():
            raise OutputError(target, "a file is in the way of this output folder")
        try:
            os.replace(tmp, target)
        except OSError:
            if old is not None:
                os.replace(old / target.name, target)
                shutil.rmtree(old, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(target, err.strerror or str(err)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
