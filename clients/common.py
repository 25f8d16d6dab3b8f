"""What the sync and asyncio clients share that does no I/O: defaults, request
builders and the text form of a list reply (the retry policy: clients/retry.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from bookrec.v1 import common_pb2, recommender_pb2
from clients.connect import Connection

DEFAULT_TARGET = "127.0.0.1:50051"
# Seconds a call may take, every retry included, unless the client or the call says
# otherwise.
DEFAULT_TIMEOUT = 5.0


def new_request_id() -> str:
    """A RateBook idempotency key: 32 hex digits, unique per rating."""
    return uuid.uuid4().hex


SIMILAR_MODES = {
    "als": recommender_pb2.SIMILAR_MODE_ALS,
    "subject": recommender_pb2.SIMILAR_MODE_SUBJECT,
    "hybrid": recommender_pb2.SIMILAR_MODE_HYBRID,
}


def make_filters(
    exclude: Iterable[str] = (),
    subjects: Iterable[str] = (),
    min_year: int | None = None,
    max_year: int | None = None,
) -> common_pb2.Filters:
    """A ``Filters`` message from plain values (``None``: no bound)."""
    f = common_pb2.Filters(exclude_book_ids=list(exclude), subject_ids=list(subjects))
    if min_year is not None:
        f.min_year = min_year
    if max_year is not None:
        f.max_year = max_year
    return f


def similar_request(
    book_id: str,
    k: int,
    mode: str,
    weight: float | None,
    explain: bool,
    filters: common_pb2.Filters | None,
) -> recommender_pb2.SimilarRequest:
    if mode not in SIMILAR_MODES:
        raise ValueError(f"mode must be one of {sorted(SIMILAR_MODES)}, got {mode!r}")
    req = recommender_pb2.SimilarRequest(
        book_id=book_id, k=k, mode=SIMILAR_MODES[mode], explain=explain, filters=filters
    )
    if weight is not None:
        req.weight = weight
    return req


def cold_request(
    subjects: Iterable[str],
    popularity_weight: float | None,
    k: int,
    explain: bool,
    filters: common_pb2.Filters | None,
) -> recommender_pb2.ColdStartRequest:
    req = recommender_pb2.ColdStartRequest(
        favourite_subjects=list(subjects), k=k, explain=explain, filters=filters
    )
    if popularity_weight is not None:
        req.popularity_weight = popularity_weight
    return req


def connection_of(connection: Connection | None, api_key: str | None) -> Connection:
    conn = connection if connection is not None else Connection.from_env()
    return conn if api_key is None else replace(conn, api_key=api_key)


class _Listing(Protocol):
    @property
    def items(self) -> Iterable[common_pb2.ScoredBook]: ...


def describe(msg: _Listing) -> str:
    """One line per book: rank, title, author, score, reasons."""
    lines = []
    for item in msg.items:
        b = item.book
        why = "; ".join(r.text for r in item.reasons)
        lines.append(
            f"{item.rank:3d}. {b.title} — {b.author} ({b.year or '?'}) "
            f"[{b.book_id}] score={item.score:.3f}" + (f"  ({why})" if why else "")
        )
    return "\n".join(lines)
