"""What every handler shares: request validation, engine -> message conversion, errors."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import grpc
from google.rpc.error_details_pb2 import BadRequest
from google.rpc.status_pb2 import Status

from bookrec.v1 import common_pb2 as pb
from server.admission import calls_in_flight
from server.engine import types as t
from server.engine.bundle import Bundle
from server.engine.cache import LruCache
from server.engine.deadline import Cancelled, Deadline, DeadlinePassed
from server.engine.errors import EngineError, InvalidArgument, NoModel, NotFound, bounded
from server.engine.manager import ModelManager
from server.engine.paging import StalePageToken
from server.limits import MAX_EXCLUDE_IDS, MAX_FILTER_SUBJECTS, MAX_ID_CHARS, MAX_SUBJECT_TEXT

log = logging.getLogger("server.handlers")

_SOURCE = {
    t.Source.ALS: pb.SOURCE_ALS,
    t.Source.ALS_RERANKED: pb.SOURCE_ALS_RERANKED,
    t.Source.COLD_START: pb.SOURCE_COLD_START,
    t.Source.POPULARITY: pb.SOURCE_POPULARITY,
    t.Source.SUBJECT: pb.SOURCE_SUBJECT,
    t.Source.HYBRID: pb.SOURCE_HYBRID,
}
_REASON = {
    t.ReasonKind.SIMILAR_TO_RATED: pb.REASON_KIND_SIMILAR_TO_RATED,
    t.ReasonKind.FAVOURITE_SUBJECT: pb.REASON_KIND_FAVOURITE_SUBJECT,
    t.ReasonKind.POPULAR: pb.REASON_KIND_POPULAR,
    t.ReasonKind.SAME_AUTHOR: pb.REASON_KIND_SAME_AUTHOR,
    t.ReasonKind.SAME_SERIES: pb.REASON_KIND_SAME_SERIES,
    t.ReasonKind.CO_READ: pb.REASON_KIND_CO_READ,
    t.ReasonKind.SHARED_SUBJECT: pb.REASON_KIND_SHARED_SUBJECT,
}
_STATUS = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    NoModel: grpc.StatusCode.UNAVAILABLE,
    StalePageToken: grpc.StatusCode.FAILED_PRECONDITION,
    DeadlinePassed: grpc.StatusCode.DEADLINE_EXCEEDED,
    Cancelled: grpc.StatusCode.CANCELLED,
}


def check_count(name: str, value: int, default: int, maximum: int) -> int:
    if value == 0:
        return default
    if not 1 <= value <= maximum:
        raise InvalidArgument(
            f"{name} must be in 1..{maximum} (0 means {default}), got {value}", name
        )
    return value


def check_unit(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise InvalidArgument(f"{name} must be in [0, 1], got {value}", name)
    return value


def check_id(name: str, value: str) -> str:
    if not value.strip():
        raise InvalidArgument(f"{name} is required", name)
    check_length(name, value, MAX_ID_CHARS)
    return value


def check_length(name: str, value: str, maximum: int) -> None:
    if len(value) > maximum:
        raise InvalidArgument(f"{name} is longer than {maximum} characters", name)


def check_size(name: str, size: int, maximum: int, what: str) -> None:
    """A repeated field (or a query's words) within its bound (server/limits.py)."""
    if size > maximum:
        raise InvalidArgument(f"{name} holds {size} {what}; at most {maximum} allowed", name)


def check_filter_sizes(msg: pb.Filters) -> None:
    """The filters' lists within their bounds, before anything is built from them."""
    check_size("filters.subject_ids", len(msg.subject_ids), MAX_FILTER_SUBJECTS, "subjects")
    check_size("filters.exclude_book_ids", len(msg.exclude_book_ids), MAX_EXCLUDE_IDS, "ids")
    for i, book_id in enumerate(msg.exclude_book_ids):
        check_length(f"filters.exclude_book_ids[{i}]", book_id, MAX_ID_CHARS)


def filters_of(msg: pb.Filters) -> t.Filters:
    """The engine's filters, bounded first (before any set of them is built)."""
    check_filter_sizes(msg)
    return t.Filters(
        exclude_book_ids=frozenset(msg.exclude_book_ids),
        subject_ids=frozenset(msg.subject_ids),
        min_year=msg.min_year if msg.HasField("min_year") else None,
        max_year=msg.max_year if msg.HasField("max_year") else None,
    )


def check_filters(bundle: Bundle, msg: pb.Filters) -> None:
    """The filter errors the engine would raise, raised first with the field at fault."""
    check_filter_sizes(msg)
    seen: set[str] = set()
    for i, subject in enumerate(msg.subject_ids):
        if subject not in seen:
            seen.add(subject)
            subject_of(bundle, subject, f"filters.subject_ids[{i}]")
    if msg.HasField("min_year") and msg.HasField("max_year") and msg.min_year > msg.max_year:
        raise InvalidArgument(
            f"min_year {msg.min_year} is after max_year {msg.max_year}", "filters.max_year"
        )


def subject_of(bundle: Bundle, text: str, field: str) -> int:
    """A subject's index, or INVALID_ARGUMENT naming ``field``."""
    check_length(field, text, MAX_SUBJECT_TEXT)
    try:
        return bundle.subject(text)
    except InvalidArgument as e:
        raise InvalidArgument(e.message, field) from None


# Built Book messages (read-only: a reply copies them in), keyed by model version:
# building one from the string columns costs ~20 us, copying a built one ~1.5 us.
_BOOKS: LruCache[pb.Book] = LruCache(20_000)


def book_message(bundle: Bundle, item: int) -> pb.Book:
    key = (bundle.version, item)
    book = _BOOKS.get(key)
    if book is None:
        book = _build_book_message(bundle, item)
        _BOOKS.put(key, book)
    return book


def _build_book_message(bundle: Bundle, item: int) -> pb.Book:
    indptr = bundle.subject_books_indptr
    subjects = [
        pb.Subject(
            subject_id=bundle.subject_ids[s],
            name=bundle.subject_names[s],
            book_count=int(indptr[s + 1] - indptr[s]),
        )
        for s in bundle.subjects_of(item).tolist()
    ]
    return pb.Book(
        book_id=bundle.book_ids[item],
        title=bundle.titles[item],
        author=bundle.authors[item],
        year=int(bundle.year[item]),
        isbns=bundle.isbns[item].split(),
        subjects=subjects,
        series=bundle.series[item],
        series_volume=int(bundle.series_volume[item]),
        rating_count=int(bundle.rating_count[item]),
        mean_rating=float(bundle.mean_rating[item]),
        popularity=float(bundle.popularity[item]),
    )


def _reason_message(bundle: Bundle, r: t.Reason) -> pb.Reason:
    return pb.Reason(
        kind=_REASON[r.kind],
        text=r.text,
        related_book_id=bundle.book_ids[r.related_item] if r.related_item >= 0 else "",
        subject_id=bundle.subject_ids[r.subject] if r.subject >= 0 else "",
    )


def scored_messages(bundle: Bundle, ranked: t.RankedList) -> list[pb.ScoredBook]:
    return [
        pb.ScoredBook(
            book=book_message(bundle, s.item),
            score=s.score,
            rank=s.rank,
            reasons=[_reason_message(bundle, r) for r in s.reasons],
        )
        for s in ranked.items
    ]


def source_of(ranked: t.RankedList) -> pb.Source.ValueType:
    return _SOURCE[ranked.source]


P = ParamSpec("P")
R = TypeVar("R")


async def offload(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Unbounded or blocking work (title search over the catalogue, fsync, model loads)
    runs in the thread pool, so the event loop keeps accepting calls meanwhile. The
    bounded recommendation pipelines run inline (see handlers/recommender.py)."""
    return await asyncio.to_thread(fn, *args, **kwargs)


class _Deadlines:
    # The test hook of engine/deadline.py, seconds (ServerConfig.test_step_delay_ms); 0: off.
    step_delay = 0.0


def configure_deadlines(step_delay: float) -> None:
    """Set from ServerConfig before serving."""
    _Deadlines.step_delay = step_delay


def call_deadline(context: Any, rpc: str) -> Deadline:
    """The call's deadline, for ``Deadline.check`` between its steps."""
    return Deadline.after(context.time_remaining(), rpc, _Deadlines.step_delay)


async def abandonable(
    deadline: Deadline, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """``offload``, and when the call is cancelled meanwhile (its client went away, or
    gRPC ended it at its deadline), ``deadline.cancel()``: ``fn`` then stops at its next
    ``deadline.check`` instead of computing on for nobody."""
    try:
        return await offload(fn, *args, **kwargs)
    except asyncio.CancelledError:
        deadline.cancel()
        raise


class _Compute:
    """The thread a worker's pipelines compute in once a call is already computing.

    Why a thread at all: computed on the event loop, a pipeline holds the loop for its
    whole run, so calls arriving meanwhile wait in the kernel and gRPC core, out of
    admission's sight (at 2x capacity, refusals reached the client after ~2 s though
    the server took ~30 ms over each). In the thread the loop keeps turning (the GIL
    switches every 1 ms, and the native parts release it), so admission sees each call
    as it comes and refuses the excess at once. Why inline when the call is the only one
    admission holds: an idle worker pays no hand-off (the inline path was faster at low
    load), and no other call waits on the loop meanwhile. Why one thread:
    two cores and two workers; more threads would only queue on the GIL, and the queue
    belongs in admission, where it is measured and bounded."""

    def __init__(self, threads: int = 1, offload: str = "auto") -> None:
        self.threads = threads
        # 'auto' (inline when idle), 'always' (thread), 'never' (inline; the old way).
        self.offload = offload
        self.running = 0  # pipelines in this worker now, inline or in the thread
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[[], R]) -> R:
        inline = self.offload == "never" or (
            self.offload == "auto" and self.running == 0 and calls_in_flight() <= 1
        )
        self.running += 1
        try:
            if inline:
                return fn()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, "compute")
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        finally:
            self.running -= 1


_COMPUTE = _Compute()


def configure_compute(offload: str, threads: int) -> None:
    """Set from ServerConfig (pipeline_offload, compute_threads) before serving."""
    _COMPUTE.offload, _COMPUTE.threads = offload, threads


async def pipeline(
    models: ModelManager, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """A bounded recommendation pipeline: inline when this worker computes nothing else,
    else in the compute thread (``_Compute``); always in a thread while this process
    loads a model, when the loader competes for the GIL and the loop must keep turning
    between its stretches."""
    if models.loading:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return await _COMPUTE.run(functools.partial(fn, *args, **kwargs))


Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self = TypeVar("Self")


def status_trailers(
    code: grpc.StatusCode, message: str, field: str = ""
) -> tuple[tuple[str, bytes], ...]:
    """``grpc-status-details-bin``: a ``google.rpc.Status`` whose details hold a
    ``google.rpc.BadRequest`` naming ``field``, so any client can read which field
    failed (grpcio-status's ``rpc_status.from_call`` and its peers in other languages)."""
    if not field:
        return ()
    status = Status(code=code.value[0], message=message)
    violation = BadRequest.FieldViolation(field=field, description=message)
    status.details.add().Pack(BadRequest(field_violations=[violation]))
    return (("grpc-status-details-bin", status.SerializeToString()),)


def rpc(
    fn: Callable[[Self, Req, Any], Awaitable[Resp]],
) -> Callable[[Self, Req, Any], Awaitable[Resp]]:
    """Map engine errors to status codes with bounded messages (and field violations as
    structured details); anything else is a bug (INTERNAL)."""

    @functools.wraps(fn)
    async def wrapper(self: Self, request: Req, context: Any) -> Resp:
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except EngineError as e:
            code = _STATUS.get(type(e), grpc.StatusCode.INVALID_ARGUMENT)
            message = bounded(e.message)
            await context.abort(code, message, status_trailers(code, message, e.field))
            raise  # unreachable: abort raises
        except Exception:
            log.exception("unhandled error", extra={"fields": {"rpc": fn.__name__}})
            await context.abort(grpc.StatusCode.INTERNAL, "internal error (a bug; see server log)")
            raise

    return wrapper
