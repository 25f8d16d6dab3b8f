"""Whole-array checks on memory-mapped factors without keeping them resident.

Opening a bundle must reject NaN/inf factors and needs YᵀY for fold-in, and
both read every row. Reading a mapped array makes its pages part of this
process's RSS until unmapped, so a new bundle would count its full factor files
on top of the serving one during a swap. ``scan_rows`` walks the array in
chunks and drops each chunk's pages from this process again (MADV_DONTNEED on a
read-only file mapping: the data stays in the page cache, shared, and comes back
on the next touch), so loading costs the page cache, not the worker's RSS.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

CHUNK_BYTES = 16 << 20


def scan_rows(array: npt.NDArray[Any], visit: Callable[[npt.NDArray[Any]], None]) -> None:
    """Call ``visit`` on consecutive row blocks of ``array``, releasing mapped pages."""
    rows = max(1, CHUNK_BYTES // max(1, array[:1].nbytes))
    mapped: Any = array if hasattr(array, "_mmap") else array.base  # a view of a memmap too
    raw: Any = getattr(mapped, "_mmap", None)  # np.memmap's own mapping, when mapped
    offset = int(getattr(mapped, "offset", 0))
    row_bytes = array[:1].nbytes
    for start in range(0, len(array), rows):
        visit(np.asarray(array[start : start + rows]))
        if raw is None:
            continue
        lo = (offset + start * row_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
        hi = (offset + min(len(array), start + rows) * row_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
        if hi > lo:
            raw.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def all_finite(array: npt.NDArray[Any]) -> bool:
    ok = True

    def check(block: npt.NDArray[Any]) -> None:
        nonlocal ok
        ok = ok and bool(np.isfinite(block).all())

    scan_rows(array, check)
    return ok


def gram_and_finite(item_factors: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float64], bool]:
    """YᵀY (float64, for fold-in) and whether every factor is finite, in one pass."""
    d = item_factors.shape[1]
    yty = np.zeros((d, d), dtype=np.float64)
    ok = True

    def visit(block: npt.NDArray[Any]) -> None:
        nonlocal ok
        b = block.astype(np.float64)
        ok = ok and bool(np.isfinite(b).all())
        yty[...] += b.T @ b

    scan_rows(item_factors, visit)
    return yty, ok
