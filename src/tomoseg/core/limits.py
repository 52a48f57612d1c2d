"""Size bounds checked before memory is spent: what a data file declares must fit a volume tomoseg can hold.

A header (MRC, `.zarray`, a checkpoint sidecar) is only a promise; these checks refuse an absurd one with
one line (InputError, exit status 2) before an array of that size is allocated, instead of a MemoryError.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from tomoseg.core.errors import InputError

# The largest volume tomoseg accepts from any file: 64 GiB (a paper-size float32 tomogram is ~2 GB, the
# largest portal tomograms ~8 GB). A header promising more is taken as corrupt or hostile.
MAX_VOLUME_BYTES = 64 * 2**30
# The most chunks a remote OME-Zarr level may have (each is one HTTPS request; 64^3 chunks of 2^30 voxels).
MAX_CHUNKS = 2**20


def volume_bytes(source: object, shape: Sequence[object], itemsize: int) -> int:
    """The byte count of an array of `shape`; InputError naming `source` when a length is not a positive int or it exceeds MAX_VOLUME_BYTES."""
    dims = []
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"{source}: array shape {list(shape)}: every length must be a positive integer")
        dims.append(n)
    total = math.prod(dims) * int(itemsize)
    if total > MAX_VOLUME_BYTES:
        raise InputError(
            f"{source}: declares a volume of shape {list(dims)} ({total / 2**30:.4g} GiB), more than tomoseg's "
            f"limit of {MAX_VOLUME_BYTES / 2**30:.0f} GiB (tomoseg.core.limits.MAX_VOLUME_BYTES): corrupt or not a tomogram"
        )
    return total


def available_memory() -> int | None:
    """Bytes of memory the system can give this process now (MemAvailable on Linux, else physical memory; None if unknown)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def require_memory(source: object, needed: int, what: str = "reading it") -> None:
    """Refuse (InputError naming `source`) when `needed` bytes exceed the memory available now."""
    free = available_memory()
    if free is not None and needed > free:
        raise InputError(
            f"{source}: {what} needs {needed / 2**30:.3g} GiB of memory, only {free / 2**30:.3g} GiB available "
            "(a header promising more data than the file can hold, or a machine too small for this volume)"
        )
