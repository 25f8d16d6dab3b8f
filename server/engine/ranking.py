"""Shared ranking steps: filter masks, index searches, top-k selection, reasons."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from server.engine.bundle import Bundle
from server.engine.errors import InvalidArgument
from server.engine.types import Filters, Reason, ReasonKind

BoolMask = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]


def search(index: Any, query: npt.NDArray[np.float32], n: int) -> I64:
    """The rows a FAISS inner-product index ranks best for one query, best first."""
    _, ids = index.search(np.ascontiguousarray(query[None, :], dtype=np.float32), n)
    found: I64 = ids[0][ids[0] >= 0]
    return found


def in_sorted(values: npt.NDArray[np.integer], sorted_set: npt.NDArray[np.int32]) -> BoolMask:
    """``np.isin`` for a sorted set (a user's rated books are): one binary search each."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    out: BoolMask = sorted_set[pos] == values
    return out


def favourite_subject(bundle: Bundle, subject: int) -> Reason:
    return Reason(
        ReasonKind.FAVOURITE_SUBJECT,
        f"matches your favourite subject {bundle.subject_names[subject]}",
        subject=subject,
    )


def allowed_mask(bundle: Bundle, filters: Filters) -> BoolMask | None:
    """Books the filters keep, or None when they keep everything (the common case)."""
    mask: BoolMask | None = None

    def _and(m: BoolMask) -> None:
        nonlocal mask
        mask = m if mask is None else (mask & m)

    if filters.subject_ids:
        wanted = [bundle.subject(s) for s in sorted(filters.subject_ids)]
        has = np.zeros(bundle.n_books, dtype=bool)
        for s in wanted:
            has[bundle.books_with_subject(s)] = True
        _and(has)
    if filters.min_year is not None or filters.max_year is not None:
        lo = filters.min_year if filters.min_year is not None else -(2**15)
        hi = filters.max_year if filters.max_year is not None else 2**15 - 1
        if lo > hi:
            raise InvalidArgument(f"min_year {lo} is after max_year {hi}")
        year = np.asarray(bundle.year)
        _and((year >= lo) & (year <= hi) & (year != 0))
    if filters.exclude_book_ids:
        keep = np.ones(bundle.n_books, dtype=bool)
        rows = [bundle.book_row[b] for b in filters.exclude_book_ids if b in bundle.book_row]
        keep[rows] = False
        _and(keep)
    return mask


def top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    """Indices of the k best finite scores, best first; ties broken by index."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) == 0 or k <= 0:
        return np.empty(0, dtype=np.int64)
    if len(finite) > k:
        part = np.argpartition(-scores[finite], k - 1)[:k]
        finite = finite[part]
    order = np.lexsort((finite, -scores[finite]))
    out: npt.NDArray[np.int64] = finite[order].astype(np.int64)
    return out


def subject_scores(bundle: Bundle, subjects: npt.NDArray[np.int32]) -> npt.NDArray[np.float32]:
    """Cosine of idf-weighted subject vectors between a query subject set and every book."""
    acc = np.zeros(bundle.n_books, dtype=np.float32)
    if len(subjects) == 0:
        return acc
    weights = bundle.subject_idf[subjects]
    for s, w in zip(subjects.tolist(), weights.tolist(), strict=True):
        acc[bundle.books_with_subject(s)] += w * w
    q_norm = float(np.sqrt((weights**2).sum()))
    denom = bundle.book_subject_norm * q_norm
    out: npt.NDArray[np.float32] = np.divide(
        acc, denom, out=np.zeros_like(acc), where=denom > 0
    ).astype(np.float32)
    return out
